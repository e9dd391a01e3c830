"""The session store (DESIGN §7): one SQLite database per notebook, one session per kernel
start, every change committed before the cell ends, nothing ever overwritten.

Each test that restores does what users do after a restart: the new session changes
settings and sends turns *before* it restores, so a store that let a new session write
over an old one fails here. Real kernels: tests/integration/test_kernel_restart.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from IPython.core.interactiveshell import InteractiveShell

import nbconvo
from nbconvo._document import journal_path, session_to_dict
from nbconvo._events import TurnAdded
from nbconvo._session import SESSION, Session, conversation_from_record
from nbconvo._store import APPLICATION_ID, SessionStore, store_path_for
from nbconvo._tree import Turn
from tests.support.helpers import FAKE_KEY, kernel_started_with, one_line_error, turn
from tests.support.legacy import LEGACY
from tests.support.trees import build_step, operations

# -- helpers ---------------------------------------------------------------------------


def kernel_session(path: Path) -> Session:
    """A session as a fresh kernel has it, saving into the store at ``path``."""
    return Session(locate_store=lambda: path)


def add(session: Session, prompt: str, convo: str | None = None) -> Turn:
    """Append a turn the way a finished `%%turn` does (an event, so the session saves)."""
    c = session.get(convo) if convo else session.current()
    tree = c.tree
    t = tree.append(Turn(id=tree.new_turn_id(), parent=tree.head, prompt=prompt,
                         answer=f"answer to {prompt}", cell_id=f"cell-{prompt}"))
    c._changed(TurnAdded(t.id))
    return t


def as_document(session: Session) -> dict[str, Any]:
    """The session as plain data (turns, branches, heads, settings, archive)."""
    return json.loads(json.dumps(session_to_dict(session)))


def stored(path: Path, session: Session) -> dict[str, Any]:
    """What the store holds of ``session``, as the same plain data."""
    store, notice = SessionStore.open(path)
    assert notice is None
    try:
        state = store.read(session.writer().session_id)
    finally:
        store.close()
    again = Session(
        conversations={n: conversation_from_record(r) for n, r in state.conversations.items()},
        current_name=state.current,
        archived=state.archived,
    )
    return as_document(again)


def store_file() -> Path:
    return Path(os.environ["NBCONVO_HOME"]) / "nbconvo-session.nbconvo.db"


# -- what a save writes ---------------------------------------------------------------------


def test_each_turn_is_committed_private_and_keyless(convo_shell: InteractiveShell) -> None:
    turn(convo_shell, "one", "c1")
    path = store_file()
    # Read by another connection, as another process would: committed, not just written.
    db = sqlite3.connect(path)
    rows = db.execute("SELECT prompt FROM turns").fetchall()
    assert rows == [("one",)]
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert db.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
    db.close()
    assert convo_shell.run_cell("%convo fork 0 --name other").success
    db = sqlite3.connect(path)
    assert db.execute("SELECT branch, branches FROM conversations").fetchall() == [
        ("other", json.dumps({"main": 1, "other": None}))
    ]
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    db.close()
    for name in (path.name, path.name + "-wal", path.name + "-shm"):
        assert stat.S_IMODE((path.parent / name).stat().st_mode) == 0o600, name
        assert FAKE_KEY.encode() not in (path.parent / name).read_bytes()


@settings(max_examples=60, deadline=None)
@given(operations)
def test_the_store_always_reads_back_as_the_session_in_memory(
    ops: list[tuple[str, int, str]],
) -> None:
    """Random forks, switches, undos, reruns, settings, new conversations and resets,
    saved after each: the store holds exactly the session in memory after every step."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.nbconvo.db"
        session = kernel_session(path)
        for step, op in enumerate(ops):
            convo = session.current()
            build_step(convo.tree, op)
            if step % 7 == 3:
                convo.system = f"system {step}"
            if step % 11 == 5 and f"side{step}" not in session.conversations:
                session.new(f"side{step}")
            if step % 13 == 8:
                session.reset()
            if step % 5 == 1:
                session.use("default")
            assert session.save_now() == path, session.autosave_error
            assert stored(path, session) == as_document(session), f"after step {step}: {op}"
        if session.writer().store is not None:
            session.writer().store.close()  # type: ignore[union-attr]


