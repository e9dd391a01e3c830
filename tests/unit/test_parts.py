"""A turn made of parts (issue #13): text and an image through `Conversation.ask` and the
loopback OpenAI fake, kept in the tree, the store, portable files and cassettes; the
files of the format before parts (a committed store, the committed cassettes) still
load and replay."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

import nbconvo
from nbconvo._cassette import Cassette, canonical_request, request_key
from nbconvo._parts import (
    DataPart,
    ImagePart,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    content_of,
    part_from_json,
    part_to_json,
    text_of,
)
from nbconvo._session import SESSION, Session
from nbconvo._types import ChatRequest
from tests.support.fakes.openai_server import FakeOpenAI

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PNG = (FIXTURES / "tiny.png").read_bytes()


def test_every_part_kind_survives_json() -> None:
    parts = [
        TextPart("hello"),
        ImagePart(PNG, "image/png", name="plot.png"),
        DataPart("df", "| a | b |\n|---|---|\n| 1 | 2 |"),
        ToolCallPart("call_1", "add", '{"a": 1, "b": 2}'),
        ToolResultPart("call_1", "3"),
        ReasoningPart("thinking…", opaque="b64blob", provider="anthropic"),
    ]
    for part in parts:
        assert part_from_json(json.loads(json.dumps(part_to_json(part)))) == part
    assert "bytes" in repr(parts[1]) and PNG[:8].hex() not in repr(parts[1])
    assert text_of(parts) == "hello{df}"  # a data part reads as the placeholder it filled
    assert content_of((TextPart("a"), TextPart("b"))) == "ab"  # all text: a plain string
    with pytest.raises(ValueError, match="unknown part kind"):
        part_from_json({"kind": "hologram"})


def test_text_messages_keep_their_cassette_keys() -> None:
    """Every entry of the committed documentation cassettes (recorded before parts
    existed) is found again under the key today's requests are given."""
    checked = 0
    for path in sorted((Path(__file__).resolve().parents[2] / "notebooks" / "cassettes").glob("*.jsonl")):
        for line in path.read_text().splitlines()[1:]:
            entry = json.loads(line)
            stored = entry["request"]
            if "tools" in stored or "schema" in stored:
                continue  # recorded since: tools.jsonl (its keys are checked by its replay)
            request = ChatRequest(
                provider=stored["provider"], model=stored["model"],
                messages=tuple(stored["messages"]), system=stored["system"],
                temperature=stored["temperature"], max_tokens=stored["max_tokens"],
                seed=stored["seed"],
            )
            assert canonical_request(request) == stored
            assert request_key(request) == entry["key"]
            checked += 1
    assert checked >= 10


def ask_with_image(convo: nbconvo.Conversation) -> None:
    convo.ask("Describe the trend.", cell_id="c1")
    convo.ask([TextPart("What is in this plot?"), ImagePart(PNG, "image/png", name="plot.png")],
              cell_id="c2")
    convo.ask("And what should we do about it?", cell_id="c3")


def test_a_turn_with_an_image_goes_out_and_stays_in_the_tree(
    convo_shell: InteractiveShell, fake_openai: FakeOpenAI
) -> None:
    convo = nbconvo.current()
    ask_with_image(convo)
    with_image = convo.path[1]
    assert with_image.prompt == "What is in this plot?"
    assert [p.kind for p in with_image.prompt_parts] == ["text", "image"]
    assert convo.path[0].prompt_parts == ()  # text alone stays text
    # The image went out with its turn, and again as history with the next one.
    for request in fake_openai.requests[1:]:
        image = request["messages"][2]["content"][1]
        assert image["type"] == "image_url" and image["image_url"]["url"].startswith("data:image/png;base64,")
    assert fake_openai.requests[2]["messages"][-1] == {"role": "user", "content": "And what should we do about it?"}
    # A fork before it sends no image; a rerun of the image turn sends the same bytes.
    convo.fork(1, "no-image")
    convo.ask("Another direction", cell_id="c4")
    assert all(isinstance(m["content"], str) for m in fake_openai.requests[-1]["messages"])
    convo.switch("main")
    exported = json.loads(convo.export("openai"))
    assert exported[2]["content"][1]["kind"] == "image" and len(exported) == 6


