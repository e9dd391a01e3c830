"""Autosave, save/load, export and replay cassettes (DESIGN §7)."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from IPython.core.interactiveshell import InteractiveShell

import nbconvo
from nbconvo._session import SESSION, Session
from nbconvo._store import (
    VERSION,
    Autosaver,
    journal_path,
    read_document,
    session_to_dict,
    tree_from_dict,
    tree_to_dict,
)
from nbconvo._tree import ConversationTree, Turn
from tests.conftest import FAKE_KEY, one_line_error, turn
from tests.fakes.openai_server import FakeOpenAI

# -- round trip over random trees -------------------------------------------------------

operations = st.lists(
    st.tuples(st.sampled_from(["add", "fork", "switch", "undo", "rerun"]), st.integers(0, 50),
              st.text(max_size=20)),
    max_size=40,
)


def build(ops: list[tuple[str, int, str]]) -> ConversationTree:
    tree = ConversationTree()
    for op in ops:
        build_step(tree, op)
    return tree


def build_step(tree: ConversationTree, op: tuple[str, int, str]) -> ConversationTree:
    """One random operation on a tree, in place."""
    name, n, text = op
    path = tree.path()
    if name == "add" or not tree.turns:
        tree.append(Turn(id=tree.new_turn_id(), parent=None, prompt=text, answer=text[::-1],
                         status=["ok", "error", "interrupted"][n % 3], cell_id=f"c{n % 4}",
                         params={"temperature": n / 10}, usage_exact=bool(n % 2)))
    elif name == "fork":
        tree.fork(n % (len(path) + 1))
    elif name == "switch":
        tree.switch(f"#{1 + n % len(tree.turns)}")
    elif name == "undo" and path:
        tree.undo()
    elif name == "rerun" and path:
        tree.rewind_for_rerun(path[n % len(path)].id)
    return tree


@settings(max_examples=150, deadline=None)
@given(operations)
def test_save_load_round_trip_gives_an_equal_tree(ops: list[tuple[str, int, str]]) -> None:
    tree = build(ops)
    again = tree_from_dict(json.loads(json.dumps(tree_to_dict(tree))))
    assert again.turns == tree.turns
    assert again.branches == tree.branches and again.current == tree.current
    assert again.next_id == tree.next_id
    assert {k: v for k, v in again.children.items() if v} == {k: v for k, v in tree.children.items() if v}
    assert [again.label(t) for t in again.turns] == [tree.label(t) for t in tree.turns]


# -- through the magics ----------------------------------------------------------------




def autosave_file() -> Path:
    return Path(os.environ["NBCONVO_HOME"]) / "nbconvo-session.nbconvo.json"


def test_autosave_after_each_turn_is_private_and_keyless(convo_shell: InteractiveShell) -> None:
    turn(convo_shell, "one", "c1")
    path = autosave_file()
    for written in (path, journal_path(path)):
        assert stat.S_IMODE(written.stat().st_mode) == 0o600
    data = read_document(path)
    assert data["format"] == "nbconvo" and data["version"] == VERSION
    assert [t["prompt"] for t in data["conversations"][0]["tree"]["turns"]] == ["one"]
    assert convo_shell.run_cell("%convo fork 0 --name other").success
    assert read_document(path)["conversations"][0]["tree"]["current"] == "other"
    assert FAKE_KEY not in path.read_text() + journal_path(path).read_text()


def _session_document(session: Session) -> dict[str, Any]:
    return json.loads(json.dumps(session_to_dict(session)))


@settings(max_examples=60, deadline=None)
@given(operations, st.integers(1, 3))
def test_snapshot_plus_journal_reads_back_as_the_whole_session(
    ops: list[tuple[str, int, str]], fold_every: int
) -> None:
    """Autosave after every change, folding the journal now and then: the file pair
    always reads back as exactly the session in memory."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.nbconvo.json"
        session, saver = Session(), Autosaver()
        convo = session.current()
        convo.tree = build([])
        for step, op in enumerate(ops):
            convo.tree = build_step(convo.tree, op)
            if step % 7 == 3:
                convo.system = f"system {step}"
            if step % 11 == 5:
                session.new(f"side{step}") if f"side{step}" not in session.conversations else None
                session.use("default")
            saver.save(session, path)
            if step % (fold_every * 5) == 4:
                saver.snapshot(session, path)
            stored = read_document(path)
            stored.pop("journal")
            assert stored == _session_document(session), f"after step {step}: {op}"
        saver.close()


