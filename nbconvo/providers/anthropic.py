"""Anthropic Messages API, streamed, API version 2026-10-21.

``POST {base}/v1/messages`` with ``anthropic-version: 2026-10-21`` and the key as a bearer
token (as the official SDK sends it). ``system`` is top level; messages alternate user and
assistant, starting with user (same-role neighbours are merged here); ``max_tokens`` is
required, so a per-model default from the model table is sent when the user sets none.
This API version rejects every sampling parameter, so a temperature is dropped with a
note. Events: ``message_start`` (input usage), ``content_block_*`` (text deltas, tool
calls, thinking; citation deltas are skipped), ``message_delta`` (stop reason,
cumulative usage), ``message_stop``; ``ping`` and unknown events are ignored, ``error``
fails the turn.

Effort (``--effort``): adaptive thinking (``thinking: {"type": "adaptive", "display":
"summarized"}``, the summary shown: newer models omit it by default) with
``output_config.effort``, for Claude 4.6 and later (the Claude 5 family refuses a budget);
for Claude 4.5 and earlier, extended thinking with a ``budget_tokens`` by effort, on top of
the answer's ``max_tokens``. A ``thinking`` block streams as ``thinking_delta`` pieces
(``ThinkingDelta``) and a ``signature_delta``, and is yielded whole at its stop as a
``ReasoningPart`` (the signature its opaque part); a ``redacted_thinking`` block is kept
opaque. Both go back, as they came, at the start of the assistant's content (Anthropic
requires them before the ``tool_use`` of a turn that thinks). Anthropic refuses thinking
while a tool is forced, so with a structured answer (a forced answer tool) the effort is
dropped with a note.

Prompt caching (``request.cache``): ``cache_control`` breakpoints, at most four, placed by
``cache_breakpoints`` so that the next turn of a branch, and a fork or a rerun of an earlier
turn, reads the longest prefix cached (the cache is keyed by the exact prompt up to a
breakpoint; the marks themselves are no part of it, so marks that move between turns cost
nothing). The usage's ``input_tokens`` excludes the cache's reads and writes: the three
together are the prompt.

Tools go as ``tools`` with an ``input_schema``; a call streams as a ``tool_use`` block
whose input arrives in ``input_json_delta`` pieces, yielded whole at its
``content_block_stop``. Tool results go back as ``tool_result`` blocks at the start of
the next user message. A structured answer is a tool the model must call, named after
the schema: the pieces of that call's input are the answer's text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from nbconvo._credentials import KEYS
from nbconvo._errors import ProviderError
from nbconvo._models import default_max_tokens, known_names
from nbconvo._parts import Content, ReasoningPart, ToolCallPart, as_parts
from nbconvo._types import (
    CachePolicy,
    ChatRequest,
    Effort,
    Finish,
    Message,
    Notice,
    ProviderEvent,
    ResponseSchema,
    Role,
    ThinkingDelta,
    Usage,
)
from nbconvo.providers._content import (
    anthropic_blocks,
    anthropic_opaque,
    described,
    reasoning_for,
    refuse_effort,
)
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
# Claude 4.5 and earlier think with a token budget (``thinking.type: enabled``); later
# models think adaptively, steered by ``output_config.effort`` (the Claude 5 family refuses
# a budget). A budget by effort, added to the answer's max_tokens (it must be below it).
_BUDGET_FORM = re.compile(r"^claude-(?:3|(?:opus|sonnet|haiku)-4(?:-[0-5])?(?:-\d{8})?$)")
THINKING_BUDGET: dict[Effort, int] = {"low": 2_048, "medium": 6_144, "high": 12_288}


def thinking_fields(model: str, effort: Effort, max_tokens: int) -> dict[str, Any]:
    """The body fields that ask ``model`` to think with ``effort``: ``thinking`` (and
    ``output_config``), and ``max_tokens`` raised by the budget where there is one."""
    if _BUDGET_FORM.match(model):
        budget = THINKING_BUDGET[effort]
        return {
            "thinking": {"type": "enabled", "budget_tokens": budget},
            "max_tokens": max_tokens + budget,
        }
    return {
        "thinking": {"type": "adaptive", "display": "summarized"},
        "output_config": {"effort": effort},
    }


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
    """Strings stay strings; parts become content blocks (Claude's own thinking first,
    other providers' reasoning left out)."""
    out: list[dict[str, Any]] = []
    for m in alternate(messages):
        content = reasoning_for(m["content"], "anthropic")
        blocks = (
            content
            if isinstance(content, str)
            else anthropic_blocks(_thinking_first(content), label)
        )
        out.append({"role": m["role"], "content": blocks})
    return out


def _thinking_first(content: Content) -> Content:
    """An assistant's thinking blocks before its text and tool calls, as the API wants
    them (the order they came in, kept among themselves)."""
    parts = as_parts(content)
    thinking = tuple(p for p in parts if isinstance(p, ReasoningPart))
    return thinking + tuple(p for p in parts if not isinstance(p, ReasoningPart))


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
        tools = [
            described({"name": t.name}, t.description) | {"input_schema": t.parameters}
            for t in request.tools
        ]
        if request.schema is not None:
            tools.append(answer_tool(request.schema))
            # Alone, the answer tool is forced; beside other tools the model must call
            # one of them: a tool it needs, or the answer.
            body["tool_choice"] = (
                {"type": "any"} if request.tools else {"type": "tool", "name": request.schema.name}
            )
        if tools:
            body["tools"] = tools
        if request.effort is not None and request.schema is None:
            body.update(thinking_fields(request.model, request.effort, body["max_tokens"]))
        if request.cache is not None:
            mark_cache_breakpoints(body, request.cache)
        return body

    def stream(self, request: ChatRequest) -> Iterator[ProviderEvent]:
        refuse_effort(request, f"{self.prefix}:{request.model}")
        if request.effort is not None and request.schema is not None:
            yield Notice(
                f"effort {request.effort} not sent to {self.label}: Anthropic takes no "
                "thinking while a tool is forced, as a structured answer (--schema) is"
            )
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
            translate=lambda feed: self._translate(
                feed, body["max_tokens"], request.schema.name if request.schema else None
            ),
        )
        if dropped != (None, None):
            self._dropped = dropped  # noted once the user has seen it: a failed turn shows none

    def _translate(
        self, feed: EventFeed, max_tokens: int, answer: str | None = None
    ) -> Iterator[ProviderEvent]:
        input_tokens: dict[str, int] = {}
        output_tokens = 0
        stop: str | None = None
        stopped = False
        tools = _ToolBlocks(answer)
        thinking: dict[Any, tuple[list[str], list[str]]] = {}  # index: pieces, signature
        thought = 0  # tokens spent thinking, when the usage says
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
            elif kind == "content_block_delta":
                delta = data.get("delta") or {}
                sort = delta.get("type")
                if sort == "text_delta" and delta.get("text"):
                    yield str(delta["text"])
                elif sort == "input_json_delta":
                    yield from tools.piece(data.get("index"), str(delta.get("partial_json") or ""))
                elif sort == "thinking_delta" and data.get("index") in thinking:
                    piece = str(delta.get("thinking") or "")
                    if piece:
                        thinking[data.get("index")][0].append(piece)
                        yield ThinkingDelta(piece)
                elif sort == "signature_delta" and data.get("index") in thinking:
                    thinking[data.get("index")][1][:] = [str(delta.get("signature") or "")]
            elif kind == "content_block_start":
                block = data.get("content_block") or {}
                if block.get("type") == "text" and block.get("text"):
                    yield str(block["text"])
                elif block.get("type") == "tool_use":
                    tools.start(data.get("index"), block)
                elif block.get("type") == "thinking":
                    start = str(block.get("thinking") or "")
                    thinking[data.get("index")] = ([start], [str(block.get("signature") or "")])
                    if start:
                        yield ThinkingDelta(start)
                elif block.get("type") == "redacted_thinking":
                    yield ReasoningPart(opaque=anthropic_opaque(block), provider="anthropic")
            elif kind == "content_block_stop":
                if data.get("index") in thinking:
                    pieces, signature = thinking.pop(data.get("index"))
                    yield ReasoningPart(
                        "".join(pieces), opaque="".join(signature) or None, provider="anthropic"
                    )
                yield from tools.stop(data.get("index"))
            elif kind == "message_delta":
                stop = (data.get("delta") or {}).get("stop_reason") or stop
                usage = data.get("usage") or {}
                input_tokens.update(_input_counts(usage))  # cumulative: later values win
                output_tokens = int(usage.get("output_tokens") or output_tokens)
                details = usage.get("output_tokens_details") or {}
                thought = int(details.get("thinking_tokens") or thought)
            elif kind == "message_stop":
                stopped = True
                break
            elif kind == "error":
                raise self._stream_error(data.get("error") or {})
            # ping and event types added later are ignored
        if not stopped:
            raise ServiceError(
                f"{self.label}: the stream ended before the answer was complete",
                retryable=True,
            )
        yield Usage(
            sum(input_tokens.values()),  # the three counts: the whole prompt
            output_tokens,
            cached_input_tokens=input_tokens.get("cache_read_input_tokens", 0),
            cache_write_tokens=input_tokens.get("cache_creation_input_tokens", 0),
            reasoning_tokens=thought,
        )
        yield self._finish(stop, output_tokens or max_tokens, tools)

    def _finish(self, stop: str | None, tokens: int, tools: _ToolBlocks | None = None) -> Finish:
        if stop == "tool_use" and tools is not None and tools.called:
            return Finish("tool_calls")
        if stop == "tool_use" and tools is not None and tools.answered:
            return Finish("stop")  # the answer tool's input was the answer
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
            return Finish("other", "the model asked to use a tool but sent no call")
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


