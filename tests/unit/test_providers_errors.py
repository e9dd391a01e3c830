"""Every bad input and failure, against every cloud provider's fake: missing and wrong
keys, unknown models, over-long prompts, malformed streams, each retryable status
(retried, then the answer), each non-retryable one (one line, sent once), 429 with each
retry hint, and failures before and after the first text."""

from __future__ import annotations

import logging
import time

import pytest

from nbconvo._errors import ConfigurationError, ProviderError, StreamInterrupted
from tests.support.provider_cases import CASES, Case, request, run

RETRYABLE = [408, 409, 429, 500, 502, 503, 504, 529]
NOT_RETRYABLE = [400, 401, 403, 404]


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text, text
    return text


def chat_requests(case: Case, fake: object) -> int:
    return len(fake.requests)  # type: ignore[attr-defined]


def attempts(fake: object) -> int:
    """Every HTTP request the fake received, valid or not."""
    seen = getattr(fake, "seen", None)
    return len(seen if seen is not None else fake.headers_seen)  # type: ignore[attr-defined]


@pytest.fixture(params=CASES, ids=str)
def case(request: pytest.FixtureRequest) -> Case:
    return request.param  # type: ignore[no-any-return]


def test_answer_streams_with_history(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    with case.running(monkeypatch) as fake:
        outcome = run(case.provider(), request(case, "hello"))
        assert outcome.error is None and outcome.text == "echo #1: hello"
        assert outcome.finish is not None and outcome.finish.reason == "stop"
        assert chat_requests(case, fake) == 1


def test_missing_key_names_the_variable(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    with case.running(monkeypatch) as fake:
        monkeypatch.delenv(case.key_variable)
        with pytest.raises(ConfigurationError) as caught:
            run(case.provider(), request(case, "hello"))
        assert f"set the environment variable {case.key_variable}" in one_line(caught.value)
        assert attempts(fake) == 0


def test_wrong_key_is_rejected_in_one_line_without_the_key(
    case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    with case.running(monkeypatch) as fake:
        wrong = (
            "sk-wrong-key-1234567890abcdef" if case.name != "gemini" else "AIzaWrongKey1234567890"
        )
        monkeypatch.setenv(case.key_variable, wrong)
        outcome = run(case.provider(), request(case, "hello"))
        assert isinstance(outcome.error, ProviderError)
        text = one_line(outcome.error)
        assert "rejected the" in text and case.key_variable in text
        assert wrong not in text and "wrong" not in text
        assert attempts(fake) == 1  # never retried


def test_unknown_model_names_the_known_ones(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    if not case.model_choice:
        pytest.skip("Copilot has no model choice")
    with case.running(monkeypatch) as fake:
        if case.name == "openai":
            fake.script.append(
                case.canned(
                    status=404,
                    body={
                        "error": {
                            "message": "The model 'gpt-nope' does not exist or you do not have access to it.",
                            "type": "invalid_request_error",
                            "param": None,
                            "code": "model_not_found",
                        }
                    },
                )
            )
        elif case.name == "azure":
            fake.deployments = {"something-else"}
        else:
            fake.models = {"some-other-model"}
        outcome = run(case.provider(), request(case, "hello"))
        text = one_line(outcome.error)
        assert "not found" in text
        if case.name in ("openai", "anthropic", "gemini"):
            assert "known" in text and (
                "gpt-5.5" in text or "claude-opus-5" in text or "gemini-2.5" in text
            )
        if case.name == "azure":
            assert "AZURE_OPENAI_ENDPOINT" in text
        assert attempts(fake) == 1


def test_over_long_prompt_says_to_compact(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    if not case.known_window:
        pytest.skip("Copilot publishes no window and reports none")
    with case.running(monkeypatch) as fake:
        if case.name == "openai":
            fake.script.append(
                case.canned(
                    status=400,
                    body={
                        "error": {
                            "message": "This model's maximum context length is 1047576 tokens. However, your "
                            "messages resulted in 2000000 tokens.",
                            "type": "invalid_request_error",
                            "param": "messages",
                            "code": "context_length_exceeded",
                        }
                    },
                )
            )
        elif case.name == "gemini":
            fake.input_limit = 50
        else:
            fake.context_window = 50
        outcome = run(case.provider(), request(case, "word " * 200))
        text = one_line(outcome.error)
        assert "exceeds the" in text and "`%convo compact`" in text
        assert attempts(fake) == 1


@pytest.mark.parametrize("status", RETRYABLE)
def test_retryable_status_is_retried_then_answers(
    case: Case, status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    with case.running(monkeypatch) as fake:
        fake.script.append(case.canned(status=status, body=case.error_body(status, "try later")))
        outcome = run(case.provider(), request(case, "hello"))
        assert outcome.error is None, outcome.error
        assert outcome.text == "echo #1: hello"
        assert chat_requests(case, fake) == 2


@pytest.mark.parametrize("status", NOT_RETRYABLE)
def test_non_retryable_status_is_one_line_and_sent_once(
    case: Case, status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    with case.running(monkeypatch) as fake:
        fake.script.append(case.canned(status=status, body=case.error_body(status, "refused")))
        outcome = run(case.provider(), request(case, "hello"))
        assert isinstance(outcome.error, ProviderError) and outcome.error.status == status
        assert f"({status})" in one_line(outcome.error)
        assert chat_requests(case, fake) == 1


def test_retries_give_up_after_the_limit(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    with case.running(monkeypatch) as fake:
        for _ in range(3):
            fake.script.append(case.canned(status=503, body=case.error_body(503, "busy")))
        outcome = run(case.provider(), request(case, "hello"))
        assert outcome.error is not None and "(503)" in one_line(outcome.error)
        assert chat_requests(case, fake) == 3  # NBCONVO_MAX_RETRIES defaults to 2


def test_429_with_retry_after_ms_waits_as_asked(
    case: Case, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with case.running(monkeypatch) as fake:
        fake.script.append(
            case.canned(
                status=429,
                body=case.error_body(429, "slow down"),
                headers={"retry-after-ms": "20", "retry-after": "1"},
            )
        )
        with caplog.at_level(logging.INFO, logger="nbconvo.providers"):
            outcome = run(case.provider(), request(case, "hello"))
        assert outcome.error is None and chat_requests(case, fake) == 2
        assert "retry 1 in 0.020 s" in caplog.text


def test_429_with_an_http_date_is_retried(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    with case.running(monkeypatch) as fake:
        fake.script.append(
            case.canned(
                status=429,
                body=case.error_body(429, "slow down"),
                headers={"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"},
            )
        )
        outcome = run(case.provider(), request(case, "hello"))
        assert outcome.error is None and chat_requests(case, fake) == 2


def test_429_asking_for_a_long_wait_is_not_retried(
    case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    with case.running(monkeypatch) as fake:
        fake.script.append(
            case.canned(
                status=429, body=case.error_body(429, "slow down"), headers={"retry-after": "86400"}
            )
        )
        outcome = run(case.provider(), request(case, "hello"))
        assert "asks to wait 86400 s" in one_line(outcome.error)
        assert chat_requests(case, fake) == 1


def test_x_should_retry_false_is_obeyed(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    with case.running(monkeypatch) as fake:
        fake.script.append(
            case.canned(
                status=503, body=case.error_body(503, "no"), headers={"x-should-retry": "false"}
            )
        )
        outcome = run(case.provider(), request(case, "hello"))
        assert outcome.error is not None and chat_requests(case, fake) == 1


def test_malformed_stream_before_text_is_one_line(
    case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    with case.running(monkeypatch) as fake:
        fake.script.append(case.canned(malformed_after=0))
        outcome = run(case.provider(), request(case, "hello"))
        assert "malformed stream chunk" in one_line(outcome.error)
        assert not isinstance(outcome.error, StreamInterrupted) and outcome.text == ""


def test_malformed_stream_after_text_keeps_the_partial(
    case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    with case.running(monkeypatch) as fake:
        fake.script.append(case.canned(malformed_after=2))
        outcome = run(case.provider(), request(case, "hello"))
        assert isinstance(outcome.error, StreamInterrupted)
        assert outcome.error.partial == outcome.text == "echo #1:"
        assert chat_requests(case, fake) == 1


def test_reset_before_text_is_retried(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    with case.running(monkeypatch) as fake:
        fake.script.append(case.canned(reset_after=0))
        outcome = run(case.provider(), request(case, "hello"))
        assert outcome.error is None and outcome.text == "echo #1: hello"
        assert chat_requests(case, fake) == 2


def test_reset_after_text_keeps_the_partial(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    with case.running(monkeypatch) as fake:
        fake.script.append(case.canned(reset_after=2))
        outcome = run(case.provider(), request(case, "hello"))
        assert isinstance(outcome.error, StreamInterrupted)
        assert outcome.error.partial == "echo #1:" and "broke mid-answer" in one_line(outcome.error)
        assert chat_requests(case, fake) == 1


def test_error_in_stream_before_text_is_retried(
    case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    with case.running(monkeypatch) as fake:
        fake.script.append(case.canned(error_after=0))
        outcome = run(case.provider(), request(case, "hello"))
        assert outcome.error is None and outcome.text == "echo #1: hello"
        assert chat_requests(case, fake) == 2


def test_error_in_stream_after_text_keeps_the_partial(
    case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    with case.running(monkeypatch) as fake:
        fake.script.append(case.canned(error_after=2))
        outcome = run(case.provider(), request(case, "hello"))
        assert isinstance(outcome.error, StreamInterrupted)
        assert outcome.error.partial == "echo #1:" and "failed mid-answer" in one_line(
            outcome.error
        )


def test_unreachable_server_names_the_address(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    with case.running(monkeypatch) as fake:
        address = fake.root_url if hasattr(fake, "root_url") else fake.base_url
    # the fake is closed now: nothing listens on its port
    started = time.monotonic()
    outcome = run(case.provider(), request(case, "hello"))
    text = one_line(outcome.error)
    assert "could not reach" in text and address.split("//")[1] in text
    assert time.monotonic() - started < 5


def test_a_key_echoed_by_the_server_is_redacted(
    case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    with case.running(monkeypatch) as fake:
        key = case.environment(fake)[case.key_variable]
        fake.script.append(case.canned(status=400, body=case.error_body(400, f"bad key {key}")))
        outcome = run(case.provider(), request(case, "hello"))
        text = one_line(outcome.error)
        assert key not in text and "[redacted]" in text