def _journaled_session(path: Path, turns: int) -> tuple[Session, Autosaver]:
    session, saver = Session(), Autosaver()
    tree = session.current().tree
    for i in range(turns):
        tree.append(Turn(id=tree.new_turn_id(), parent=tree.head, prompt=f"p{i}", answer=f"a{i}"))
        saver.save(session, path)
    return session, saver


def test_a_line_cut_by_a_kill_is_ignored_and_a_stale_journal_too(tmp_path: Path) -> None:
    path = tmp_path / "s.nbconvo.json"
    session, saver = _journaled_session(path, 3)
    saver.close()
    journal = journal_path(path)
    whole = journal.read_bytes()
    journal.write_bytes(whole + b'{"current": "default", "conversations": [{"na')
    assert len(read_document(path)["conversations"][0]["tree"]["turns"]) == 3
    saver.snapshot(session, path)  # a new base: the old journal lines no longer apply
    saver.close()
    journal.write_bytes(whole)
    assert len(read_document(path)["conversations"][0]["tree"]["turns"]) == 3


def test_a_damaged_journal_line_is_one_error_and_loads_nothing(
    convo_shell: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.nbconvo.json"
    _session, saver = _journaled_session(path, 3)
    saver.close()
    journal = journal_path(path)
    lines = journal.read_bytes().split(b"\n")
    lines[2] = lines[2][:-5] + b"#####"
    journal.write_bytes(b"\n".join(lines))
    turn(convo_shell, "mine", "c1")
    before = dict(SESSION.conversations)
    text = one_line_error(convo_shell, f"%convo load {path}", capsys)
    assert f"{journal} is corrupt at line 3" in text and "move it away" in text
    assert SESSION.conversations == before and nbconvo.current().path[0].prompt == "mine"


def test_a_journal_line_does_not_grow_with_the_history(tmp_path: Path) -> None:
    """Autosave writes what changed: the bytes written for one more turn are the same
    at 10 turns of history as at 2,000 (the whole session is rewritten only when the
    journal outgrows the last snapshot)."""
    sizes = []
    for history in (10, 2000):
        path = tmp_path / f"h{history}.nbconvo.json"
        session, saver = _journaled_session(path, history)
        saver.snapshot(session, path)
        before = journal_path(path).stat().st_size
        tree = session.current().tree
        tree.append(Turn(id=tree.new_turn_id(), parent=tree.head, prompt="pX", answer="aX"))
        saver.save(session, path)
        sizes.append(journal_path(path).stat().st_size - before)
        saver.close()
    # Only four numbers differ, each two digits longer: the turn's id and parent, the
    # branch pointer and the next id ("11" vs "2001").
    assert sizes[1] - sizes[0] == 4 * 2


def test_saving_to_the_autosave_path_keeps_the_journal_going(convo_shell: InteractiveShell) -> None:
    turn(convo_shell, "one", "c1")
    path = autosave_file()
    assert convo_shell.run_cell(f"%convo save {path}").success
    turn(convo_shell, "two", "c2")
    turns = read_document(path)["conversations"][0]["tree"]["turns"]
    assert [t["prompt"] for t in turns] == ["one", "two"]


def test_save_and_load_bring_back_tree_branches_and_head(convo_shell: InteractiveShell, tmp_path: Path) -> None:
    turn(convo_shell, "one", "c1")
    turn(convo_shell, "two", "c2")
    assert convo_shell.run_cell("%convo fork 1 --name alt").success
    turn(convo_shell, "alt two", "c3")
    assert convo_shell.run_cell("%convo system Be kind.").success
    target = tmp_path / "saved.json"
    assert convo_shell.run_cell(f"%convo save {target}").success
    before = nbconvo.current()
    turns, branches = dict(before.tree.turns), dict(before.branches)
    assert convo_shell.run_cell("%convo reset").success
    assert convo_shell.run_cell(f"%convo load {target}").success
    after = nbconvo.current()
    assert after is not before
    assert after.tree.turns == turns and after.branches == branches
    assert after.branch == "alt" and after.system == "Be kind."
    turn(convo_shell, "continue", "c4")  # the loaded conversation keeps working
    assert [t.prompt for t in after.path] == ["one", "alt two", "continue"]


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "is corrupt (not valid JSON"),
    ('{"format": "something-else"}', "is not an nbconvo file"),
    ('{"format": "nbconvo", "version": 99, "conversations": []}', "written by a newer nbconvo (format 99"),
    ('{"format": "nbconvo", "version": 1, "conversations": [{"name": "x"}]}', "is corrupt (KeyError"),
    ('{"format": "nbconvo", "version": 1, "conversations": [{"name": "x", "tree": {"turns": [{"id": 1, "parent": 7, "prompt": "a", "answer": "b"}], "branches": {"main": 1}, "current": "main", "next_id": 2}}]}', "broken conversation tree"),
])
def test_bad_files_change_nothing(convo_shell: InteractiveShell, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str], content: str, message: str) -> None:
    turn(convo_shell, "one", "c1")
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    before = dict(SESSION.conversations)
    assert message in one_line_error(convo_shell, f"%convo load {bad}", capsys)
    assert SESSION.conversations == before and nbconvo.current().path[0].prompt == "one"


