"""OpenAI's Responses API, streamed (``openai-responses:MODEL``): the API that carries a
reasoning model's reasoning from turn to turn, and takes an effort beside tools.

``POST {base}/responses`` with the OpenAI key and base URL (``OPENAI_API_KEY``,
``OPENAI_BASE_URL``). The conversation goes statelessly: ``store: false``, every turn's
``input`` built from the neutral messages (user and assistant messages, a tool call as a
``function_call`` item and its result as a ``function_call_output``), the system text as
``instructions``, and ``include: ["reasoning.encrypted_content"]`` so that each reasoning
item comes back whole, to be sent back in the next request. A reasoning item is kept as a
``ReasoningPart`` (its summary the text, the item as JSON the opaque part) and goes back,
without its id (nothing is stored upstream), just before the item it preceded: a fork
carries only the reasoning of its own path, since each turn's history is its own.

Effort goes as ``reasoning: {"effort", "summary": "auto"}``; tools as ``function`` tools
(not strict: strict mode refuses the schemas most functions make), a structured answer as
``text.format`` ``json_schema``, the answer's limit as ``max_output_tokens``, a cache
policy's key as ``prompt_cache_key``. The API has no seed: one is dropped with a note, as
a temperature is for a model that takes none.

Events (each with an ``event:`` line and the same ``type`` in its JSON; no ``[DONE]``):
``response.output_text.delta`` (text; ``response.refusal.delta`` too),
``response.reasoning_summary_text.delta`` (``ThinkingDelta``; a blank line between
summary parts), ``response.output_item.done`` (a reasoning item → ``ReasoningPart``, a
``function_call`` → ``ToolCallPart``), then ``response.completed`` with the usage (cached
and written input tokens, reasoning tokens), ``response.incomplete`` (the answer was cut:
``max_output_tokens`` or a content filter), or a failure: ``response.failed`` or an
``error`` event. Other events are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from typing import Any

from nbconvo._models import accepts_sampling, lookup, takes_effort
from nbconvo._parts import (
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    as_parts,
    refuse,
)
from nbconvo._types import ChatRequest, Finish, Message, Notice, ProviderEvent, ThinkingDelta, Usage
from nbconvo.providers._content import blocks, described, refuse_effort
from nbconvo.providers._http import EventFeed, ServiceError, parse_json_event
from nbconvo.providers.openai import OpenAIProvider, length_notice

PROVIDER = "openai-responses"  # the provider named in the reasoning parts it makes
ENCRYPTED = "reasoning.encrypted_content"
# Error codes (of ``error`` events and failed responses) that say "try again".
_TRANSIENT = frozenset({"server_error", "rate_limit_exceeded", "internal_error", "overloaded"})


def responses_input(messages: list[Message], label: str) -> list[dict[str, Any]]:
    """The neutral conversation (no system message) as Responses ``input`` items."""
    items: list[dict[str, Any]] = []
    for message in messages:
        role, content = message["role"], message["content"]
        if role == "tool":
            for part in as_parts(content):
                if not isinstance(part, ToolResultPart):
                    raise refuse(part, label, "a tool message holds tool results only")
                items.append(
                    {
                        "type": "function_call_output",
                        "call_id": part.call_id,
                        "output": part.content,
                    }
                )
        elif role == "assistant":
            items += _assistant_items(content, label)
        elif role != "system":
            items.append({"role": role, "content": _user_content(content, label)})
    return items


def _user_content(content: Any, label: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    return blocks(
        content,
        label,
        lambda text: {"type": "input_text", "text": text},
        lambda image: {"type": "input_image", "detail": "auto", "image_url": image.data_url()},
        "openai",
        lambda doc: {
            "type": "input_file",
            "filename": doc.name or "document.pdf",
            "file_data": doc.data_url(),
        },
    )


def _assistant_items(content: Any, label: str) -> list[dict[str, Any]]:
    """An answer's parts in order: its reasoning items, its text as one assistant message
    (consecutive text parts joined), its calls as ``function_call`` items."""
    if isinstance(content, str):
        return [{"role": "assistant", "content": content}] if content else []
    items: list[dict[str, Any]] = []
    text: list[str] = []

    def flush() -> None:
        if text:
            items.append({"role": "assistant", "content": "".join(text)})
            text.clear()

    for part in content:
        if isinstance(part, TextPart):
            text.append(part.text)
            continue
        flush()
        if isinstance(part, ReasoningPart):
            item = reasoning_item(part)
            if item is not None:
                items.append(item)
        elif isinstance(part, ToolCallPart):
            items.append(
                {
                    "type": "function_call",
                    "call_id": part.call_id,
                    "name": part.name,
                    "arguments": part.arguments,
                }
            )
        else:
            raise refuse(part, label, "an answer holds text, reasoning and tool calls")
    flush()
    return items


def reasoning_item(part: ReasoningPart) -> dict[str, Any] | None:
    """A reasoning item as it goes back: its summary and encrypted content, without the
    id (with ``store: false`` the API has nothing stored under it). None for another
    provider's reasoning, or an item without encrypted content (it cannot be read back)."""
    if part.provider != PROVIDER or not part.opaque:
        return None
    try:
        kept = json.loads(part.opaque)
    except ValueError:
        return None
    if not isinstance(kept, dict) or not kept.get("encrypted_content"):
        return None
    return {
        "type": "reasoning",
        "summary": kept.get("summary") or [],
        "encrypted_content": kept["encrypted_content"],
    }


