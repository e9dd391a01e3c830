"""Anthropic Messages: what nbconvo sends and how it reads every event and stop reason."""

from __future__ import annotations

import pytest

from nbconvo._types import ChatRequest
from nbconvo.providers import create_provider
from nbconvo.providers.anthropic import API_VERSION, alternate
from tests.support.fakes.base import Canned
from tests.support.provider_cases import BY_NAME, request, run

CASE = BY_NAME["anthropic"]


def test_request_headers_and_body(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch) as fake:
        outcome = run(CASE.provider(), request(CASE, "one", "two", system="Be brief.", seed=7))
        assert outcome.error is None
        seen = fake.seen[0]
        assert seen.path == "/v1/messages"
        assert seen.headers["anthropic-version"] == API_VERSION == "2026-10-21"
        assert seen.headers["authorization"] == f"Bearer {fake.api_key}"
        assert seen.body == {
            "model": "claude-sonnet-5-5",
            "max_tokens": 16_384,  # the model table's default: the API requires one
            "messages": [
                {"role": "user", "content": "one"},
                {"role": "assistant", "content": "echo #1: one"},
                {"role": "user", "content": "two"},
            ],
            "system": "Be brief.",
            "stream": True,
        }


def test_max_tokens_default_for_an_unknown_model_and_explicit_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with CASE.running(monkeypatch) as fake:
        provider = create_provider("anthropic:claude-future-9")
        run(
            provider,
            ChatRequest("anthropic", "claude-future-9", ({"role": "user", "content": "x"},)),
        )
        run(
            provider,
            ChatRequest(
                "anthropic", "claude-future-9", ({"role": "user", "content": "x"},), max_tokens=99
            ),
        )
        assert [body["max_tokens"] for body in fake.requests] == [8_192, 99]


def test_temperature_is_dropped_with_one_note_per_value(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch) as fake:
        provider = CASE.provider()
        notes = [run(provider, request(CASE, "x", temperature=t)).notices for t in (0.2, 0.2, 0.9)]
        assert notes[0] == [
            "temperature 0.2 not sent: Anthropic API version 2026-10-21 accepts no sampling "
            "parameters"
        ]
        assert notes[1] == [] and notes[2][0].startswith("temperature 0.9 not sent")
        assert all("temperature" not in body for body in fake.requests)  # the fake would refuse


def test_same_role_neighbours_are_merged_and_the_first_turn_is_the_users() -> None:
    merged = alternate(
        [
            {"role": "assistant", "content": "earlier answer"},
            {"role": "user", "content": "a"},
            {"role": "user", "content": "b"},
        ]
    )
    assert merged == [
        {"role": "user", "content": "(continued)"},
        {"role": "assistant", "content": "earlier answer"},
        {"role": "user", "content": "a\n\nb"},
    ]


def test_thinking_blocks_pings_and_unknown_events_are_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with CASE.running(monkeypatch) as fake:
        fake.script.append(Canned(options={"unknown_events": True}))
        outcome = run(CASE.provider(), request(CASE, "hello"))
        assert outcome.error is None and outcome.text == "echo #1: hello"
        assert "hidden thoughts" not in outcome.text


def test_usage_is_cumulative_from_message_delta(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch):
        outcome = run(CASE.provider(), request(CASE, "hello", system="Be brief."))
        assert outcome.usage is not None
        assert outcome.usage.output_tokens == 4  # pieces of "echo #1: hello"
        assert outcome.usage.input_tokens == 3 + 2  # "Be brief." and "hello" in the fake's count


