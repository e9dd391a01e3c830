"""Gemini: the URL, key header and body nbconvo sends, and how it reads the stream."""

from __future__ import annotations

import logging

import httpx
import pytest

from nbconvo.providers import create_provider
from tests.support.fakes.base import Canned
from tests.support.fakes.gemini_server import rate_limited
from tests.support.provider_cases import BY_NAME, request, run

CASE = BY_NAME["gemini"]


def test_url_header_and_body(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch) as fake:
        chat = request(CASE, "one", "two", system="Be brief.", temperature=0.5, max_tokens=50)
        assert run(CASE.provider(), chat).error is None
        seen = fake.seen[0]
        assert seen.path == "/v1/models/gemini-3.5-flash:streamGenerateContent"
        assert seen.query == {"alt": ["sse"]}  # never the key in the URL
        assert seen.headers["x-goog-api-key"] == fake.api_key
        assert seen.body == {
            "contents": [
                {"role": "user", "parts": [{"text": "one"}]},
                {"role": "model", "parts": [{"text": "echo #1: one"}]},
                {"role": "user", "parts": [{"text": "two"}]},
            ],
            "systemInstruction": {"parts": [{"text": "Be brief."}], "role": "user"},
            "generationConfig": {"temperature": 0.5, "maxOutputTokens": 50},
        }


def test_no_generation_config_without_options(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch) as fake:
        run(CASE.provider(), request(CASE, "x"))
        assert set(fake.requests[0]) == {"contents"}


def test_google_api_key_models_prefix_and_versioned_base_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with CASE.running(monkeypatch) as fake:
        monkeypatch.delenv("GEMINI_API_KEY")
        monkeypatch.setenv("GOOGLE_API_KEY", fake.api_key)
        provider = create_provider(
            "gemini:models/gemini-2.5-pro", base_url=fake.base_url + "/v1beta"
        )
        assert run(provider, request(CASE, "x")).error is None
        assert fake.seen[0].path == "/v1beta/models/gemini-2.5-pro:streamGenerateContent"


@pytest.mark.parametrize("crlf", [True, False], ids=["crlf", "lf"])
def test_both_line_endings_parse(crlf: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch) as fake:
        fake.newline = "\r\n" if crlf else "\n"
        outcome = run(CASE.provider(), request(CASE, "hello"))
        assert outcome.text == "echo #1: hello" and outcome.finish is not None


def test_usage_comes_from_the_last_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch):
        outcome = run(CASE.provider(), request(CASE, "hello"))
        assert outcome.usage is not None
        assert (outcome.usage.input_tokens, outcome.usage.output_tokens) == (2, 4)


@pytest.mark.parametrize(
    ("canned", "reason", "notice"),
    [
        (Canned(), "stop", None),
        (Canned(finish="SAFETY"), "content_filter", "SAFETY: safety filters"),
        (
            Canned(finish="RECITATION", options={"finish_only": True}),
            "content_filter",
            "RECITATION",
        ),
        (Canned(finish="PROHIBITED_CONTENT"), "content_filter", "prohibited content"),
        (
            Canned(finish="MALFORMED_FUNCTION_CALL", options={"finish_only": True}),
            "other",
            "MALFORMED_FUNCTION_CALL",
        ),
        (Canned(finish="OTHER"), "other", "OTHER"),
        (
            Canned(options={"block": "JAILBREAK"}),
            "content_filter",
            "blocked the prompt (JAILBREAK)",
        ),
    ],
)
def test_finish_and_block_reasons_are_shown(
    canned: Canned, reason: str, notice: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with CASE.running(monkeypatch) as fake:
        fake.script.append(canned)
        outcome = run(CASE.provider(), request(CASE, "hello"))
        assert outcome.error is None
        assert outcome.finish is not None and outcome.finish.reason == reason
        if notice is None:
            assert outcome.finish.notice is None
        else:
            assert outcome.finish.notice is not None and notice in outcome.finish.notice


def test_max_output_tokens_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch):
        outcome = run(CASE.provider(), request(CASE, "hello", max_tokens=2))
        assert outcome.text == "echo #1:"
        assert outcome.finish is not None and outcome.finish.reason == "length"
        assert (
            outcome.finish.notice is not None and "answer cut at 2 tokens" in outcome.finish.notice
        )


def test_empty_part_with_a_thought_signature_is_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch) as fake:
        fake.script.append(Canned(options={"thought_signature": True}))
        outcome = run(CASE.provider(), request(CASE, "hello"))
        assert outcome.error is None and outcome.text == "echo #1: hello"


def test_bare_json_error_mid_stream_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch) as fake:
        fake.script.append(Canned(error_after=2))
        outcome = run(CASE.provider(), request(CASE, "hello"))
        assert outcome.error is not None
        assert "The model is overloaded" in str(outcome.error) and outcome.text == "echo #1:"


def test_retry_info_delay_is_honoured(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with CASE.running(monkeypatch) as fake:
        fake.script.append(Canned(status=429, body=rate_limited("0.03s")))
        with caplog.at_level(logging.INFO, logger="nbconvo.providers"):
            outcome = run(CASE.provider(), request(CASE, "hello"))
        assert outcome.error is None and len(fake.requests) == 2
        assert "retry 1 in 0.030 s" in caplog.text


def test_daily_quota_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch) as fake:
        fake.script.append(
            Canned(
                status=429, body=rate_limited("0.01s", "GenerateRequestsPerDayPerProjectPerModel")
            )
        )
        outcome = run(CASE.provider(), request(CASE, "hello"))
        assert outcome.error is not None and "daily quota" in str(outcome.error)
        assert len(fake.requests) == 1


def test_a_long_retry_info_delay_is_not_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch) as fake:
        fake.script.append(Canned(status=429, body=rate_limited("41.5s")))
        outcome = run(CASE.provider(), request(CASE, "hello"))
        assert outcome.error is not None and "asks to wait 42 s" in str(outcome.error)


def test_the_fake_speaks_both_field_styles_and_json_arrays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with CASE.running(monkeypatch) as fake:
        base = fake.base_url + "/v1beta/models/gemini-2.5-flash"
        headers = {"x-goog-api-key": fake.api_key}
        snake = {
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "system_instruction": {"parts": [{"text": "s"}]},
            "generation_config": {"max_output_tokens": 10, "temperature": 0.1},
        }
        answer = httpx.post(f"{base}:streamGenerateContent", json=snake, headers=headers)
        chunks = answer.json()  # without alt=sse: one JSON array
        assert answer.status_code == 200 and chunks[-1]["candidates"][0]["finishReason"] == "STOP"
        counted = httpx.post(f"{base}:countTokens", json=snake, headers=headers).json()
        assert counted["totalTokens"] > 0
        bad = {
            "contents": [
                {"role": "user", "parts": [{"text": "a"}]},
                {"role": "user", "parts": [{"text": "b"}]},
            ]
        }
        answer = httpx.post(f"{base}:streamGenerateContent", json=bad, headers=headers)
        assert answer.status_code == 400 and "alternate" in answer.json()["error"]["message"]
        answer = httpx.post(f"{base}:streamGenerateContent", json=snake)
        assert answer.status_code == 403
