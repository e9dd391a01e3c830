"""Microsoft 365 Copilot Chat API: server conversations mapped to nbconvo paths,
cumulative text shown as deltas, the time zone, its one note, and its errors."""

from __future__ import annotations

import zoneinfo

import httpx
import pytest

from nbconvo._types import ChatRequest, Message, TextDelta
from nbconvo.providers.copilot import CopilotProvider, machine_time_zone
from tests.support.fakes.base import Canned
from tests.support.fakes.copilot_server import graph_error
from tests.support.provider_cases import BY_NAME, run

CASE = BY_NAME["copilot"]


def chat(*messages: str, system: str | None = None) -> ChatRequest:
    """Alternating user/assistant texts, ending with the user's prompt."""
    roles = ("user", "assistant")
    listed: list[Message] = [
        {"role": roles[n % 2], "content": text}  # type: ignore[typeddict-item]
        for n, text in enumerate(messages)
    ]
    return ChatRequest("copilot", "chat", tuple(listed), system=system)


def test_conversation_created_then_streamed(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch) as fake:
        monkeypatch.setenv("NBCONVO_M365_TIMEZONE", "Europe/Paris")
        outcome = run(CASE.provider(), chat("hello"))
        create, stream = fake.seen
        assert create.path == "/beta/copilot/conversations" and create.body == {}
        assert stream.path.endswith("/chatOverStream")
        assert stream.headers["authorization"] == f"Bearer {fake.api_key}"
        assert stream.body == {
            "message": {"text": "hello"},
            "locationHint": {"timeZone": "Europe/Paris"},
        }
        assert outcome.text == "echo #1: hello"
        assert outcome.usage is None  # Copilot reports none: nbconvo estimates


def test_cumulative_snapshots_become_deltas_never_repeated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with CASE.running(monkeypatch):
        outcome = run(CASE.provider(), chat("hello"))
        deltas = [e for e in outcome.events if isinstance(e, TextDelta)]
        assert deltas == ["echo", " #1:", " hel", "lo"]


def test_one_note_per_provider_about_what_it_cannot_do(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch):
        provider = CASE.provider()
        first = run(provider, chat("a"))
        second = run(provider, chat("a", "echo #1: a", "b"))
        assert len(first.notices) == 1 and second.notices == []
        note = first.notices[0]
        for limit in ("own model", "system prompt", "temperature", "no token usage", "estimates"):
            assert limit in note


def test_branches_map_to_server_conversations(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch) as fake:
        provider = CASE.provider()
        run(provider, chat("one", system="Goal: churn"))
        run(provider, chat("one", "echo #1: one", "two", system="Goal: churn"))
        assert len(fake.conversations) == 1  # continued: only the new message is sent
        assert "additionalContext" not in fake.requests[1]
        # a fork from turn 1: new server conversation, earlier turns as context
        forked = run(provider, chat("one", "echo #1: one", "other", system="Goal: churn"))
        assert forked.text == "echo #2: other" and len(fake.conversations) == 2
        assert fake.requests[-1]["additionalContext"] == [
            {"text": "Goal: churn", "description": "instructions for this conversation"},
            {"text": "User: one", "description": "turn 1 of the conversation so far"},
            {"text": "Assistant: echo #1: one", "description": "turn 1 of the conversation so far"},
        ]
        # back on main: its conversation continues
        main = run(
            provider,
            chat("one", "echo #1: one", "two", "echo #2: two", "three", system="Goal: churn"),
        )
        assert main.text == "echo #3: three" and len(fake.conversations) == 2


def test_a_changed_system_prompt_starts_a_new_conversation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with CASE.running(monkeypatch) as fake:
        provider = CASE.provider()
        run(provider, chat("one"))
        run(provider, chat("one", "echo #1: one", "two", system="new goal"))
        assert len(fake.conversations) == 2