@pytest.mark.parametrize(
    ("stop", "reason", "notice"),
    [
        ("end_turn", "stop", None),
        ("stop_sequence", "stop", None),
        ("max_tokens", "length", "answer cut at 4 tokens"),
        ("refusal", "refusal", "refused to answer"),
        ("pause_turn", "other", "paused a long turn"),
        ("tool_use", "other", "use a tool"),
        ("model_context_window_exceeded", "length", "context window"),
        ("a_reason_from_the_future", "other", "a_reason_from_the_future"),
    ],
)
def test_every_stop_reason_is_mapped(
    stop: str, reason: str, notice: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with CASE.running(monkeypatch) as fake:
        fake.script.append(Canned(finish=stop))
        outcome = run(CASE.provider(), request(CASE, "hello"))
        assert outcome.finish is not None and outcome.finish.reason == reason
        if notice is None:
            assert outcome.finish.notice is None
        else:
            assert outcome.finish.notice is not None and notice in outcome.finish.notice


def test_max_tokens_stop_says_where_it_was_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch):
        outcome = run(CASE.provider(), request(CASE, "hello", max_tokens=2))
        assert outcome.text == "echo #1:"
        assert outcome.finish is not None and outcome.finish.notice == (
            "answer cut at 2 tokens: raise the limit with --max-tokens N"
        )


def test_overloaded_529_is_retried_and_spend_limit_429_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.support.fakes.anthropic_server import error_body

    with CASE.running(monkeypatch) as fake:
        fake.script.append(Canned(status=529, body=error_body("overloaded_error", "Overloaded")))
        assert run(CASE.provider(), request(CASE, "x")).error is None
        assert len(fake.requests) == 2
        fake.script.append(
            Canned(
                status=429,
                body=error_body(
                    "rate_limit_error", "You have reached your specified workspace spend limit."
                ),
            )
        )
        outcome = run(CASE.provider(), request(CASE, "x"))
        assert outcome.error is not None and "spend limit" in str(outcome.error)
        assert len(fake.requests) == 3


def test_rate_limit_headers_from_the_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.fakes.anthropic_server import error_body

    with CASE.running(monkeypatch) as fake:
        fake.script.append(
            Canned(
                status=429,
                body=error_body(
                    "rate_limit_error",
                    "Number of request tokens has exceeded your per-minute rate limit",
                ),
                headers={
                    "retry-after": "0",
                    "anthropic-ratelimit-requests-reset": "2026-11-25T10:00:30Z",
                    "anthropic-ratelimit-tokens-remaining": "0",
                },
            )
        )
        assert run(CASE.provider(), request(CASE, "x")).error is None
        assert len(fake.requests) == 2


def test_base_url_written_with_v1_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch) as fake:
        provider = create_provider(CASE.spec, base_url=fake.base_url + "/v1/")
        assert run(provider, request(CASE, "x")).error is None
        assert fake.seen[0].path == "/v1/messages"


def test_the_fake_refuses_what_the_real_api_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    with CASE.running(monkeypatch) as fake:
        url = fake.base_url + "/v1/messages"
        headers = {"x-api-key": fake.api_key, "anthropic-version": API_VERSION}
        good = {
            "model": "m",
            "max_tokens": 5,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        }
        cases = {
            "max_tokens: Field required": {k: v for k, v in good.items() if k != "max_tokens"},
            "temperature: Extra inputs": {**good, "temperature": 1.0},
            'Unexpected role "system"': {**good, "messages": [{"role": "system", "content": "s"}]},
            "roles must alternate": {
                **good,
                "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
            },
            "first message": {**good, "messages": [{"role": "assistant", "content": "a"}]},
        }
        for expected, body in cases.items():
            answer = httpx.post(url, json=body, headers=headers)
            assert answer.status_code == 400, expected
            assert expected in answer.json()["error"]["message"], expected
        answer = httpx.post(url, json=good, headers={"x-api-key": fake.api_key})
        assert answer.status_code == 400 and "anthropic-version" in answer.text
        answer = httpx.post(url, json=good, headers={**headers, "x-api-key": "nope"})
        assert (
            answer.status_code == 401 and answer.json()["error"]["type"] == "authentication_error"
        )
        assert answer.json()["request_id"]
