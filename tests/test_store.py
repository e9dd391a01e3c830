"""Autosave, save/load, export and replay cassettes (DESIGN §7)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from IPython.core.interactiveshell import InteractiveShell

import nbconvo
from nbconvo._session import SESSION
from nbconvo._store import VERSION, tree_from_dict, tree_to_dict
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
    for op, n, text in ops:
        path = tree.path()
        if op == "add" or not tree.turns:
            tree.append(Turn(id=tree.new_turn_id(), parent=None, prompt=text, answer=text[::-1],
                             status=["ok", "error", "interrupted"][n % 3], cell_id=f"c{n % 4}",
                             params={"temperature": n / 10}, usage_exact=bool(n % 2)))
        elif op == "fork":
            tree.fork(n % (len(path) + 1))
        elif op == "switch":
            tree.switch(f"#{1 + n % len(tree.turns)}")
        elif op == "undo" and path:
            tree.undo()
        elif op == "rerun" and path:
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
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["format"] == "nbconvo" and data["version"] == VERSION
    assert [t["prompt"] for t in data["conversations"][0]["tree"]["turns"]] == ["one"]
    assert convo_shell.run_cell("%convo fork 0 --name other").success
    assert json.loads(path.read_text())["conversations"][0]["tree"]["current"] == "other"
    assert FAKE_KEY not in path.read_text()


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
