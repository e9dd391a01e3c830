"""Google Gemini API (the Developer API), streamed.

``POST {base}/v1/models/{model}:streamGenerateContent?alt=sse`` with ``x-goog-api-key``.
Body: ``contents`` with roles ``user``/``model`` (same-role neighbours merged),
``systemInstruction`` and ``generationConfig``. Each ``data:`` event is a whole
``GenerateContentResponse``: text parts are deltas (thought parts are skipped),
``usageMetadata`` is complete only on the last chunk, the stream ends when the connection
closes (events may end in CRLF). ``finishReason`` and ``promptFeedback.blockReason`` are
shown to the user. A failure after the stream began arrives as bare JSON, not ``data:``.

Prompt caching is Gemini's implicit caching (2.5 and later): a request whose start matches a
recent one's is billed less, with nothing to send, so ``request.cache`` changes nothing
here; the history goes first and unchanged from turn to turn (the system instruction
apart, before it). ``cachedContentTokenCount`` (part of ``promptTokenCount``) is what was
read from the cache.

Tools go as ``functionDeclarations`` with the JSON schema as ``parameters_json_schema``
(the field and spelling google-genai sends for a plain JSON schema: it takes ``anyOf``,
``default`` and ``enum`` as they are). A call arrives whole, as a ``functionCall`` part;
Gemini gives calls no ids, so each is named by its place in the answer (``call_0``,
``call_1``…). Gemini 3 attaches a ``thoughtSignature`` to the first call of an answer
and refuses a later request that does not send it back, so the signature is kept in the
call's part (saved with the turn, recorded in cassettes) and sent back with it. A result
goes back as a ``functionResponse``. A structured answer is ``responseMimeType:
application/json`` with a ``responseJsonSchema``.

Effort (``--effort``) goes as ``generationConfig.thinkingConfig`` with ``include_thoughts``
(the thought summaries stream): a ``thinking_level`` for Gemini 3 and later, a
``thinking_budget`` by effort for Gemini 2.5 (which has no levels). Thought parts
(``thought: true``) stream as ``ThinkingDelta`` and, once the answer moves on, make one
``ReasoningPart`` (with the thought signature, if one came): it goes back as the thought
part it was, as google-genai's chat sends a whole answer back. ``thoughtsTokenCount`` is
the usage's reasoning tokens (billed as output).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from nbconvo._credentials import KEYS
from nbconvo._models import known_names
from nbconvo._parts import ReasoningPart, ToolCallPart
from nbconvo._types import ChatRequest, Effort, Finish, ProviderEvent, ThinkingDelta, Usage
from nbconvo.providers._content import (
    described,
    gemini_parts,
    reasoning_for,
    refuse_effort,
    with_result_names,
)
from nbconvo.providers._http import (
    RETRYABLE_STATUS,
    EventFeed,
    HTTPProvider,
    ServiceError,
    error_message_from_body,
    parse_json_event,
    require_key,
)
from nbconvo.providers.anthropic import alternate
from nbconvo.providers.openai import length_notice

GEMINI_BASE_URL = "https://generativelanguage.googleapis.com"
API_VERSION = "v1"
_FILTERED = {
    "SAFETY": "safety filters",
    "RECITATION": "it recited training data",
    "BLOCKLIST": "a blocked term",
    "PROHIBITED_CONTENT": "prohibited content",
    "SPII": "sensitive personal information",
    "IMAGE_SAFETY": "image safety filters",
    "IMAGE_PROHIBITED_CONTENT": "prohibited image content",
    "IMAGE_RECITATION": "it recited an image",
    "LANGUAGE": "an unsupported language",
}
_TRANSIENT_STATUS = {"UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"}
# Gemini 2.5 thinks within a token budget (it takes no thinking level): one by effort.
THINKING_BUDGET: dict[Effort, int] = {"low": 1_024, "medium": 8_192, "high": 24_576}


def thinking_config(model: str, effort: Effort) -> dict[str, Any]:
    """``generationConfig.thinkingConfig`` for ``effort``: the level, or Gemini 2.5's
    budget; thoughts included, so they stream. Written as google-genai writes it (the
    fields inside in snake_case, a level in capitals: the API reads both spellings)."""
    if model.startswith("gemini-2"):
        return {"include_thoughts": True, "thinking_budget": THINKING_BUDGET[effort]}
    return {"include_thoughts": True, "thinking_level": effort.upper()}


_TOOL_TROUBLE = {
    "MALFORMED_FUNCTION_CALL": "the model wrote a tool call Gemini could not read; send the "
    "turn again",
    "UNEXPECTED_TOOL_CALL": "the model called a tool it was not offered; offer it with "
    "--tools or rephrase the prompt",
}


class GeminiProvider(HTTPProvider):
    name = "gemini"
    key_variable = KEYS["gemini"].variable
    key_alternatives = KEYS["gemini"].alternatives
    base_url_variables = ("GEMINI_BASE_URL", "GOOGLE_GEMINI_BASE_URL")
    vendor_base_url = GEMINI_BASE_URL

    def model_name(self, model: str) -> str:
        return model.removeprefix("models/")  # the name as Google's model list writes it

    def key(self) -> str:
        return require_key(
            self.key_variable, self.prefix, self.environ, alternatives=self.key_alternatives
        )

    def url(self) -> str:
        base = self.base_url
        if not base.rsplit("/", 1)[-1].startswith("v1"):  # a base URL may carry the version
            base = f"{base}/{API_VERSION}"
        return f"{base}/models/{self.model}:streamGenerateContent?alt=sse"

    def body(self, request: ChatRequest) -> dict[str, Any]:
        messages = with_result_names([m for m in request.messages if m["role"] != "system"])
        contents = [
            {
                "role": "model" if m["role"] == "assistant" else "user",
                "parts": gemini_parts(reasoning_for(m["content"], "gemini"), self.label),
            }
            for m in alternate(messages)
        ]
        body: dict[str, Any] = {"contents": contents}
        if request.tools:
            declarations = [
                described({"name": t.name}, t.description)
                | {"parameters_json_schema": t.parameters}
                for t in request.tools
            ]
            body["tools"] = [{"functionDeclarations": declarations}]
        if request.system:
            body["systemInstruction"] = {"parts": [{"text": request.system}], "role": "user"}
        config: dict[str, Any] = {}
        if request.schema is not None:
            config["responseMimeType"] = "application/json"
            config["responseJsonSchema"] = request.schema.schema
        if request.temperature is not None:
            config["temperature"] = request.temperature
        if request.max_tokens is not None:
            config["maxOutputTokens"] = request.max_tokens
        if request.seed is not None:
            config["seed"] = request.seed
        if request.effort is not None:
            config["thinkingConfig"] = thinking_config(request.model, request.effort)
        if config:
            body["generationConfig"] = config
        return body

    def stream(self, request: ChatRequest) -> Iterator[ProviderEvent]:
        refuse_effort(request, f"{self.prefix}:{request.model}")
        key = self.key()
        yield from self._sse().stream(
            self.url(),
            body=self.body(request),
            headers={"x-goog-api-key": key},
            translate=self._translate,
            keep_tail=True,  # failures after the start come as bare JSON
        )

    def _translate(self, feed: EventFeed) -> Iterator[ProviderEvent]:
        usage: dict[str, Any] = {}
        reason: str | None = None
        calls = 0  # the calls so far: the next one's place
        thoughts: list[str] = []  # the thought summary so far, until the answer moves on
        signature: list[str] = []  # the thought part's signature, if any
        for event in feed:
            if not event.data.strip():
                continue
            chunk = parse_json_event(self.label, event.data)
            if isinstance(chunk, list) and chunk:
                chunk = chunk[0]
            if not isinstance(chunk, dict):
                continue
            if chunk.get("error"):
                raise self._stream_error(chunk)
            if isinstance(chunk.get("usageMetadata"), dict):
                usage = chunk["usageMetadata"]  # the last chunk's is the complete one
            blocked = (chunk.get("promptFeedback") or {}).get("blockReason")
            if blocked:
                yield from self._usage(usage)
                yield Finish(
                    "content_filter",
                    f"Gemini blocked the prompt ({blocked}): rephrase it and send again",
                )
                return
            for candidate in (chunk.get("candidates") or [])[:1]:
                for part in (candidate.get("content") or {}).get("parts") or []:
                    if part.get("thought"):
                        if part.get("text"):
                            thoughts.append(str(part["text"]))
                            yield ThinkingDelta(str(part["text"]))
                        if isinstance(part.get("thoughtSignature"), str):
                            signature[:] = [part["thoughtSignature"]]
                        continue
                    if thoughts or signature:
                        yield _reasoning(thoughts, signature)
                    if part.get("text"):
                        yield str(part["text"])
                    elif isinstance(part.get("functionCall"), dict):
                        yield self._call(part, calls)
                        calls += 1
                reason = candidate.get("finishReason") or reason
        if reason is None:
            stray = feed.stray_json()
            if isinstance(stray, list) and stray:
                stray = stray[0]
            if isinstance(stray, dict) and stray.get("error"):
                raise self._stream_error(stray)
            raise ServiceError(
                f"{self.label}: the stream ended before the answer was complete", retryable=True
            )
        if thoughts or signature:
            yield _reasoning(thoughts, signature)
        yield from self._usage(usage)
        yield Finish("tool_calls") if calls and reason == "STOP" else self._finish(reason, usage)

    def _call(self, part: dict[str, Any], index: int) -> ToolCallPart:
        """A ``functionCall`` part as a call named by its place, with its thought
        signature if it has one (sent back with the call)."""
        function = part["functionCall"]
        arguments = json.dumps(function.get("args") or {})
        signature = part.get("thoughtSignature")
        return ToolCallPart(
            f"call_{index}",
            str(function.get("name") or ""),
            arguments,
            signature if isinstance(signature, str) and signature else None,
        )

    def _usage(self, usage: dict[str, Any]) -> Iterator[Usage]:
        if "promptTokenCount" in usage:
            # Thinking tokens are not in candidatesTokenCount but are output all the same.
            output = int(usage.get("candidatesTokenCount") or 0)
            thoughts = int(usage.get("thoughtsTokenCount") or 0)
            yield Usage(
                int(usage["promptTokenCount"]),  # an implicit cache hit is part of it
                output + thoughts,
                cached_input_tokens=int(usage.get("cachedContentTokenCount") or 0),
                reasoning_tokens=thoughts,
            )

    def _finish(self, reason: str, usage: dict[str, Any]) -> Finish:
        if reason == "STOP":
            return Finish("stop")
        if reason == "MAX_TOKENS":
            return Finish("length", length_notice(int(usage.get("candidatesTokenCount") or 0)))
        if reason in _FILTERED:
            return Finish(
                "content_filter",
                f"Gemini stopped the answer ({reason}: {_FILTERED[reason]})",
            )
        if reason in _TOOL_TROUBLE:
            return Finish("other", f"Gemini stopped the answer ({reason}): {_TOOL_TROUBLE[reason]}")
        return Finish("other", f"Gemini stopped the answer: {reason}")

    def _stream_error(self, body: dict[str, Any]) -> ServiceError:
        error = body.get("error") or {}
        status = str(error.get("status") or "") if isinstance(error, dict) else ""
        message = str(error.get("message") or status) if isinstance(error, dict) else str(error)
        return ServiceError(
            f"{self.label} failed mid-answer: {message}", retryable=status in _TRANSIENT_STATUS
        )

    def _describe_error(
        self, status: int, text: str, headers: Mapping[str, str]
    ) -> tuple[str, bool]:
        message, code = error_message_from_body(text)
        where = f"gemini ({status})"
        if "API_KEY_INVALID" in text or status == 401 or "API key not valid" in message:
            return (
                f"{where} rejected the API key: set {self.key_variable} (or GOOGLE_API_KEY) "
                "to a valid key",
                False,
            )
        if status == 403:
            return (f"{where}: this key may not use {self.model!r} — {message}", False)
        if status == 404:
            names = ", ".join(known_names(self.prefix))
            return (f"{where}: model {self.model!r} not found — known models: {names}", False)
        lowered = message.lower()
        if "token count" in lowered or "too long" in lowered or "exceeds the maximum" in lowered:
            return (
                f"{where}: the prompt exceeds the context window of {self.model} — run "
                "`%convo compact` (or start a new branch with `%convo fork`)",
                False,
            )
        if status == 429 and "PerDay" in text:
            return (f"{where}: the daily quota is used up — {message}", False)
        if status == 429:
            return (f"{where}: rate limited — {message}", True)
        return (f"{where}: {message or code or 'request failed'}", status in RETRYABLE_STATUS)


def _reasoning(thoughts: list[str], signature: list[str]) -> ReasoningPart:
    """The thoughts so far as one part (then none: the lists are emptied)."""
    part = ReasoningPart(
        "".join(thoughts), opaque=signature[0] if signature else None, provider="gemini"
    )
    thoughts.clear()
    signature.clear()
    return part