def test_a_turn_writes_one_row_whatever_the_history(tmp_path: Path) -> None:
    """Turns are never rewritten: one more turn adds one row to `turns` at 10 turns of
    history as at 2,000 (the timing is in `make bench`)."""
    for history in (10, 2000):
        path = tmp_path / f"h{history}.nbconvo.db"
        session = kernel_session(path)
        for i in range(history):
            add(session, f"p{i}")
        db = session.writer().store.db  # type: ignore[union-attr]
        before = db.total_changes
        add(session, "one more")
        # the turn's row, the conversation's pointers, the session's time and current
        assert db.total_changes - before == 3


# -- the restart that used to lose everything ------------------------------------------------


def test_a_new_session_never_touches_an_earlier_one(tmp_path: Path) -> None:
    path = tmp_path / "tour.nbconvo.db"
    first = kernel_session(path)
    add(first, "one")
    add(first, "two")
    first.current().fork(1, "alt")
    add(first, "alt two")
    first.new("side")
    add(first, "side one", "side")
    first.use("default")
    expected = as_document(first)
    first.writer().store.close()  # type: ignore[union-attr]
    # The kernel restarts: the new session sets its model, system prompt, sends turns,
    # starts a conversation of its own and resets it, all before it restores.
    second = kernel_session(path)
    convo = second.current()
    convo.model = "openai:other"
    convo.system = "something else"
    add(second, "a new first turn")
    second.new("side")
    add(second, "another side", "side")
    second.reset("side")
    assert stored(path, first) == expected  # not one row of the first session changed
    chosen = second.restore()
    assert chosen.turns == 4 and chosen.branches == 3
    restored = as_document(second)
    assert restored["conversations"] == expected["conversations"]
    assert restored["current"] == "default"
    # What the second session had before is kept too: in memory and in the store.
    archive = [(a["name"], len(a["tree"]["turns"])) for a in restored["archived"]]
    assert archive == [("side", 1), ("default", 1), ("side", 0)]
    assert stored(path, second) == restored


def test_a_restore_of_a_restore_reads_back_whole(tmp_path: Path) -> None:
    """A restored tree points at the rows it came from rather than copying them; a
    session restored from a restored session (and so on) still reads back whole, with
    the turns each added and none that the earlier one added after the restore."""
    path = tmp_path / "chain.nbconvo.db"
    first = kernel_session(path)
    for p in ("a1", "a2", "a3"):
        add(first, p)
    second = kernel_session(path)
    second.restore()
    add(second, "b1")
    second.current().fork(1, "b-fork")
    add(second, "b2")
    add(first, "a4, after the second restored")  # the first kernel is still running
    third = kernel_session(path)
    third.restore(2)  # the second session
    add(third, "c1")
    for session in (first, second, third):
        assert stored(path, session) == as_document(session)
    assert [t.prompt for t in third.current().tree.turns.values()] == ["a1", "a2", "a3", "b1", "b2", "c1"]
    db = sqlite3.connect(path)
    own = dict(db.execute("SELECT session, count(*) FROM turns GROUP BY session").fetchall())
    db.close()
    assert own[second.writer().session_id] == 2 and own[third.writer().session_id] == 1
    listed = {s.id: s.turns for s in third.earlier_sessions()}
    assert listed == {first.writer().session_id: 4, second.writer().session_id: 5}


def test_restore_picks_the_latest_earlier_session_or_the_one_named(tmp_path: Path) -> None:
    path = tmp_path / "n.nbconvo.db"
    for prompts in (["a1"], ["b1", "b2"], []):  # the third kernel wrote no turn
        old = kernel_session(path)
        old.current().goal = "g"
        for p in prompts:
            add(old, p)
        old.save_now()
        old.writer().store.close()  # type: ignore[union-attr]
    now = kernel_session(path)
    listed = now.earlier_sessions()
    assert [(s.number, s.turns, s.last_prompt) for s in listed] == [(1, 1, "a1"), (2, 2, "b2"), (3, 0, "")]
    assert now.restore().number == 2  # the latest with turns
    assert [t.prompt for t in now.current().path] == ["b1", "b2"]
    assert now.restore(1).number == 1
    assert [t.prompt for t in now.current().path] == ["a1"]
    own = [s.number for s in now.writer().store.sessions() if s.id == now.writer().session_id]  # type: ignore[union-attr]
    with pytest.raises(nbconvo.UsageError, match="this kernel's own"):
        now.restore(own[0])
    with pytest.raises(nbconvo.UsageError, match="there is no session 9: `%convo sessions` lists them"):
        now.restore(9)


