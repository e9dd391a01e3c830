"""One description per cloud provider so the same checks run against each fake:
how to start its fake, which environment points nbconvo at it, how its errors look,
and how to script a scenario in its fake's own terms."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from nbconvo._errors import ProviderError
from nbconvo._types import ChatRequest, Finish, Message, Notice, ProviderEvent, TextDelta, Usage
from nbconvo.providers import create_provider
from nbconvo.providers._base import Provider
from tests.support.fakes import (
    anthropic_server,
    azure_server,
    copilot_server,
    gemini_server,
    openai_server,
    responses_server,
)
from tests.support.fakes import base as fake_base

OPENAI_KEY = "sk-test-fake-key-000000000000"

# Every variable that could point nbconvo somewhere else, cleared before each test.
ENVIRONMENT = (
    "NBCONVO_MODEL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GEMINI_BASE_URL",
    "GOOGLE_GEMINI_BASE_URL",
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_AD_TOKEN",
    "AZURE_OPENAI_ENDPOINT",
    "OPENAI_API_VERSION",
    "NBCONVO_M365_TOKEN",
    "NBCONVO_M365_BASE_URL",
    "NBCONVO_MAX_RETRIES",
)


def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No provider's variables, and retry waits capped at 0.05 s: for providers made now,
    and for the session's settings too (as if the kernel had started this way)."""
    from nbconvo._credentials import TYPED as TYPED_KEYS
    from tests.support.helpers import kernel_started_with

    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    kernel_started_with(monkeypatch, NBCONVO_RETRY_MAX_WAIT="0.05")  # backoff stays short
    TYPED_KEYS.clear()


@dataclass
class Case:
    name: str
    spec: str
    key_variable: str
    start: Callable[[], Any]  # a fake server, not yet entered
    environment: Callable[[Any], dict[str, str]]
    error_body: Callable[[int, str], Any]
    canned: Callable[..., Any]
    known_window: bool = True  # the service reports an over-long prompt itself
    model_choice: bool = True

    def __str__(self) -> str:
        return self.name

    @contextlib.contextmanager
    def running(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
        from nbconvo._credentials import TYPED as TYPED_KEYS

        clean_environment(monkeypatch)
        try:
            with self.start() as fake:
                for key, value in self.environment(fake).items():
                    monkeypatch.setenv(key, value)
                yield fake
        finally:
            TYPED_KEYS.clear()  # keys typed in a test must not leak into the next

    def provider(self) -> Provider:
        return create_provider(self.spec)


def _openai_error(status: int, message: str) -> Any:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _anthropic_error(status: int, message: str) -> Any:
    kinds = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        408: "timeout_error",
        409: "conflict_error",
        429: "rate_limit_error",
        529: "overloaded_error",
    }
    return anthropic_server.error_body(kinds.get(status, "api_error"), message)


def _gemini_error(status: int, message: str) -> Any:
    names = {
        400: "INVALID_ARGUMENT",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        408: "DEADLINE_EXCEEDED",
        409: "ABORTED",
        429: "RESOURCE_EXHAUSTED",
        503: "UNAVAILABLE",
        504: "DEADLINE_EXCEEDED",
    }
    return gemini_server.status_error(status, names.get(status, "INTERNAL"), message)


def _azure_error(status: int, message: str) -> Any:
    return azure_server.azure_error(str(status), message)


def _graph_error(status: int, message: str) -> Any:
    return copilot_server.graph_error("TooManyRequests" if status == 429 else "Error", message)


CASES = [
    Case(
        "openai",
        "openai:gpt-4.1",
        "OPENAI_API_KEY",
        lambda: openai_server.FakeOpenAI(api_key=OPENAI_KEY),
        lambda fake: {"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": fake.base_url},
        _openai_error,
        openai_server.Canned,
    ),
    Case(
        "openai-responses",
        "openai-responses:gpt-4.1",
        "OPENAI_API_KEY",
        lambda: responses_server.FakeResponses(api_key=OPENAI_KEY),
        lambda fake: {"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": fake.base_url},
        _openai_error,
        fake_base.Canned,
    ),
    Case(
        "anthropic",
        "anthropic:claude-sonnet-5-5",
        "ANTHROPIC_API_KEY",
        anthropic_server.FakeAnthropic,
        lambda fake: {"ANTHROPIC_API_KEY": fake.api_key, "ANTHROPIC_BASE_URL": fake.base_url},
        _anthropic_error,
        fake_base.Canned,
    ),
    Case(
        "gemini",
        "gemini:gemini-3.5-flash",
        "GEMINI_API_KEY",
        gemini_server.FakeGemini,
        lambda fake: {"GEMINI_API_KEY": fake.api_key, "GEMINI_BASE_URL": fake.base_url},
        _gemini_error,
        fake_base.Canned,
    ),
    Case(
        "azure",
        "azure:gpt-4o-prod",
        "AZURE_OPENAI_API_KEY",
        azure_server.FakeAzure,
        lambda fake: {"AZURE_OPENAI_API_KEY": fake.api_key, "AZURE_OPENAI_ENDPOINT": fake.endpoint},
        _azure_error,
        fake_base.Canned,
    ),
    Case(
        "copilot",
        "copilot:chat",
        "NBCONVO_M365_TOKEN",
        copilot_server.FakeCopilot,
        lambda fake: {"NBCONVO_M365_TOKEN": fake.api_key, "NBCONVO_M365_BASE_URL": fake.base_url},
        _graph_error,
        fake_base.Canned,
        known_window=False,
        model_choice=False,
    ),
]
BY_NAME = {case.name: case for case in CASES}


@dataclass
class Outcome:
    text: str = ""
    usage: Usage | None = None
    finish: Finish | None = None
    notices: list[str] = field(default_factory=list)
    error: ProviderError | None = None
    events: list[ProviderEvent] = field(default_factory=list)


def run(provider: Provider, request: ChatRequest) -> Outcome:
    """Drain one stream into an ``Outcome``; a ``ProviderError`` is kept, not raised."""
    outcome = Outcome()
    try:
        for event in provider.stream(request):
            outcome.events.append(event)
            if isinstance(event, TextDelta):
                outcome.text += event
            elif isinstance(event, Usage):
                outcome.usage = event
            elif isinstance(event, Finish):
                outcome.finish = event
                if event.notice:
                    outcome.notices.append(event.notice)
            elif isinstance(event, Notice):
                outcome.notices.append(event.text)
    except ProviderError as error:
        outcome.error = error
    return outcome


def request(case: Case, *prompts: str, **options: Any) -> ChatRequest:
    """A request whose history has an answer for each prompt but the last (echo-style)."""
    messages: list[Message] = []
    for n, prompt in enumerate(prompts, start=1):
        messages.append({"role": "user", "content": prompt})
        if n < len(prompts):
            messages.append({"role": "assistant", "content": f"echo #{n}: {prompt}"})
    prefix, _, model = case.spec.partition(":")
    return ChatRequest(provider=prefix, model=model, messages=tuple(messages), **options)