# -- prompt caching ---------------------------------------------------------------------

MAX_BREAKPOINTS = 4  # cache_control marks a request may carry
# A read finds a cached prefix ending at a breakpoint or at one of about 20 blocks before
# it; a mark is added where the previous request's end lies farther back than this.
LOOKBACK_BLOCKS = 18
MILESTONE = 4  # every 4th user message: a stable place a fork or rerun finds cached
# The shortest prefix each model caches (Anthropic's prompt-caching guide, late 2026); the
# longest matching name wins, other models 1,024 tokens. A mark on a shorter prefix writes
# nothing (and fails nothing): only the system prompt's mark is weighed against it.
MIN_CACHEABLE = {
    "claude-opus-5": 512,
    "claude-fable-5": 512,
    "claude-mythos-5": 512,
    "claude-opus-4-7": 2_048,
    "claude-opus-4-6": 4_096,
    "claude-opus-4-5": 4_096,
    "claude-haiku-4-5": 4_096,
}
DEFAULT_MIN_CACHEABLE = 1_024


def min_cacheable(model: str) -> int:
    names = [name for name in MIN_CACHEABLE if model.startswith(name)]
    return MIN_CACHEABLE[max(names, key=len)] if names else DEFAULT_MIN_CACHEABLE


def cache_marker(policy: CachePolicy) -> dict[str, Any]:
    """``cache_control`` for the policy's TTL (five minutes unless "1h")."""
    return {"type": "ephemeral", **({"ttl": "1h"} if policy.ttl == "1h" else {})}


