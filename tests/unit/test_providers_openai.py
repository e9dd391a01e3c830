"""OpenAI Chat Completions done fully: the body, the usage chunk, finish notices,
in-stream errors, temperature for models that refuse it, quota and retry hints."""

from __future__ import annotations

import dataclasses
import json
import time

import httpx
import pytest

from nbconvo.providers import create_provider
from tests.support.fakes.openai_server import Canned, _error
from tests.support.provider_cases import BY_NAME, OPENAI_KEY, request, run

CASE = BY_NAME["openai"]


def test_body_and_final_usage_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch) as fake:
        outcome = run(CASE.provider(), request(CASE, "hi", system="Be brief.", max_tokens=30))
        body = fake.requests[0]
        assert body["messages"][0] == {"role": "system", "content": "Be brief."}
        assert body["max_completion_tokens"] == 30 and "max_tokens" not in body
        assert body["stream_options"] == {"include_usage": True} and body["stream"] is True
        assert outcome.usage is not None and outcome.usage.output_tokens == 3  # "echo #1: hi"
        # usage arrives after the finish chunk; the finish is reported last
        assert outcome.events[-1] == outcome.finish and outcome.events[-2] == outcome.usage


@pytest.mark.parametrize(
    ("finish", "reason", "notice"),
    [
        ("length", "length", "answer cut at 4 tokens"),
        ("content_filter", "content_filter", "OpenAI's content filter"),
        ("tool_calls", "other", None),
    ],
)
def test_finish_reasons(
    finish: str, reason: str, notice: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with CASE.running(monkeypatch) as fake:
        fake.script.append(Canned(finish_reason=finish))
        outcome = run(CASE.provider(), request(CASE, "hello"))
        assert outcome.finish is not None and outcome.finish.reason == reason
        if notice:
            assert outcome.finish.notice is not None and notice in outcome.finish.notice


def test_temperature_dropped_for_a_reasoning_model(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch) as fake:
        chat = dataclasses.replace(request(CASE, "x", temperature=0.2), model="gpt-5.5")
        outcome = run(create_provider("openai:gpt-5.5"), chat)
        assert "temperature" not in fake.requests[0]
        assert outcome.notices == [
            "temperature 0.2 not sent to openai:gpt-5.5: the model takes no sampling parameters"
        ]


def test_unknown_model_refusing_temperature_is_retried_once_without(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with CASE.running(monkeypatch) as fake:
        fake.script.append(
            Canned(
                status=400,
                body=_error(
                    "Unsupported value: 'temperature' does not support 0.2 with this model. Only the "
                    "default (1) value is supported.",
                    "invalid_request_error",
                    "unsupported_value",
                ),
            )
        )
        outcome = run(CASE.provider(), request(CASE, "x", temperature=0.2))
        assert outcome.error is None and outcome.text == "echo #1: x"
        assert fake.requests[0]["temperature"] == 0.2 and "temperature" not in fake.requests[1]
        assert outcome.notices == [
            "temperature 0.2 not sent to openai:gpt-4.1: the model rejected it"
        ]


def test_insufficient_quota_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch) as fake:
        fake.script.append(
            Canned(
                status=429,
                body=_error(
                    "You exceeded your current quota, please check your plan and billing details.",
                    "insufficient_quota",
                    "insufficient_quota",
                ),
            )
        )
        outcome = run(CASE.provider(), request(CASE, "x"))
        assert "quota exhausted" in str(outcome.error) and len(fake.requests) == 1


def test_retry_after_in_whole_seconds_is_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch) as fake:
        monkeypatch.setenv("NBCONVO_RETRY_MAX_WAIT", "2")
        fake.script.append(
            Canned(
                status=429,
                body=_error(
                    "Rate limit reached for gpt-4.1 on tokens per min (TPM).",
                    "tokens",
                    "rate_limit_exceeded",
                ),
                headers={
                    "retry-after": "1",
                    "x-ratelimit-remaining-tokens": "0",
                    "x-ratelimit-reset-tokens": "51.189s",
                },
            )
        )
        started = time.monotonic()
        outcome = run(CASE.provider(), request(CASE, "x"))
        assert outcome.error is None and len(fake.requests) == 2
        assert time.monotonic() - started >= 0.95


def test_refusal_is_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch) as fake:
        fake.answer = lambda messages: "I can't help with that."
        outcome = run(CASE.provider(), request(CASE, "x"))
        assert outcome.text == "I can't help with that."


def test_compatible_servers_keep_their_behaviour(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch) as fake:
        monkeypatch.setenv("NBCONVO_API_KEY", OPENAI_KEY)
        provider = create_provider("ollama:llama3.2", base_url=fake.base_url)
        chat = dataclasses.replace(
            request(CASE, "x", max_tokens=9, temperature=0.1), provider="ollama", model="llama3.2"
        )
        assert run(provider, chat).error is None
        body = fake.requests[0]
        assert body["max_tokens"] == body["max_completion_tokens"] == 9
        assert body["temperature"] == 0.1


def test_reads_to_the_end_after_done_so_the_connection_is_reused() -> None:
    # Closing a response before the end of its body makes httpx drop the connection, and
    # the next turn would open a new one (a TLS handshake on a real API).
    import httpx

    from nbconvo._types import ChatRequest, TextDelta
    from nbconvo.providers.openai import OpenAIProvider

    ended: list[bool] = []

    def body() -> object:
        chunk = {"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}
        stop = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        for event in (chunk, stop):
            yield f"data: {json.dumps(event)}\n\n".encode()
        yield b"data: [DONE]\n\n"
        yield b": the body ends after this comment\n\n"
        ended.append(True)

    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"content-type": "text/event-stream"}
        return httpx.Response(200, headers=headers, content=body())  # type: ignore[arg-type]

    provider = OpenAIProvider(
        prefix="openai",
        model="gpt-4o",
        base_url="http://127.0.0.1:9/v1",
        transport=httpx.MockTransport(handler),
        environ={"OPENAI_API_KEY": OPENAI_KEY},
    )
    request = ChatRequest(
        provider="openai", model="gpt-4o", messages=({"role": "user", "content": "hi"},)
    )
    events = list(provider.stream(request))
    assert [e for e in events if isinstance(e, TextDelta)] == ["hi"]
    assert ended == [True]


@pytest.mark.parametrize(
    "reply",
    [
        lambda request: httpx.Response(200, content=b"not json"),
        lambda request: httpx.Response(200, json=[1, 2]),
        lambda request: httpx.Response(200, json={"data": [{"id": "m", "max_model_len": "big"}]}),
        lambda request: httpx.Response(500, json={"error": {"message": "down"}}),
        lambda request: (_ for _ in ()).throw(httpx.ReadTimeout("slow", request=request)),
    ],
)
def test_a_server_that_says_nothing_usable_about_its_window_leaves_it_unknown(reply) -> None:  # type: ignore[no-untyped-def]
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        return reply(request)  # type: ignore[no-any-return]

    provider = create_provider("vllm:m", base_url="http://127.0.0.1:9/v1")
    provider.transport = httpx.MockTransport(handler)  # type: ignore[attr-defined]
    assert provider.context_window is None  # type: ignore[attr-defined]
    assert provider.context_window is None and len(asked) <= 2  # type: ignore[attr-defined]
