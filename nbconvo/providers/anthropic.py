"""Anthropic Messages API, streamed, API version 2026-10-21.

``POST {base}/v1/messages`` with ``anthropic-version: 2026-10-21`` and the key as a bearer
token (as the official SDK sends it). ``system`` is top level; messages alternate user and
assistant, starting with user (same-role neighbours are merged here); ``max_tokens`` is
required, so a per-model default from the model table is sent when the user sets none.
This API version rejects every sampling parameter, so a temperature is dropped with a
note. Events: ``message_start`` (input usage), ``content_block_*`` (text deltas; thinking,
tool and citation deltas are skipped), ``message_delta`` (stop reason, cumulative usage),
``message_stop``; ``ping`` and unknown events are ignored, ``error`` fails the turn.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from nbconvo._credentials import KEYS
from nbconvo._errors import ProviderError
from nbconvo._models import default_max_tokens, known_names
from nbconvo._parts import as_parts
from nbconvo._types import ChatRequest, Finish, Message, Notice, ProviderEvent, Role, Usage
from nbconvo.providers._content import anthropic_blocks
from nbconvo.providers._http import (
    RETRYABLE_STATUS,
    EventFeed,
    HTTPProvider,
    ServiceError,
    error_message_from_body,
    parse_json_event,
)
from nbconvo.providers.openai import length_notice

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2026-10-21"
_TRANSIENT = {"overloaded_error", "api_error", "timeout_error", "rate_limit_error"}


def alternate(messages: list[Message]) -> list[Message]:
    """User/assistant turns strictly alternating from a user turn: neighbours with the
    same role are joined (texts by a blank line; the API would merge them anyway)."""
    out: list[Message] = []
    for message in messages:
        role: Role = "assistant" if message["role"] == "assistant" else "user"
        if out and out[-1]["role"] == role:
            before, content = out[-1]["content"], message["content"]
            if isinstance(before, str) and isinstance(content, str):
                out[-1] = {"role": role, "content": before + "\n\n" + content}
            else:
                out[-1] = {"role": role, "content": (*as_parts(before), *as_parts(content))}
        else:
            out.append({"role": role, "content": message["content"]})
    if out and out[0]["role"] != "user":
        out.insert(0, {"role": "user", "content": "(continued)"})
    return out


def anthropic_messages(messages: list[Message], label: str) -> list[dict[str, Any]]:
    """Strings stay strings; parts become content blocks."""
    return [
        {
            "role": m["role"],
            "content": m["content"]
            if isinstance(m["content"], str)
            else anthropic_blocks(m["content"], label),
        }
        for m in alternate(messages)
    ]


class AnthropicProvider(HTTPProvider):
    name = "anthropic"
    key_variable = KEYS["anthropic"].variable
    base_url_variables = ("ANTHROPIC_BASE_URL",)
    vendor_base_url = ANTHROPIC_BASE_URL
    _dropped: tuple[float | None, int | None] = (None, None)  # noted once

    def url(self) -> str:
        # The SDK's base URL has no /v1; accept one written with it.
        base = self.base_url.removesuffix("/v1")
        return f"{base}/v1/messages"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key()}", "anthropic-version": API_VERSION}

    def body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens or default_max_tokens(f"{self.prefix}:{self.model}"),
            "messages": anthropic_messages(
                [m for m in request.messages if m["role"] != "system"], self.label
            ),
            "stream": True,
        }
        if request.system:
            body["system"] = request.system
        return body

    def stream(self, request: ChatRequest) -> Iterator[ProviderEvent]:
        dropped = (request.temperature, request.seed)
        if dropped != (None, None) and dropped != self._dropped:
            names = [
                f"{name} {value}"
                for name, value in (("temperature", request.temperature), ("seed", request.seed))
                if value is not None
            ]
            yield Notice(
                f"{' and '.join(names)} not sent: Anthropic API version {API_VERSION} "
                "accepts no sampling parameters"
            )
        body = self.body(request)
        yield from self._sse().stream(
            self.url(),
            body=body,
            headers=self.headers(),
            translate=lambda feed: self._translate(feed, body["max_tokens"]),
        )
        if dropped != (None, None):
            self._dropped = dropped  # noted once the user has seen it: a failed turn shows none

    def _translate(self, feed: EventFeed, max_tokens: int) -> Iterator[ProviderEvent]:
        input_tokens: dict[str, int] = {}
        output_tokens = 0
        stop: str | None = None
        stopped = False
        for event in feed:
            if not event.data.strip():
                continue
            data = parse_json_event(self.label, event.data)
            if not isinstance(data, dict):
                continue
            kind = data.get("type") or event.event
            if kind == "message_start":
                usage = (data.get("message") or {}).get("usage") or {}
                input_tokens.update(_input_counts(usage))
                output_tokens = int(usage.get("output_tokens") or 0)
            elif kind == "content_block_start":
                block = data.get("content_block") or {}
                if block.get("type") == "text" and block.get("text"):
                    yield str(block["text"])
            elif kind == "content_block_delta":
                delta = data.get("delta") or {}
                if delta.get("type") == "text_delta" and delta.get("text"):
                    yield str(delta["text"])
            elif kind == "message_delta":
                stop = (data.get("delta") or {}).get("stop_reason") or stop
                usage = data.get("usage") or {}
                input_tokens.update(_input_counts(usage))  # cumulative: later values win
                output_tokens = int(usage.get("output_tokens") or output_tokens)
            elif kind == "message_stop":
                stopped = True
                break
            elif kind == "error":
                raise self._stream_error(data.get("error") or {})
            # ping, content_block_stop and event types added later are ignored
        if not stopped:
            raise ServiceError(
                f"{self.label}: the stream ended before the answer was complete",
                retryable=True,
            )
        yield Usage(sum(input_tokens.values()), output_tokens)
        yield self._finish(stop, output_tokens or max_tokens)

    def _finish(self, stop: str | None, tokens: int) -> Finish:
        if stop in (None, "end_turn", "stop_sequence"):
            return Finish("stop")
        if stop == "max_tokens":
            return Finish("length", length_notice(tokens))
        if stop == "model_context_window_exceeded":
            return Finish(
                "length",
                f"answer cut: the context window of {self.label} is full — run `%convo compact`",
            )
        if stop == "refusal":
            return Finish("refusal", f"{self.label} refused to answer (stop reason: refusal)")
        if stop == "pause_turn":
            return Finish("other", "the model paused a long turn: send another turn to continue")
        if stop == "tool_use":
            return Finish("other", "the model asked to use a tool, which nbconvo does not offer")
        return Finish("other", f"the model stopped: {stop}")

    def _stream_error(self, error: dict[str, Any]) -> ServiceError:
        kind = str(error.get("type") or "")
        message = str(error.get("message") or kind or "unknown error")
        return ServiceError(
            f"{self.label} failed mid-answer: {message}", retryable=kind in _TRANSIENT
        )

    def _describe_error(
        self, status: int, text: str, headers: Mapping[str, str]
    ) -> tuple[str, bool]:
        message, kind = error_message_from_body(text)
        where = f"anthropic ({status})"
        lowered = message.lower()
        if status == 401:
            return (f"{where} rejected the API key: set {self.key_variable} to a valid key", False)
        if status == 403:
            return (f"{where}: this key may not use {self.model!r} — {message}", False)
        if status == 404:
            names = ", ".join(known_names(self.prefix))
            return (f"{where}: model {self.model!r} not found — known models: {names}", False)
        if status == 413 or "prompt is too long" in lowered or "context window" in lowered:
            return (
                f"{where}: the prompt exceeds the context window of {self.model} — run "
                "`%convo compact` (or start a new branch with `%convo fork`)",
                False,
            )
        if status == 402 or "spend limit" in lowered or "credit balance" in lowered:
            return (f"{where}: billing or spend limit reached — {message}", False)
        if status == 529:
            return (f"{where}: Anthropic is overloaded — {message}; try again shortly", True)
        return (f"{where}: {message or kind or 'request failed'}", status in RETRYABLE_STATUS)


def _input_counts(usage: dict[str, Any]) -> dict[str, int]:
    """Input tokens are the plain count plus cache writes plus cache reads."""
    keys = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    return {key: int(usage[key]) for key in keys if isinstance(usage.get(key), int)}


__all__ = ["API_VERSION", "AnthropicProvider", "ProviderError", "alternate"]