def test_two_kernels_write_one_store_at_once(tmp_path: Path) -> None:
    """Two sessions (two browser tabs on one notebook) interleave their saves turn by
    turn through separate connections: both complete, neither loses a turn. Real
    processes doing the same: tests/integration/test_kernel_restart.py."""
    path = tmp_path / "shared.nbconvo.db"
    a, b = kernel_session(path), kernel_session(path)
    for i in range(200):
        add(a, f"a{i}")
        add(b, f"b{i}")
        if i == 100:
            a.current().fork(50, "a-fork")
    assert a.autosave_error is None and b.autosave_error is None
    assert stored(path, a) == as_document(a)
    assert stored(path, b) == as_document(b)
    assert [s.turns for s in a.writer().store.sessions()] == [200, 200]  # type: ignore[union-attr]


# -- bad stores: one line, moved aside, never overwritten -------------------------------------


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not a database, just some bytes\n" * 100)


def _truncated(path: Path) -> None:
    session = kernel_session(path)
    for i in range(300):
        add(session, f"turn {i} " + "x" * 200)
    store = session.writer().store
    assert store is not None
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _newer(path: Path) -> None:
    session = kernel_session(path)
    session.save_now()
    session.writer().store.close()  # type: ignore[union-attr]
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 7")
    db.close()