def test_parts_survive_the_store_and_a_portable_file(
    convo_shell: InteractiveShell, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    convo = nbconvo.current()
    ask_with_image(convo)
    turns = dict(convo.tree.turns)
    # the store, as a new kernel restores it
    later = Session(locate_store=SESSION.locate_store)
    later.restore()
    assert later.current().tree.turns == turns
    later.writer().store.close()  # type: ignore[union-attr]
    # a portable file
    target = tmp_path / "saved.json"
    assert convo_shell.run_cell(f"%convo save {target}").success
    assert convo_shell.run_cell("%convo reset").success
    assert convo_shell.run_cell(f"%convo load {target}").success
    assert nbconvo.current().tree.turns == turns


def test_a_cassette_replays_an_image_turn_without_the_server(
    shell: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.helpers import FAKE_KEY

    cassette = tmp_path / "images.jsonl"
    with FakeOpenAI(api_key=FAKE_KEY) as fake:
        monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        assert shell.run_cell("%convo model openai:gpt-test").success
        assert shell.run_cell(f"%convo replay {cassette} --mode record").success
        ask_with_image(nbconvo.current())
        recorded = [t.answer for t in nbconvo.current().path]
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert shell.run_cell("%convo reset").success
    assert shell.run_cell(f"%convo replay {cassette} --mode replay").success
    ask_with_image(nbconvo.current())
    assert [t.answer for t in nbconvo.current().path] == recorded
    stored = [json.loads(line) for line in cassette.read_text().splitlines()[1:]]
    image = stored[1]["request"]["messages"][-1]["content"][1]
    assert image["kind"] == "image" and image["media_type"] == "image/png"
    assert Cassette(cassette, "replay").entries  # and it opens as any cassette does


def test_a_store_written_before_parts_restores(tmp_path: Path) -> None:
    """tests/fixtures/store-v1/tour.nbconvo.db was written by the store as it was
    before turns had parts: two sessions, the second restored from the first."""
    path = tmp_path / "tour.nbconvo.db"
    shutil.copy(FIXTURES / "store-v1" / "tour.nbconvo.db", path)
    session = Session(locate_store=lambda: path)
    listed = session.earlier_sessions()
    # the second: its own first turn (archived by the restore), the first session's 3
    # turns and its archived side conversation (1), and one turn after the restore
    assert [(s.number, s.turns) for s in listed] == [(1, 4), (2, 6)]
    session.restore()  # the latest: the second session
    import sqlite3

    db = sqlite3.connect(path)  # opened, it was migrated: version 2, a column added
    assert db.execute("PRAGMA user_version").fetchone() == (2,)
    columns = [row[1] for row in db.execute("PRAGMA table_info(conversations)")]
    assert "branch_cells" in columns
    db.close()
    convo = session.current()
    assert [t.prompt for t in convo.path] == [
        "What are the main strategies for improving customer retention?",
        "Pricing tiers instead?",
        "B after restore",
    ]
    assert convo.branches == {"main": 2, "pricing": 4} and convo.system == "You are a concise analyst."
    assert all(t.prompt_parts == () and t.answer_parts == () for t in convo.turns)
    assert convo.path[0].answer.startswith("1. **Onboarding**")
    session.restore(1)
    assert sorted(session.conversations) == ["default", "side"]
    assert [t.answer for t in session.conversations["side"].turns] == []
    session.writer().store.close()  # type: ignore[union-attr]


def test_a_tool_calls_signature_is_kept_and_absent_when_none() -> None:
    from nbconvo._parts import ToolCallPart, part_from_json, part_to_json

    signed = ToolCallPart("call_0", "add", '{"a": 1}', signature="c2lnbmF0dXJl")
    assert part_from_json(part_to_json(signed)) == signed
    plain = ToolCallPart("call_0", "add", '{"a": 1}')
    assert "signature" not in part_to_json(plain)  # keys of earlier cassettes unchanged
    assert part_from_json(part_to_json(plain)) == plain
