"""The public Python API (DESIGN §1.3): names exported by the package, and a Conversation
driven from code, against a loopback OpenAI server."""

from __future__ import annotations

import json

import pytest

import nbconvo
from nbconvo import Conversation
from nbconvo._events import ConversationEvent, Forked, SettingChanged
from tests.support.fakes.openai_server import Canned, FakeOpenAI


def test_public_names() -> None:
    assert set(nbconvo.__all__) == {
        "ConfigurationError", "ContextWindowExceeded", "Conversation", "ConversationError",
        "ConversationTree", "NbconvoError", "PersistenceError", "ProviderError", "ReplayMiss",
        "StreamInterrupted", "StreamSink", "Turn", "TurnInterrupted", "TurnOptions", "UsageError",
        "compact", "current", "fork", "load_ipython_extension", "summarize", "tool",
        "unload_ipython_extension", "widget", "TextPart", "ImagePart",
    }
    import nbconvo._parts as parts

    # each public name is the very object its private module defines
    assert nbconvo.Conversation is Conversation and nbconvo.TextPart is parts.TextPart
    assert nbconvo.ImagePart is parts.ImagePart and nbconvo.Turn is nbconvo._tree.Turn
    for name in nbconvo.__all__:
        value = getattr(nbconvo, name)
        assert isinstance(value, type) or callable(value), name
        if isinstance(value, type):
            assert value.__module__.startswith("nbconvo._"), (name, value.__module__)
    for error in ("UsageError", "ConversationError", "ProviderError", "ReplayMiss"):
        assert issubclass(getattr(nbconvo, error), nbconvo.NbconvoError)
    assert issubclass(nbconvo.NbconvoError, Exception)


def test_conversation_from_code(fake_openai: FakeOpenAI) -> None:
    convo = Conversation(name="api", model="openai:gpt-test", system="Be brief.")
    first = convo.ask("one")
    assert first.answer == "echo #1: one" and first.usage_exact and convo.head == first
    convo.ask("two", temperature=0.5, max_tokens=20)
    assert fake_openai.requests[-1]["temperature"] == 0.5
    assert convo.messages() == [
        {"role": "user", "content": "one"}, {"role": "assistant", "content": "echo #1: one"},
        {"role": "user", "content": "two"}, {"role": "assistant", "content": "echo #2: two"},
    ]
    assert convo.fork(1, name="alt") == "alt" and [t.prompt for t in convo.path] == ["one"]
    convo.ask("alt")
    assert convo.switch("main") == "main" and len(convo.path) == 2
    assert set(convo.branches) == {"main", "alt"} and len(convo.turns) == 3
    assert "### Turn 2.1" in convo.export("md") and "<h3>Turn 2.1</h3>" in convo._repr_html_()
    assert json.loads(convo.export("openai"))[0] == {"role": "system", "content": "Be brief."}
    assert json.loads(convo.export("json"))["tree"]["branches"] == {"main": 2, "alt": 3}
    with pytest.raises(nbconvo.UsageError, match="unknown export format 'xml': use md, json or openai"):
        convo.export("xml")
    fake_openai.script.append(Canned(pieces=["- one and two"]))
    assert convo.summarize() == "- one and two"
    fake_openai.script.append(Canned(pieces=["- one"]))
    assert convo.compact(keep=1) == "compact-1"
    assert [t.kind for t in convo.path] == ["summary", "turn"]
    assert "<p>echo #1: one</p>" in first._repr_html_()


def test_settings_changes_are_announced() -> None:
    convo = Conversation(name="api", model="openai:gpt-test")
    seen: list[ConversationEvent] = []
    convo.listeners.append(seen.append)
    convo.goal = "ship it"
    convo.budget = 3
    convo.temperature = 0.1  # not shown anywhere: not announced
    convo.fork(0, "empty")
    assert seen == [SettingChanged("goal"), SettingChanged("budget"), Forked("empty")]