def _blocks(content: Any) -> int:
    return 1 if isinstance(content, str) else len(content)


def cache_breakpoints(messages: list[dict[str, Any]], slots: int) -> list[int]:
    """The messages (indices, at most ``slots``) that end a cached prefix: user messages,
    which every request of a branch sends unchanged:

    * the last one: the next request of this branch reads everything up to it;
    * the one before, when the last mark's lookback (about 20 blocks) would not reach it
      (a turn of many tool calls): the previous request of the branch, or the turn a
      fork or rerun starts from, ended there and wrote it;
    * then milestones, latest first: every 4th user message, counted from the first. A
      milestone was the last message of an earlier request (so it was written then), and
      marking it again only reads it and keeps it alive: a fork or a rerun of an earlier
      turn, whose own marks include the milestones before it, finds one cached however
      long ago its own turn was."""
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    if not users or slots < 1:
        return []
    chosen = [users[-1]]
    if len(users) > 1:
        since = sum(_blocks(messages[i]["content"]) for i in range(users[-2] + 1, users[-1] + 1))
        if since > LOOKBACK_BLOCKS:
            chosen.append(users[-2])
    for ordinal in range(len(users) - 1, 0, -1):
        if len(chosen) >= slots:
            break
        if ordinal % MILESTONE == 0 and users[ordinal - 1] not in chosen:
            chosen.append(users[ordinal - 1])
    return sorted(chosen[:slots])


