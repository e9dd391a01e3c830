"""Portable files (`%convo save` / `load`), the autosave files of nbconvo 0.1 they still
read, exports and replay cassettes (DESIGN §7). The SQLite store: tests/unit/test_store.py."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from IPython.core.interactiveshell import InteractiveShell

import nbconvo
from nbconvo._document import journal_path, read_document, tree_from_dict, tree_to_dict
from nbconvo._session import SESSION
from tests.support.fakes.openai_server import FakeOpenAI
from tests.support.helpers import FAKE_KEY, kernel_started_with, one_line_error, turn
from tests.support.legacy import check_legacy_tour, legacy_copy
from tests.support.trees import build, operations

# -- round trip over random trees -------------------------------------------------------

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


# -- portable files ---------------------------------------------------------------------


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
    assert target.read_text().startswith('{"format": "nbconvo", "version": 1,')
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


# -- the autosave of nbconvo 0.1 (a snapshot plus a journal): still loads ---------------

@pytest.mark.parametrize("which", ["snapshot", "journal"])
def test_an_old_autosave_and_its_journal_load(
    convo_shell: InteractiveShell, tmp_path: Path, which: str
) -> None:
    path = legacy_copy(tmp_path)
    before = path.read_bytes(), journal_path(path).read_bytes()
    target = path if which == "snapshot" else journal_path(path)
    assert convo_shell.run_cell(f"%convo load {target}").success
    check_legacy_tour()
    assert (path.read_bytes(), journal_path(path).read_bytes()) == before  # only read
    turn(convo_shell, "and now?", "c9")  # the loaded conversation goes on
    assert nbconvo.current().path[-1].prompt == "and now?"


def test_a_journal_without_its_snapshot_names_the_file_to_restore(
    convo_shell: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = legacy_copy(tmp_path)
    path.unlink()
    turn(convo_shell, "mine", "c1")
    text = one_line_error(convo_shell, f"%convo load {journal_path(path)}", capsys)
    assert "is the journal of tour.nbconvo.json, which is missing" in text
    assert nbconvo.current().path[0].prompt == "mine"


def test_a_line_cut_by_a_kill_is_ignored_and_a_stale_journal_too(tmp_path: Path) -> None:
    path = legacy_copy(tmp_path)
    journal = journal_path(path)
    whole = journal.read_bytes()
    full = read_document(path)
    journal.write_bytes(whole + b'{"current": "default", "conversations": [{"na')
    assert read_document(path) == full
    document = json.loads(path.read_text())
    document["journal"] = "another-base"  # a journal of an older snapshot: not applied
    path.write_text(json.dumps(document))
    stale = read_document(path)
    assert [len(c["tree"]["turns"]) for c in stale["conversations"]] == [4, 0]


def test_a_damaged_journal_line_is_one_error_and_loads_nothing(
    convo_shell: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = legacy_copy(tmp_path)
    journal = journal_path(path)
    lines = journal.read_bytes().split(b"\n")
    lines[1] = lines[1][:-5] + b"#####"
    journal.write_bytes(b"\n".join(lines))
    turn(convo_shell, "mine", "c1")
    before = dict(SESSION.conversations)
    text = one_line_error(convo_shell, f"%convo load {path}", capsys)
    assert f"{journal} is corrupt at line 2" in text and "move it away" in text
    assert SESSION.conversations == before and nbconvo.current().path[0].prompt == "mine"


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
        recorded = shell.display_pub.plain()
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
    replayed = shell.display_pub.plain()
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
    kernel_started_with(monkeypatch, NBCONVO_NOTEBOOK="this.ipynb")
    cassette = tmp_path / "c.jsonl"
    cassette.write_text(content)
    assert message in one_line_error(shell, f"%convo replay {cassette} --mode replay", capsys)
    assert SESSION.cassette is None and cassette.read_text() == content


def test_replay_needs_an_existing_cassette(shell: InteractiveShell, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert "no cassette at" in one_line_error(shell, f"%convo replay {tmp_path / 'x.jsonl'} --mode replay", capsys)


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


def test_export_md_keeps_a_list_answer_a_list_and_all_has_every_branch(
    convo_shell: InteractiveShell, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    from markdown_it import MarkdownIt

    from nbconvo._transcript import transcript_markdown

    def answer(messages: list[dict[str, Any]]) -> str:
        last = messages[-1]["content"]
        return "Three steps:\n\n1. Measure churn\n2. Find the signals\n3. Reach out" if last == "plan" else f"ok: {last}"

    fake_openai.answer = answer
    turn(convo_shell, "plan", "c1")
    turn(convo_shell, "go on", "c2")
    assert convo_shell.run_cell("%convo fork 1 --name alt", cell_id="c3").success
    turn(convo_shell, "other way", "c4")
    out = tmp_path / "talk.md"
    assert convo_shell.run_cell(f"%convo export --to md {out}").success
    tokens = MarkdownIt().parse(out.read_text())
    items = [t.content for i, t in enumerate(tokens) if t.type == "inline" and tokens[i - 2].type == "list_item_open"]
    assert items == ["Measure churn", "Find the signals", "Reach out"]
    paragraphs = [t.content for i, t in enumerate(tokens) if t.type == "inline" and tokens[i - 1].type == "paragraph_open"]
    assert "**Assistant:**" in paragraphs and "Three steps:" in paragraphs  # not glued together
    assert "other way" in paragraphs and "go on" not in paragraphs  # the active path: alt
    everything = tmp_path / "all.md"
    assert convo_shell.run_cell(f"%convo export --to md --all {everything}").success
    text = everything.read_text()
    assert "## Branch alt (current)" in text and "## Branch main" in text and "go on" in text
    assert text == transcript_markdown(nbconvo.current(), all_branches=True) + "\n"  # as `nbconvo run` writes it