def test_disengaged_conversation_is_a_filter_stop_and_not_continued(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with CASE.running(monkeypatch) as fake:
        provider = CASE.provider()
        fake.script.append(Canned(options={"disengage": True}))
        outcome = run(provider, chat("one"))
        assert outcome.finish is not None and outcome.finish.reason == "content_filter"
        assert outcome.finish.notice is not None and "responsible-AI" in outcome.finish.notice
        again = run(provider, chat("one", outcome.text, "two"))
        assert again.error is None and len(fake.conversations) == 2


def test_rewritten_final_text_is_shown_once_more_with_a_note(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with CASE.running(monkeypatch) as fake:
        fake.script.append(Canned(options={"rewrite": True}))
        outcome = run(CASE.provider(), chat("hello"))
        assert outcome.text == "echo #1: hello\n\n---\n\nRewritten: echo #1: hello"
        assert any("revised its answer" in n for n in outcome.notices)


def test_an_expired_server_conversation_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch) as fake:
        provider = CASE.provider()
        run(provider, chat("one"))
        fake.conversations.clear()  # the server forgot it
        outcome = run(provider, chat("one", "echo #1: one", "two"))
        assert outcome.error is None and outcome.text == "echo #2: two"
        assert fake.requests[-1]["additionalContext"][0]["text"] == "User: one"


@pytest.mark.parametrize(
    ("status", "expected"),
    [(401, "set NBCONVO_M365_TOKEN to a fresh delegated"), (403, "Microsoft 365 Copilot license")],
)
def test_auth_errors_name_the_fix(
    status: int, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with CASE.running(monkeypatch) as fake:
        fake.script.append(Canned(status=status, body=graph_error("Forbidden", "denied")))
        outcome = run(CASE.provider(), chat("hello"))
        assert outcome.error is not None and expected in str(outcome.error)


def test_throttled_conversation_creation_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch) as fake:
        fake.script.append(
            Canned(
                status=429,
                body=graph_error("TooManyRequests", "slow"),
                headers={"Retry-After": "0"},
                options={"on_create": True},
            )
        )
        outcome = run(CASE.provider(), chat("hello"))
        assert outcome.error is None and len(fake.conversations) == 1


def test_machine_time_zone() -> None:
    assert machine_time_zone({"TZ": ":America/New_York"}) == "America/New_York"
    assert machine_time_zone({"NBCONVO_M365_TIMEZONE": "Asia/Tokyo", "TZ": "UTC"}) == "Asia/Tokyo"
    zone = machine_time_zone({"NBCONVO_M365_TIMEZONE": "Not/AZone"})
    zoneinfo.ZoneInfo(zone)  # always a valid IANA name: the machine's, or UTC at worst


def test_the_fake_requires_a_time_zone_and_answers_chat(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch) as fake:
        headers = {"authorization": f"Bearer {fake.api_key}"}
        created = httpx.post(fake.base_url + "/copilot/conversations", json={}, headers=headers)
        assert created.status_code == 201
        url = f"{fake.base_url}/copilot/conversations/{created.json()['id']}/chat"
        for hint in (None, {"timeZone": "Mars/Olympus"}):
            body = {"message": {"text": "hi"}, **({"locationHint": hint} if hint else {})}
            answer = httpx.post(url, json=body, headers=headers)
            assert answer.status_code == 400 and "timeZone" in answer.json()["error"]["message"]
        answer = httpx.post(
            url,
            json={"message": {"text": "hi"}, "locationHint": {"timeZone": "UTC"}},
            headers=headers,
        )
        messages = answer.json()["messages"]
        assert answer.status_code == 200 and [m["text"] for m in messages] == ["hi", "echo #1: hi"]
        assert answer.json()["turnCount"] == 1
        assert httpx.post(url, json={}, headers={}).status_code == 401


def test_provider_reads_the_time_zone_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBCONVO_M365_TIMEZONE", "Europe/Berlin")
    provider = CopilotProvider(prefix="copilot", model="chat", base_url="http://127.0.0.1:9")
    assert provider.time_zone == "Europe/Berlin"


def test_the_note_comes_again_when_the_first_turn_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch) as fake:
        provider = CASE.provider()
        fake.script.append(Canned(status=403, body=graph_error("Forbidden", "denied")))
        assert run(provider, chat("a")).error is not None
        assert len(run(provider, chat("a")).notices) == 1
        assert run(provider, chat("a", "echo #1: a", "b")).notices == []