def reasoning_part(item: dict[str, Any]) -> ReasoningPart:
    """A finished reasoning item as a part: its summary texts the text (a blank line
    between them), the item itself (id, summary, encrypted content) the opaque part."""
    summary = [s for s in item.get("summary") or [] if isinstance(s, dict)]
    text = "\n\n".join(str(s.get("text") or "") for s in summary)
    kept = {"id": item.get("id"), "summary": summary}
    if item.get("encrypted_content"):
        kept["encrypted_content"] = item["encrypted_content"]
    return ReasoningPart(text, opaque=json.dumps(kept), provider=PROVIDER)


class OpenAIResponsesProvider(OpenAIProvider):
    name = PROVIDER
    service = "OpenAI"
    _dropped_seed: int | None = None

    def url(self) -> str:
        return f"{self.base_url}/responses"

    def body(self, request: ChatRequest) -> dict[str, Any]:
        spec = f"{self.prefix}:{request.model}"
        body: dict[str, Any] = {
            "model": request.model,
            "input": responses_input(list(request.messages), self.label),
            "stream": True,
            "store": False,
        }
        known = lookup(spec) is not None
        if request.effort is not None or not known or takes_effort(spec):
            body["include"] = [ENCRYPTED]  # a model that reasons: its reasoning comes back
        if request.system:
            body["instructions"] = request.system
        if request.tools:
            body["tools"] = [
                {"type": "function", "name": t.name}
                | described({}, t.description)
                | {"parameters": t.parameters, "strict": False}
                for t in request.tools
            ]
        if request.schema is not None:
            fmt = {"type": "json_schema", "name": request.schema.name}
            body["text"] = {
                "format": described(fmt, request.schema.description)
                | {"schema": request.schema.schema, "strict": False}
            }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            body["max_output_tokens"] = request.max_tokens
        if request.effort is not None:
            body["reasoning"] = {"effort": request.effort, "summary": "auto"}
        if request.cache is not None and not self._cache_key_refused:
            body["prompt_cache_key"] = request.cache.key
        return body

    def _events(self, request: ChatRequest) -> Iterator[ProviderEvent]:
        spec = f"{self.prefix}:{request.model}"
        refuse_effort(request, spec)
        body = self.body(request)
        if request.seed is not None and request.seed != self._dropped_seed:
            yield Notice(
                f"seed {request.seed} not sent to {self.label}: the Responses API has none"
            )
        dropped: dict[str, Any] = {}
        if "temperature" in body and not accepts_sampling(spec):
            dropped["temperature"] = yield from self._drop_temperature(
                body, "the model takes no sampling parameters"
            )
        yield from self._send(body, dropped)
        self._noted(dropped)
        self._dropped_seed = request.seed

    def _drop_rejected(
        self, body: dict[str, Any], said: str, dropped: dict[str, Any]
    ) -> Generator[ProviderEvent, None, bool]:
        if not ("temperature" in body and "temperature" in said):
            if "reasoning" in body and "reasoning" in said:
                effort = body.pop("reasoning").get("effort")
                body.pop("include", None)
                yield Notice(f"effort {effort} not sent to {self.label}: the model rejected it")
                return True
            if "include" in body and ("encrypted" in said or "include" in said):
                del body["include"]  # a model without reasoning: nothing to carry back
                return True
        return (yield from super()._drop_rejected(body, said, dropped))

    def _translate(self, feed: EventFeed) -> Iterator[ProviderEvent]:
        called = False
        summary_at: dict[Any, Any] = {}  # reasoning item id: the summary part it is at
        for event in feed:
            if not event.data.strip():
                continue
            data = parse_json_event(self.label, event.data)
            if not isinstance(data, dict):
                continue
            kind = data.get("type") or event.event
            if kind == "response.output_text.delta" or kind == "response.refusal.delta":
                if data.get("delta"):
                    yield str(data["delta"])
            elif kind == "response.reasoning_summary_text.delta":
                piece = str(data.get("delta") or "")
                item, index = data.get("item_id"), data.get("summary_index")
                if piece and item in summary_at and summary_at[item] != index:
                    piece = "\n\n" + piece  # a new part of the summary
                summary_at[item] = index
                if piece:
                    yield ThinkingDelta(piece)
            elif kind == "response.output_item.done":
                item = data.get("item") or {}
                if item.get("type") == "reasoning":
                    yield reasoning_part(item)
                elif item.get("type") == "function_call":
                    called = True
                    yield ToolCallPart(
                        str(item.get("call_id") or item.get("id") or ""),
                        str(item.get("name") or ""),
                        str(item.get("arguments") or "") or "{}",
                    )
            elif kind in ("response.completed", "response.incomplete"):
                response = data.get("response") or {}
                usage = _usage(response.get("usage"))
                if usage is not None:
                    yield usage
                yield self._end(response, usage, called)
                return
            elif kind == "response.failed":
                error = (data.get("response") or {}).get("error") or {}
                raise self._failure(error)
            elif kind == "error":
                nested = data.get("error")  # the event itself, or an ``error`` object
                raise self._failure(nested if isinstance(nested, dict) else data)
            # created, in_progress, added/done parts, argument deltas, and events added
            # later are ignored: the finished items carry what is kept
        raise ServiceError(
            f"{self.label}: the stream ended before the answer was complete", retryable=True
        )

    def _end(self, response: dict[str, Any], usage: Usage | None, called: bool) -> Finish:
        if response.get("status") == "incomplete" or response.get("incomplete_details"):
            reason = (response.get("incomplete_details") or {}).get("reason")
            if reason == "content_filter":
                return Finish(
                    "content_filter",
                    "the answer was stopped by OpenAI's content filter; rephrase the prompt",
                )
            if reason == "max_output_tokens":
                return Finish("length", length_notice(usage.output_tokens if usage else None))
            return Finish("other", f"the answer is incomplete: {reason or 'no reason given'}")
        return Finish("tool_calls") if called else Finish("stop")

    def _failure(self, error: dict[str, Any]) -> ServiceError:
        code = str(error.get("code") or error.get("type") or "")
        message = str(error.get("message") or code or "unknown error")
        return ServiceError(
            f"{self.label} failed mid-answer: {message}",
            retryable=code in _TRANSIENT or not code,
        )


def _usage(usage: Any) -> Usage | None:
    """``ResponseUsage``: the whole prompt, of it the cached and written tokens, and the
    output with its reasoning tokens."""
    if not isinstance(usage, dict) or "input_tokens" not in usage:
        return None
    read = usage.get("input_tokens_details") or {}
    wrote = usage.get("output_tokens_details") or {}
    return Usage(
        int(usage.get("input_tokens") or 0),
        int(usage.get("output_tokens") or 0),
        cached_input_tokens=int(read.get("cached_tokens") or 0),
        cache_write_tokens=int(read.get("cache_write_tokens") or 0),
        reasoning_tokens=int(wrote.get("reasoning_tokens") or 0),
    )


__all__ = ["OpenAIResponsesProvider", "reasoning_item", "reasoning_part", "responses_input"]
