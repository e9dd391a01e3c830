"""OpenAI Chat Completions and OpenAI-compatible servers (Ollama, vLLM, llama.cpp, LM Studio).

Wire format: ``POST {base}/chat/completions`` with ``stream: true``; chunks are ``data:``
lines of JSON ending with ``data: [DONE]``; usage arrives in a last chunk with empty
``choices`` when ``stream_options.include_usage`` is set (local servers may omit it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from nbconvo._errors import ProviderError
from nbconvo._types import ChatRequest, Finish, ProviderEvent, TextDelta, Usage
from nbconvo.providers._http import (
    RETRYABLE_STATUS,
    SSEStream,
    error_message_from_body,
    require_key,
)

OPENAI_BASE_URL = "https://api.openai.com/v1"
_FINISH = {"stop": "stop", "length": "length", "content_filter": "content_filter"}


class OpenAICompatibleProvider:
    """Chat Completions over SSE. Subclasses decide the base URL and the key."""

    name = "openai-compatible"
    key_variable = "NBCONVO_API_KEY"
    key_required = False

    def __init__(
        self,
        *,
        prefix: str,
        model: str,
        base_url: str | None = None,
        transport: httpx.BaseTransport | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.prefix = prefix
        self.model = model
        self.base_url = (base_url or self.default_base_url(env)).rstrip("/")
        self.environ = env
        self.transport = transport
        self._stream: SSEStream | None = None

    def default_base_url(self, env: Mapping[str, str]) -> str:
        url = env.get("NBCONVO_BASE_URL")
        if not url:
            raise ProviderError(
                f"no server address for {self.prefix}: run `%convo model {self.prefix}:MODEL "
                "--base-url http://HOST:PORT/v1` or set NBCONVO_BASE_URL"
            )
        return url

    @property
    def label(self) -> str:
        return f"{self.prefix}:{self.model}"

    def api_key(self) -> str | None:
        if self.key_required:
            return require_key(self.key_variable, self.prefix)
        return self.environ.get(self.key_variable) or None

    def body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": request.all_messages(),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            body["max_completion_tokens"] = request.max_tokens
            body["max_tokens"] = request.max_tokens
        if request.seed is not None:
            body["seed"] = request.seed
        return body

    def _describe_error(
        self, status: int, text: str, headers: Mapping[str, str]
    ) -> tuple[str, bool]:
        message, code = error_message_from_body(text)
        where = f"{self.prefix} ({status})"
        if status == 401:
            return (
                f"{where} rejected the API key: set {self.key_variable} to a valid key",
                False,
            )
        if status == 404:
            return (f"{where}: model {self.model!r} not found — {message}", False)
        if status == 429 and code == "insufficient_quota":
            return (f"{where}: quota exhausted — check the account's plan and billing", False)
        if code == "context_length_exceeded":
            return (f"{where}: the prompt exceeds the model's window — try `%convo compact`", False)
        retryable = status in RETRYABLE_STATUS
        should = headers.get("x-should-retry")
        if should in ("true", "false"):
            retryable = should == "true"
        return (f"{where}: {message or 'request failed'}", retryable)

    def _sse(self) -> SSEStream:
        if self._stream is None:
            key = self.api_key()
            self._stream = SSEStream(
                label=self.label,
                describe_error=self._describe_error,
                secrets=(key,) if key else (),
                transport=self.transport,
            )
        return self._stream

    def headers(self) -> dict[str, str]:
        key = self.api_key()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def stream(self, request: ChatRequest) -> Iterator[ProviderEvent]:
        url = f"{self.base_url}/chat/completions"
        headers = self.headers()
        for event in self._sse().events(url, body=self.body(request), headers=headers):
            data = event.data
            if data.startswith("[DONE]"):
                return
            if not data.strip():
                continue
            try:
                chunk = json.loads(data)
            except ValueError:
                raise ProviderError(
                    f"{self.label} sent a malformed stream chunk: {data[:80]!r}"
                ) from None
            if not isinstance(chunk, dict):
                continue
            if chunk.get("error"):
                message, _ = error_message_from_body(json.dumps(chunk))
                raise ProviderError(f"{self.label} failed mid-answer: {message}")
            yield from self._translate(chunk)

    def _translate(self, chunk: dict[str, Any]) -> Iterator[ProviderEvent]:
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if content:
                yield TextDelta(content)
            reason = choice.get("finish_reason")
            if reason:
                yield Finish(_FINISH.get(reason, "other"))
        usage = chunk.get("usage")
        if isinstance(usage, dict) and "prompt_tokens" in usage:
            yield Usage(
                int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            )


class OpenAIProvider(OpenAICompatibleProvider):
    name = "openai"
    key_variable = "OPENAI_API_KEY"
    key_required = True

    def default_base_url(self, env: Mapping[str, str]) -> str:
        return env.get("OPENAI_BASE_URL") or OPENAI_BASE_URL

    def body(self, request: ChatRequest) -> dict[str, Any]:
        body = super().body(request)
        body.pop("max_tokens", None)  # deprecated upstream; max_completion_tokens replaces it
        return body
