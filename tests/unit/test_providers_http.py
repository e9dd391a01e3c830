"""The shared pieces: retry hints, redaction, the model table, the provider registry."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from nbconvo._errors import ConfigurationError
from nbconvo._models import (
    DEFAULT_MAX_TOKENS,
    accepts_sampling,
    context_window,
    default_max_tokens,
    known_names,
    lookup,
    tokenizer_hint,
)
from nbconvo._settings import read_environment
from nbconvo.providers import PROVIDERS, create_provider, default_model_spec
from nbconvo.providers._http import (
    EventFeed,
    error_message_from_body,
    parse_retry_after,
    redact,
    retry_delay_from_body,
)
from tests.support.provider_cases import CASES


def test_retry_after_ms_wins_over_seconds_and_dates() -> None:
    assert parse_retry_after({"retry-after-ms": "45190", "retry-after": "46"}) == 45.19
    assert parse_retry_after({"retry-after": "2.5"}) == 2.5
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < (parse_retry_after({"retry-after": soon}) or 0) <= 30
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert parse_retry_after({"retry-after": "soon-ish"}) is None
    assert parse_retry_after({}) is None


def test_google_retry_info() -> None:
    body = '{"error": {"code": 429, "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "41.5s"}]}}'
    assert retry_delay_from_body(body) == 41.5
    assert retry_delay_from_body("[" + body + "]") == 41.5
    assert retry_delay_from_body('{"error": {"message": "x"}}') is None
    assert retry_delay_from_body("not json") is None


@pytest.mark.parametrize(
    "secret",
    [
        "sk-ant-" + "api03-abcdefghijklmnop",  # split: no key-shaped literal in the repo
        "sk-proj-abcdefghijklmnop",
        "AIzaSyA1234567890abcdefghij",
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2dyYXBoIn0.c2lnbmF0dXJlX2hlcmU",
    ],
)
def test_redact_hides_every_key_shape(secret: str) -> None:
    assert secret not in redact(f"the key {secret} is wrong")
    assert redact("Authorization: Bearer abc.def") == "Authorization: [redacted]"
    assert redact("a plain azure key 0123456789abcdef", ("0123456789abcdef",)) == (
        "a plain azure key [redacted]"
    )


def test_stray_json_after_sse_events_is_found() -> None:
    body = b'data: {"a": 1}\r\n\r\n{\r\n  "error": {\r\n    "code": 503\r\n  }\r\n}\r\n'

    def response() -> httpx.Response:
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            stream=httpx.ByteStream(body),  # not yet read, as a response off the network
            request=httpx.Request("POST", "http://127.0.0.1:9/"),
        )

    feed = EventFeed(response(), keep_tail=True)
    assert [event.data for event in feed] == ['{"a": 1}']
    assert feed.stray_json() == {"error": {"code": 503}}
    plain = EventFeed(response())  # only Gemini pays for recording the body
    assert [event.data for event in plain] == ['{"a": 1}']
    assert plain.stray_json() is None


def test_model_table_prefixes_and_fallbacks() -> None:
    assert lookup("anthropic:claude-sonnet-5-20260630") == lookup("anthropic:claude-sonnet-5")
    assert lookup("azure:gpt-4o") == lookup("openai:gpt-4o")  # a deployment named after a model
    assert lookup("openai:gpt-5.6-sol") is not None and not accepts_sampling("openai:gpt-6-astra")
    assert accepts_sampling("openai:gpt-4.1") and accepts_sampling("openai:some-new-model")
    assert not accepts_sampling("anthropic:claude-anything-9")  # the API version refuses it
    assert context_window("anthropic:claude-anything-9") is None
    assert context_window("gemini:gemini-2.5-flash") == 1_048_576
    assert context_window("copilot:chat") is None and lookup("copilot:chat") is not None
    assert default_max_tokens("anthropic:claude-haiku-4-5") == 8_192
    assert default_max_tokens("anthropic:claude-opus-5-5") == 16_384
    assert default_max_tokens("anthropic:claude-new") == DEFAULT_MAX_TOKENS
    assert tokenizer_hint("openai:gpt-5.5") == "o200k_base"
    assert tokenizer_hint("gemini:gemini-3.5-flash") == "estimate"
    assert "claude-sonnet-5" in known_names("anthropic")


def test_every_model_row_is_well_formed() -> None:
    from nbconvo._models import KNOWN_MODELS

    for spec, info in KNOWN_MODELS.items():
        assert spec.partition(":")[0] in PROVIDERS, spec
        if info.context_window is not None and info.max_output is not None:
            assert info.max_output <= info.context_window, spec


def test_registry_has_every_cloud_provider() -> None:
    for case in CASES:
        assert case.spec.partition(":")[0] in PROVIDERS


@pytest.mark.parametrize(
    ("environment", "spec"),
    [
        ({"ANTHROPIC_API_KEY": "k"}, "anthropic:claude-sonnet-5-5"),
        ({"GEMINI_API_KEY": "k"}, "gemini:gemini-3.5-flash"),
        ({"GOOGLE_API_KEY": "k"}, "gemini:gemini-3.5-flash"),
        ({"OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k"}, "openai:gpt-5.5"),
        ({"NBCONVO_MODEL": "copilot:chat", "GEMINI_API_KEY": "k"}, "copilot:chat"),
    ],
)
def test_keys_choose_a_default_model(environment: dict[str, str], spec: str) -> None:
    settings, problems = read_environment(environment)
    assert default_model_spec(settings, environment) == spec and problems == []


@pytest.mark.parametrize(
    ("variable", "spec", "expected"),
    [
        ("OPENAI_BASE_URL", "openai:gpt-4.1", "http://gateway.test/v1"),
        ("ANTHROPIC_BASE_URL", "anthropic:claude-sonnet-5-5", "http://gateway.test/v1"),
        ("GEMINI_BASE_URL", "gemini:gemini-3.5-flash", "http://gateway.test/v1"),
        ("NBCONVO_M365_BASE_URL", "copilot:chat", "http://gateway.test/v1"),
        ("AZURE_OPENAI_ENDPOINT", "azure:dep", "http://gateway.test/v1"),
    ],
)
def test_base_urls_from_the_environment_and_the_option(
    variable: str, spec: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, "http://gateway.test/v1/")
    assert create_provider(spec).base_url == expected  # type: ignore[attr-defined]
    explicit = create_provider(spec, base_url="http://other.test/api")
    assert explicit.base_url == "http://other.test/api"  # type: ignore[attr-defined]


def test_unknown_prefix_lists_the_new_providers() -> None:
    with pytest.raises(ConfigurationError) as caught:
        create_provider("nope:x")
    for prefix in ("anthropic", "gemini", "azure", "copilot"):
        assert prefix in str(caught.value)


def test_an_html_error_page_is_summed_up_by_its_title() -> None:
    google = (
        "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n"
        "  <title>Error 502 (Server Error)!!1</title>\n  <style>*{margin:0}</style>\n"
        "  <p><b>502.</b> <ins>That’s an error.</ins>\n"
    )
    assert error_message_from_body(google) == ("an HTML error page (Error 502 (Server Error)!!1)", "")
    bare = "<html><body><h1>502 Bad&nbsp;Gateway</h1><hr>nginx</body></html>"
    assert error_message_from_body(bare) == ("an HTML error page (502 Bad Gateway nginx)", "")
    assert error_message_from_body("upstream   connect error\n") == ("upstream connect error", "")
    assert error_message_from_body('{"error": {"message": "busy", "code": 503}}') == ("busy", "503")
