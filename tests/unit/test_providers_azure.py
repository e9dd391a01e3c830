"""Azure OpenAI: both URL styles, the api-key header or an Entra token, filter chunks."""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from nbconvo._errors import ConfigurationError
from nbconvo.providers import create_provider
from tests.support.fakes.azure_server import azure_error
from tests.support.fakes.base import Canned
from tests.support.provider_cases import BY_NAME, request, run

CASE = BY_NAME["azure"]


def test_deployments_url_with_api_version_and_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch) as fake:
        outcome = run(CASE.provider(), request(CASE, "hello", system="Be brief.", max_tokens=40))
        assert outcome.error is None and outcome.text == "echo #1: hello"
        seen = fake.seen[0]
        assert seen.path == "/openai/deployments/gpt-4o-prod/chat/completions"
        assert seen.query == {"api-version": ["2024-10-21"]}
        assert seen.headers["api-key"] == fake.api_key and "authorization" not in seen.headers
        assert seen.body["max_completion_tokens"] == 40 and "max_tokens" not in seen.body
        assert seen.body["stream_options"] == {"include_usage": True}


def test_api_version_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch) as fake:
        monkeypatch.setenv("OPENAI_API_VERSION", "2025-04-01-preview")
        run(CASE.provider(), request(CASE, "hello"))
        assert fake.seen[0].query == {"api-version": ["2025-04-01-preview"]}


def test_v1_url_sends_the_deployment_as_model(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch) as fake:
        provider = create_provider(CASE.spec, base_url=fake.endpoint + "/openai/v1/")
        assert run(provider, request(CASE, "hello")).error is None
        seen = fake.seen[0]
        assert seen.path == "/openai/v1/chat/completions" and seen.query == {}
        assert seen.body["model"] == "gpt-4o-prod"


def test_entra_token_goes_as_bearer_never_with_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch) as fake:
        fake.ad_token = "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJjb2duaXRpdmUifQ.c2lnbmF0dXJl"
        monkeypatch.delenv("AZURE_OPENAI_API_KEY")
        monkeypatch.setenv("AZURE_OPENAI_AD_TOKEN", fake.ad_token)
        assert run(CASE.provider(), request(CASE, "hello")).error is None
        headers = fake.seen[0].headers
        assert headers["authorization"] == f"Bearer {fake.ad_token}" and "api-key" not in headers


def test_missing_endpoint_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch):
        monkeypatch.delenv("AZURE_OPENAI_ENDPOINT")
        with pytest.raises(ConfigurationError, match="set AZURE_OPENAI_ENDPOINT"):
            CASE.provider()


def test_filter_only_chunks_are_skipped_and_usage_read(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch):
        outcome = run(CASE.provider(), request(CASE, "hello"))
        assert outcome.text == "echo #1: hello"
        assert outcome.usage is not None and outcome.usage.output_tokens == 4


@pytest.mark.parametrize(
    ("canned", "reason", "notice"),
    [
        (Canned(finish="content_filter"), "content_filter", "Azure's content filter"),
        (Canned(finish="length"), "length", "answer cut at 4 tokens"),
    ],
)
def test_finish_notices(
    canned: Canned, reason: str, notice: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with CASE.running(monkeypatch) as fake:
        fake.script.append(canned)
        outcome = run(CASE.provider(), request(CASE, "hello"))
        assert outcome.finish is not None and outcome.finish.reason == reason
        assert outcome.finish.notice is not None and notice in outcome.finish.notice


def test_prompt_blocked_by_the_content_filter(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch) as fake:
        fake.script.append(
            Canned(status=400, body=azure_error("content_filter", "The response was filtered"))
        )
        outcome = run(CASE.provider(), request(CASE, "hello"))
        assert "blocked by Azure's content filter" in str(outcome.error)


def test_temperature_dropped_for_a_reasoning_deployment(monkeypatch: pytest.MonkeyPatch) -> None:
    with CASE.running(monkeypatch) as fake:
        fake.deployments = {"gpt-5.5"}
        chat = dataclasses.replace(request(CASE, "x", temperature=0.3), model="gpt-5.5")
        outcome = run(create_provider("azure:gpt-5.5"), chat)
        assert outcome.error is None and "temperature" not in fake.requests[0]
        assert outcome.notices[0].startswith("temperature 0.3 not sent to azure:gpt-5.5")


def test_the_fake_requires_api_version_and_a_known_deployment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with CASE.running(monkeypatch) as fake:
        body = {"messages": [{"role": "user", "content": "x"}], "stream": True}
        headers = {"api-key": fake.api_key}
        url = fake.endpoint + "/openai/deployments/gpt-4o-prod/chat/completions"
        answer = httpx.post(url, json=body, headers=headers)
        assert answer.status_code == 404 and answer.json() == azure_error(
            "404", "Resource not found"
        )
        answer = httpx.post(
            url.replace("gpt-4o-prod", "nope") + "?api-version=1", json=body, headers=headers
        )
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "DeploymentNotFound"
        answer = httpx.post(url + "?api-version=1", json=body, headers={"api-key": "wrong"})
        assert answer.status_code == 401 and "Access denied" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        ({"code": "InternalServerError", "message": "x"}, True),
        ({"code": "ServiceUnavailable", "message": "x"}, True),
        ({"code": "TooManyRequests", "message": "x"}, True),
        ({"code": "429", "message": "x"}, True),
        ({"code": "500", "message": "x"}, True),
        ({"message": "no code at all"}, True),
        ({"type": "server_error", "message": "x"}, True),
        ({"code": "content_filter", "message": "x"}, False),
        ({"code": "400", "message": "x"}, False),
        ({"type": "invalid_request_error", "message": "x"}, False),
    ],
)
def test_in_stream_error_codes_azure_writes_as_words(error: dict[str, str], retryable: bool) -> None:
    """An error inside the stream before any text is retried when its code says
    "try again", whether Azure writes it as a status, a word or OpenAI's type."""
    from nbconvo.providers.azure import AzureOpenAIProvider

    provider = AzureOpenAIProvider(
        prefix="azure", model="gpt-test", base_url="http://127.0.0.1:9",
        environ={"AZURE_OPENAI_API_KEY": "k" * 32},
    )
    assert provider._stream_error(error).retryable is retryable