def mark_cache_breakpoints(body: dict[str, Any], policy: CachePolicy) -> None:
    """Mark ``body``'s breakpoints (in place): the system prompt (with the tools before it)
    when it is long enough to be cached on its own, then ``cache_breakpoints``: the last
    message's by the top-level ``cache_control`` (automatic caching: a mark on the last
    block, the messages left as they are), the others on their message's last block (a
    marked string becomes one text block: the same prompt)."""
    marker = cache_marker(policy)
    slots = MAX_BREAKPOINTS
    system = body.get("system")
    if isinstance(system, str) and system:
        # Generous (English runs about 4 characters a token): a prompt near the minimum is
        # marked rather than missed; a mark on a prefix too short costs nothing.
        estimate = (len(system) + len(json.dumps(body.get("tools") or []))) // 3
        if estimate >= min_cacheable(str(body["model"])):
            body["system"] = [{"type": "text", "text": system, "cache_control": marker}]
            slots -= 1
    messages = body["messages"]
    for i in cache_breakpoints(messages, slots):
        if i == len(messages) - 1:
            body["cache_control"] = marker
            continue
        content = messages[i]["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
        blocks[-1] = {**blocks[-1], "cache_control": marker}
        messages[i] = {**messages[i], "content": blocks}


def answer_tool(schema: ResponseSchema) -> dict[str, Any]:
    """The tool whose input is a structured answer (Anthropic's way to a JSON answer)."""
    description = schema.description or "Give your answer as this tool's input."
    return {"name": schema.name, "description": description, "input_schema": schema.schema}


@dataclass
class _ToolBlocks:
    """The ``tool_use`` blocks of one answer, by block index: a call's input pieces are
    kept until its block stops; the answer tool's (``answer``: its name) are text."""

    answer: str | None
    calls: dict[Any, tuple[str, str, list[str], Any]] = field(default_factory=dict)
    answering: dict[Any, Any] = field(default_factory=dict)  # index: the block's input
    spoken: set[Any] = field(default_factory=set)  # answer blocks that gave text
    called: bool = False
    answered: bool = False

    def start(self, index: Any, block: dict[str, Any]) -> None:
        name = str(block.get("name") or "")
        if self.answer is not None and name == self.answer:
            self.answering[index] = block.get("input")
        else:
            self.calls[index] = (str(block.get("id") or ""), name, [], block.get("input"))

    def piece(self, index: Any, text: str) -> Iterator[str]:
        if index in self.answering:
            if text:
                self.spoken.add(index)
                yield text
        elif index in self.calls:
            self.calls[index][2].append(text)

    def stop(self, index: Any) -> Iterator[ProviderEvent]:
        if index in self.answering:
            self.answered = True
            whole = self.answering.pop(index)
            if index not in self.spoken:  # no pieces: the input came whole, or is empty
                yield json.dumps(whole) if whole else "{}"
        elif index in self.calls:
            call_id, name, pieces, whole = self.calls.pop(index)
            self.called = True
            arguments = "".join(pieces) or (json.dumps(whole) if whole else "{}")
            yield ToolCallPart(call_id, name, arguments)


def _input_counts(usage: dict[str, Any]) -> dict[str, int]:
    """Input tokens are the plain count plus cache writes plus cache reads."""
    keys = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    return {key: int(usage[key]) for key in keys if isinstance(usage.get(key), int)}


__all__ = ["API_VERSION", "AnthropicProvider", "ProviderError", "alternate"]