def test_load_missing_file(convo_shell: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "no file at" in one_line_error(convo_shell, f"%convo load {tmp_path / 'nope.json'}", capsys)


def test_unwritable_folder(convo_shell: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.access(locked, os.W_OK):  # root ignores permissions: use a path under a file instead
        locked = tmp_path / "a-file"
        locked.write_text("x")
    text = one_line_error(convo_shell, f"%convo save {locked / 'x.json'}", capsys)
    assert "cannot write in" in text
    monkeypatch.setenv("NBCONVO_HOME", str(locked))
    turn(convo_shell, "still works", "c1")  # the turn is kept in memory; the footer says why
    assert nbconvo.current().path[0].prompt == "still works"
    assert "autosave failed: cannot write in" in convo_shell.display_pub.markdown()[-1]


def test_exports(convo_shell: InteractiveShell, tmp_path: Path) -> None:
    assert convo_shell.run_cell("%convo system Be brief.").success
    turn(convo_shell, "one", "c1")
    turn(convo_shell, "two", "c2")
    for fmt in ("md", "json", "openai"):
        assert convo_shell.run_cell(f"%convo export --to {fmt} {tmp_path / ('out.' + fmt)}").success
    assert "### Turn 2" in (tmp_path / "out.md").read_text()
    assert json.loads((tmp_path / "out.json").read_text())["tree"]["branches"] == {"main": 2}
    assert json.loads((tmp_path / "out.openai").read_text()) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "one"}, {"role": "assistant", "content": "echo #1: one"},
        {"role": "user", "content": "two"}, {"role": "assistant", "content": "echo #2: two"},
    ]


# -- cassettes --------------------------------------------------------------------------