def _foreign(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notes (text TEXT)")
    db.execute("PRAGMA application_id = 42")
    db.commit()
    db.close()


@pytest.mark.parametrize(("make_bad", "said"), [
    (_garbage, "is not an SQLite database"),
    (_truncated, "is damaged"),
    (_newer, "written by a newer nbconvo (store version 7; this one reads up to 2)"),
    (_foreign, "is an SQLite database of another program"),
])
def test_a_bad_store_is_moved_aside_and_a_new_one_started(
    convo_shell: InteractiveShell, make_bad: Callable[[Path], None], said: str
) -> None:
    path = store_file()
    _stop_kernel(convo_shell)
    make_bad(path)
    for side in (path.name + "-wal", path.name + "-shm"):
        (path.parent / side).unlink(missing_ok=True)
    bad = path.read_bytes()
    printed = _reload(convo_shell).strip()  # a new kernel meets the bad store
    assert len(printed.splitlines()) == 1, printed
    assert said in printed and "moved aside to nbconvo-session.nbconvo.db." in printed
    assert "a new store was started" in printed
    aside = [p for p in path.parent.iterdir()
             if ".nbconvo.db." in p.name and not p.name.endswith(("-wal", "-shm"))]
    assert len(aside) == 1 and aside[0].read_bytes() == bad  # moved, byte for byte
    assert convo_shell.run_cell("%convo model openai:gpt-test").success
    turn(convo_shell, "one", "c1")
    turn(convo_shell, "two", "c2")
    assert "⚠" not in convo_shell.display_pub.plain()[-1]
    db = sqlite3.connect(path)
    assert [r[0] for r in db.execute("SELECT prompt FROM turns")] == ["one", "two"]
    db.close()


def test_load_of_a_bad_store_file_is_one_line_and_changes_nothing(
    convo_shell: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    turn(convo_shell, "mine", "c1")
    bad = tmp_path / "bad.nbconvo.db"
    _garbage(bad)
    content = bad.read_bytes()
    before = dict(SESSION.conversations)
    assert "is not an SQLite database" in one_line_error(convo_shell, f"%convo load {bad}", capsys)
    assert SESSION.conversations == before and bad.read_bytes() == content


def test_an_unwritable_folder_keeps_the_turn_and_the_next_save_catches_up(
    convo_shell: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.access(locked, os.W_OK):  # root ignores permissions: a folder under a file then
        locked = tmp_path / "a-file"
        locked.write_text("x")
    kernel_started_with(monkeypatch, NBCONVO_HOME=str(locked / "home"))
    turn(convo_shell, "still works", "c1")
    footer = convo_shell.display_pub.plain()[-1]
    assert "autosave failed: cannot write in" in footer and "NBCONVO_HOME" in footer
    assert "\n" not in footer
    turn(convo_shell, "again", "c2")
    writable = tmp_path / "writable"
    kernel_started_with(monkeypatch, NBCONVO_HOME=str(writable))
    turn(convo_shell, "third", "c3")
    db = sqlite3.connect(writable / "nbconvo-session.nbconvo.db")
    prompts = [r[0] for r in db.execute("SELECT prompt FROM turns ORDER BY id")]
    db.close()
    assert prompts == ["still works", "again", "third"]  # nothing was lost meanwhile


def test_a_full_disk_is_one_line_and_the_next_save_retries(convo_shell: InteractiveShell) -> None:
    """SQLite's own SQLITE_FULL, raised by a page limit on the store's connection (as a
    full filesystem raises it): the turn stays in memory, the footer says so, and once
    there is room the next save writes everything that was missing."""
    turn(convo_shell, "small", "c1")
    store = SESSION.writer().store
    assert store is not None
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")
    big = "a long answer " * 2000
    assert convo_shell.run_cell(f"%%turn --raw\n{big}", cell_id="c2").success
    footer = convo_shell.display_pub.plain()[-1]
    assert "autosave failed: cannot save to" in footer and "database or disk is full" in footer
    assert "free some disk space" in footer
    assert len(nbconvo.current().path) == 2
    store.db.execute("PRAGMA max_page_count = 1073741823")
    turn(convo_shell, "after", "c3")
    assert "autosave failed" not in convo_shell.display_pub.plain()[-1]
    db = sqlite3.connect(store.path)
    assert db.execute("SELECT count(*) FROM turns").fetchone() == (3,)
    db.close()


# -- the magics: the load notice, `%convo sessions`, `%convo load [N]` ------------------------


def _earlier_session_in(path: Path) -> None:
    old = kernel_session(path)
    old.current().model = "openai:gpt-test"
    for p in ("one", "two", "three"):
        add(old, p)
    old.current().fork(2, "alt")
    add(old, "alt three")
    old.writer().store.close()  # type: ignore[union-attr]


def _stop_kernel(shell: InteractiveShell) -> None:
    """The kernel ends: the extension goes, and with it the session's store connection."""
    nbconvo.unload_ipython_extension(shell)
    shell.extension_manager.loaded.discard("nbconvo")
    SESSION.conversations.clear()
    SESSION.archived.clear()
    if SESSION._writer is not None and SESSION._writer.store is not None:
        SESSION._writer.store.close()
    SESSION._writer = None  # a new kernel: a new session


def _reload(shell: InteractiveShell) -> str:
    """`%load_ext nbconvo` in a fresh kernel: what it prints."""
    import io
    from contextlib import redirect_stdout

    _stop_kernel(shell)
    out = io.StringIO()
    with redirect_stdout(out):
        assert shell.run_cell("%load_ext nbconvo").success
    return out.getvalue()


def test_load_ext_announces_the_earlier_session_in_one_line(
    convo_shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(convo_shell.user_ns, "__session__", "/work/notes/tour.ipynb")
    path = store_path_for("/work/notes/tour.ipynb", SESSION.settings)
    assert path is not None and path.name == "tour.nbconvo.db"
    _earlier_session_in(path)
    printed = _reload(convo_shell).strip()
    assert len(printed.splitlines()) == 1, printed
    assert printed.startswith("nbconvo: earlier session, ") and " today: 4 turns, 2 branches" in printed
    assert "`%convo load` restores it" in printed and str(path) in printed
    # Then what users do: set the model, send a turn, and restore.
    assert convo_shell.run_cell("%convo model openai:gpt-test").success
    assert convo_shell.run_cell("%convo system Be brief.").success
    turn(convo_shell, "a new start", "n1")
    assert convo_shell.run_cell("%convo load").success
    convo = nbconvo.current()
    assert [t.prompt for t in convo.path] == ["one", "two", "alt three"]
    assert convo.branches == {"main": 3, "alt": 4} and convo.branch == "alt"
    assert "*restored 1 conversation(s) from* session 1 (" in convo_shell.display_pub.plain()[-1]


def test_no_announcement_without_a_store(shell: InteractiveShell) -> None:
    assert _reload(shell) == ""
    assert not store_file().exists()  # loading the extension creates no file


def test_convo_sessions_lists_them_with_the_store(convo_shell: InteractiveShell) -> None:
    _earlier_session_in(store_file())
    _reload(convo_shell)
    assert convo_shell.run_cell("%convo model openai:gpt-test").success
    turn(convo_shell, "mine | with a pipe", "m1")
    assert convo_shell.run_cell("%convo sessions").success
    table = convo_shell.display_pub.plain()[-1]
    assert str(store_file()) in table
    rows = [line for line in table.splitlines() if line.startswith("| ") and "today" in line]
    # The fixture's kernel (a model set, no turn), the earlier one, and this one; the
    # pipe in a prompt is escaped so the table keeps its columns.
    assert [re.sub(r"\d\d:\d\d today", "T", row) for row in rows] == [
        "| 1 | T | 0 | 1 |   |  |",
        "| 2 | T | 4 | 2 | alt three |  |",
        "| 3 | T | 1 | 1 | mine \\| with a pipe | this kernel |",
    ]


@pytest.mark.parametrize(("line", "said"), [
    ("%convo load 5", "there is no session 5: `%convo sessions` lists them"),
    ("%convo load", "no earlier session with turns in"),
])
def test_bad_restores_are_one_line_and_change_nothing(
    convo_shell: InteractiveShell, capsys: pytest.CaptureFixture[str], line: str, said: str
) -> None:
    turn(convo_shell, "mine", "c1")
    before = as_document(SESSION)
    assert said in one_line_error(convo_shell, line, capsys)
    assert as_document(SESSION) == before


def test_restore_with_autosave_off_says_how_to_load_instead(
    convo_shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kernel_started_with(monkeypatch, NBCONVO_AUTOSAVE="off")
    text = one_line_error(convo_shell, "%convo load", capsys)
    assert "autosave is off" in text and "`%convo load PATH`" in text
    assert "autosave is off" in one_line_error(convo_shell, "%convo sessions", capsys)


def test_load_a_store_file_brings_its_latest_session(convo_shell: InteractiveShell, tmp_path: Path) -> None:
    other = tmp_path / "other.nbconvo.db"
    _earlier_session_in(other)
    before = other.read_bytes()
    turn(convo_shell, "mine", "c1")
    assert convo_shell.run_cell(f"%convo load {other}").success
    assert [t.prompt for t in nbconvo.current().path] == ["one", "two", "alt three"]
    assert other.read_bytes() == before  # read only


def test_an_old_autosave_beside_the_store_becomes_an_earlier_session(
    convo_shell: InteractiveShell,
) -> None:
    """Upgrading: the `NAME.nbconvo.json` (+ journal) nbconvo 0.1 left is imported once as
    an earlier session (the files are only read), and `%convo load` restores it."""
    home = store_file().parent
    legacy = home / "nbconvo-session.nbconvo.json"
    shutil.copy(LEGACY, legacy)
    shutil.copy(journal_path(LEGACY), journal_path(legacy))
    files = legacy.read_bytes(), journal_path(legacy).read_bytes()
    printed = _reload(convo_shell)
    assert "earlier session" in printed and "5 turns, 3 branches" in printed
    assert convo_shell.run_cell("%convo load").success
    from tests.support.legacy import check_legacy_tour

    check_legacy_tour()
    assert (legacy.read_bytes(), journal_path(legacy).read_bytes()) == files
    _reload(convo_shell)  # a later kernel does not import it a second time
    assert convo_shell.run_cell("%convo sessions").success
    table = convo_shell.display_pub.plain()[-1]
    assert table.count("imported from nbconvo-session.nbconvo.json") == 1


# -- the store follows the notebook ---------------------------------------------------------


def test_a_renamed_notebook_takes_its_store_along(
    convo_shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    """JupyterLab's Untitled.ipynb renamed to tour.ipynb: the next save goes to
    tour.nbconvo.db, with the earlier sessions of Untitled; Untitled.nbconvo.db stays as
    it was, so a new Untitled notebook starts clean of nothing it had. (A real Jupyter
    server's rename: tests/integration/test_kernel_restart.py.)"""
    home = store_file().parent
    monkeypatch.setitem(convo_shell.user_ns, "__session__", "Untitled.ipynb")
    _earlier_session_in(home / "Untitled.nbconvo.db")
    _reload(convo_shell)
    assert convo_shell.run_cell("%convo model openai:gpt-test").success
    turn(convo_shell, "before the rename", "r1")
    old = _contents(home / "Untitled.nbconvo.db")
    monkeypatch.setitem(convo_shell.user_ns, "__session__", "tour.ipynb")
    turn(convo_shell, "after the rename", "r2")
    assert convo_shell.run_cell("%convo sessions").success
    table = convo_shell.display_pub.plain()[-1]
    assert str(home / "tour.nbconvo.db") in table
    assert "| 4 | 2 | alt three |" in table and "| 2 | 1 | after the rename | this kernel |" in table
    assert _contents(home / "Untitled.nbconvo.db") == old
    assert convo_shell.run_cell("%convo load").success  # the earlier session came along
    assert [t.prompt for t in nbconvo.current().path] == ["one", "two", "alt three"]


def _contents(path: Path) -> list[Any]:
    db = sqlite3.connect(path)
    try:
        return [
            db.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
            for table in ("sessions", "conversations", "turns")
        ]
    finally:
        db.close()