def test_record_then_replay_without_server_or_key(shell: InteractiveShell, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    cassette = tmp_path / "c.jsonl"
    with FakeOpenAI(api_key=FAKE_KEY) as fake:
        monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        assert shell.run_cell("%convo model openai:gpt-test").success
        assert shell.run_cell(f"%convo replay {cassette} --mode record").success
        turn(shell, "one", "c1")
        turn(shell, "two", "c2")
        recorded = shell.display_pub.markdown()
    text = cassette.read_text()
    assert FAKE_KEY not in text and stat.S_IMODE(cassette.stat().st_mode) == 0o600
    assert len(text.splitlines()) == 3  # header + two answers
    first = text
    # No server, no key: replay gives the same outputs.
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert shell.run_cell("%convo reset").success
    shell.display_pub.reset()
    assert shell.run_cell(f"%convo replay {cassette} --mode replay").success
    turn(shell, "one", "c1")
    turn(shell, "two", "c2")
    replayed = shell.display_pub.markdown()
    assert [m for m in replayed if "echo" in m or "<sub>" in m] == [m for m in recorded if "echo" in m or "<sub>" in m]
    # A request it never saw: a one-line miss naming the turn; nothing recorded as a turn.
    message = one_line_error(shell, "%%turn\nthree", capsys)
    assert "has no answer for turn 3 ('three', openai:gpt-test)" in message
    assert len(nbconvo.current().path) == 2
    assert cassette.read_text() == first  # replay never rewrites the cassette


def test_rerecording_is_stable(shell: InteractiveShell, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    cassette = tmp_path / "c.jsonl"
    assert shell.run_cell("%convo model openai:gpt-test").success
    for _ in range(2):
        assert shell.run_cell("%convo reset").success
        assert shell.run_cell(f"%convo replay {cassette} --mode record").success
        turn(shell, "one", "c1")
        turn(shell, "two", "c2")
        text = cassette.read_text()
    assert text == cassette.read_text() and len(text.splitlines()) == 3


@pytest.mark.parametrize(("content", "message"), [
    ('{"format": "nbconvo-cassette", "version": 1}\n{"key": "abc", "events": [{"kind": "te', "line 2 of cassette"),
    ('{"format": "nbconvo-cassette", "version": 1, "notebook": "other.ipynb"}\n', "was recorded for notebook 'other.ipynb'"),
    ('{"format": "nbconvo-cassette", "version": 7}\n', "written by a newer nbconvo"),
    ("hello\n", "line 1 of cassette"),
])
def test_bad_cassettes(shell: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture[str], content: str, message: str) -> None:
    monkeypatch.setenv("NBCONVO_NOTEBOOK", "this.ipynb")
    cassette = tmp_path / "c.jsonl"
    cassette.write_text(content)
    assert message in one_line_error(shell, f"%convo replay {cassette} --mode replay", capsys)
    assert SESSION.cassette is None and cassette.read_text() == content


def test_replay_needs_an_existing_cassette(shell: InteractiveShell, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert "no cassette at" in one_line_error(shell, f"%convo replay {tmp_path / 'x.jsonl'} --mode replay", capsys)


def test_the_journal_is_folded_into_a_snapshot_once_it_outgrows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbconvo._store as store

    monkeypatch.setattr(store, "_MIN_COMPACT_BYTES", 0)
    path = tmp_path / "s.nbconvo.json"
    session, saver = _journaled_session(path, 40)
    saver.close()
    snapshot = json.loads(path.read_text())
    journal_lines = journal_path(path).read_text().splitlines()
    # Folded along the way: the snapshot holds most turns, the journal only the latest.
    assert len(snapshot["conversations"][0]["tree"]["turns"]) > 20
    assert len(journal_lines) - 1 < 20
    stored = read_document(path)
    stored.pop("journal")
    assert stored == _session_document(session)


@pytest.mark.parametrize("what", ["deleted", "replaced", "journal deleted"])
def test_autosave_starts_afresh_when_its_files_are_deleted_or_replaced(
    tmp_path: Path, what: str
) -> None:
    """Lines appended to a journal nobody will read would be lost: a snapshot deleted or
    replaced (say, by another kernel's save), or a deleted journal, makes the next save a
    whole new snapshot."""
    path = tmp_path / "s.nbconvo.json"
    session, saver = _journaled_session(path, 3)
    if what == "deleted":
        path.unlink()
        journal_path(path).unlink()
    elif what == "replaced":
        other = Session()
        Autosaver().snapshot(other, path)  # a different session's snapshot and journal
    else:
        journal_path(path).unlink()
    tree = session.current().tree
    tree.append(Turn(id=tree.new_turn_id(), parent=tree.head, prompt="p3", answer="a3"))
    saver.save(session, path)
    saver.close()
    stored = read_document(path)
    stored.pop("journal")
    assert stored == _session_document(session)
    assert len(stored["conversations"][0]["tree"]["turns"]) == 4


def test_a_cassette_rerecorded_with_the_same_answers_is_byte_identical(tmp_path: Path) -> None:
    """Re-recording replaces entries in place and writes each one the same way, so a
    cassette in git does not churn; lines read from the file are written back as read."""
    from nbconvo._cassette import Cassette
    from nbconvo._types import ChatRequest, Finish, Usage

    def request(text: str) -> ChatRequest:
        return ChatRequest(provider="openai", model="m", messages=({"role": "user", "content": text},))

    path = tmp_path / "c.jsonl"
    first = Cassette(path, "record", "nb.ipynb")
    for text in ("one", "two", "three"):
        first.record(request(text), ["echo ", text, Usage(3, 2), Finish("stop")])
    recorded = path.read_bytes()
    again = Cassette(path, "auto", "nb.ipynb")  # loads the file, then records one again
    again.record(request("two"), ["echo ", "two", Usage(3, 2), Finish("stop")])
    assert path.read_bytes() == recorded
    assert again.lookup(request("three")) == ["echo ", "three", Usage(3, 2), Finish("stop")]
