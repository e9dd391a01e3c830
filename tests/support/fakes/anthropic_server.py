"""A loopback Anthropic Messages API, written from the wire-format reference (§3, §7, §9).

It validates what the real API requires (a key as ``x-api-key`` or a bearer token, the
``anthropic-version`` header, ``model``, ``max_tokens`` and alternating user/assistant
``messages`` starting with user, a top-level ``system``, and under API version
2026-10-21 no sampling parameters) and answers like it: ``message_start`` … ``ping`` …
``content_block_delta`` … ``message_delta`` (cumulative usage) … ``message_stop``.

Scenarios (``Canned``): any status with a body and headers, ``error_after`` (an
``overloaded_error`` event), ``reset_after``, ``malformed_after``, ``finish`` (a stop
reason such as ``max_tokens`` or ``refusal``), ``options={"unknown_events": True}``
(thinking blocks and an event type from the future), ``tool_calls=[(name, arguments
JSON), …]`` (a text block of ``pieces`` when given, then one ``tool_use`` block per call,
id ``toolu_<step>_<index>`` where step counts the assistant turns with calls before, so
ids are unique in a conversation; the input in ``input_json_delta`` fragments of
``chunk_size``; stop reason ``tool_use``).

Tools: it checks ``tools`` (a name, an object ``input_schema``), ``tool_choice``, and that
each ``tool_use`` is answered by a ``tool_result`` at the start of the next user message.
Unscripted, a last user message of tool results alone is answered ``"tool said: …"``
(their contents joined by "; "), and a forced tool (``tool_choice`` ``tool``, or ``any``:
the last tool) is called with an input matching its schema (``base.example``), which is
how nbconvo asks for a structured answer.

Thinking (``thinking`` adaptive or enabled, ``output_config.effort``): checked and
streamed as ``fakes.thinking`` describes (a signed ``thinking`` block before the text).

Prompt caching, as Anthropic's prompt-caching guide describes it (``PromptCache``):
``cache_control`` breakpoints (at most four; a one-hour TTL never after a five-minute one),
a prefix written only where a breakpoint ends it and only when it reaches the model's
minimum length, a read that finds the longest live prefix ending at a breakpoint or at
one of the 20 blocks before one, entries kept 5 minutes (or 1 hour) after their last use
by the fake's ``clock``, caches apart per key and model. The usage reports
``cache_read_input_tokens``, ``cache_creation_input_tokens`` (split by TTL in
``cache_creation``) and the rest as ``input_tokens``; ``Canned(options={"thinking_tokens":
N})`` adds thinking to the output and to ``output_tokens_details``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.support.fakes.base import (
    Canned,
    Exchange,
    FakeServer,
    PrefixCache,
    count_tokens,
    example,
    fragments,
    prefix_hashes,
    tool_said,
)
from tests.support.fakes.thinking import (
    anthropic_thinking_blocks,
    anthropic_thinking_error,
    anthropic_thinking_on,
    sign,
)

NEW_VERSION = "2026-10-21"
SAMPLING = ("temperature", "top_p", "top_k")
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
BLOCKS = {
    "user": {"text", "image", "document", "tool_result"},
    "assistant": {"text", "tool_use", "thinking", "redacted_thinking"},
}


def error_body(kind: str, message: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": "req_011fake",
    }


class FakeAnthropic(FakeServer):
    def __init__(
        self,
        *,
        api_key: str = "sk-ant-" + "test-fake-key-0000000000",
        models: set[str] | None = None,
        context_window: int = 200_000,
        clock: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        super().__init__(api_key=api_key, **kwargs)
        self.models = models  # None: any model name is served
        self.context_window = context_window
        self.prompt_cache = PromptCache(clock)

    def handle(self, ex: Exchange) -> None:
        if ex.seen.method != "POST" or ex.path not in ("/v1/messages", "/v1/messages/count_tokens"):
            ex.json(404, error_body("not_found_error", "Not found"))
            return
        key = ex.header("x-api-key") or ex.header("authorization").removeprefix("Bearer ")
        if key != self.api_key:
            ex.json(401, error_body("authentication_error", "invalid x-api-key"))
            return
        version = ex.header("anthropic-version")
        if not version:
            ex.json(
                400, error_body("invalid_request_error", "anthropic-version: header is required")
            )
            return
        body = ex.seen.body
        problem = validate(
            body, version, count_only=ex.path.endswith("count_tokens")
        ) or anthropic_thinking_error(body)
        if problem:
            ex.json(400, error_body("invalid_request_error", problem))
            return
        if self.models is not None and body["model"] not in self.models:
            ex.json(404, error_body("not_found_error", f"model: {body['model']}"))
            return
        tokens = input_tokens(body)
        if tokens > self.context_window:
            message = f"prompt is too long: {tokens} tokens > {self.context_window} maximum"
            ex.json(400, error_body("invalid_request_error", message))
            return
        if ex.path.endswith("count_tokens"):
            ex.json(200, {"input_tokens": tokens})
            return
        problem = cache_control_error(body)
        if problem:
            ex.json(400, error_body("invalid_request_error", problem))
            return
        self.requests.append(body)
        canned = self.next_canned()
        if canned.status != 200:
            payload = canned.body or error_body("api_error", "Internal server error")
            ex.json(canned.status, payload, {"request-id": "req_011fake", **canned.headers})
            return
        pieces, calls = self._answer(body, canned)
        usage = self.prompt_cache.serve(key, body)
        self._stream(ex, body, pieces, canned, usage, calls)

    def _answer(
        self, body: dict[str, Any], canned: Canned
    ) -> tuple[list[str], list[tuple[str, str]]]:
        """The text pieces and the tool calls (name, arguments) to stream."""
        if canned.tool_calls is not None:
            return list(canned.pieces or []), list(canned.tool_calls)
        users = [  # a message of tool results alone is no user turn
            text_of(m["content"])
            for m in body["messages"]
            if m["role"] == "user" and not only_results(m["content"])
        ]
        last = body["messages"][-1]["content"]
        text = tool_said(tool_results(last)) if only_results(last) else None
        forced = forced_tool(body)
        if forced is not None:
            value = example(forced.get("input_schema"), text or self.answer(users), len(users))
            return list(canned.pieces or []), [(forced["name"], json.dumps(value))]
        return self.pieces(text or self.answer(users), canned), []

    def _stream(
        self,
        ex: Exchange,
        body: dict[str, Any],
        pieces: list[str],
        canned: Canned,
        counts: CacheUsage,
        calls: list[tuple[str, str]] | None = None,
    ) -> None:
        ex.start_stream("text/event-stream; charset=utf-8", {"request-id": "req_011fake"})

        def send(payload: dict[str, Any]) -> None:
            ex.event(payload, event=payload["type"])

        usage = {
            **counts.fields(),
            "cache_creation": counts.creation(),
            "output_tokens": 1,
            "service_tier": "standard",
        }
        message = {
            "id": "msg_fake01",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": body["model"],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        send({"type": "message_start", "message": message})
        index = 0
        if canned.options.get("unknown_events"):
            send(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "thinking", "thinking": "", "signature": ""},
                }
            )
            send(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "thinking_delta", "thinking": "hidden thoughts"},
                }
            )
            send(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "signature_delta", "signature": sign("hidden thoughts")},
                }
            )
            send({"type": "content_block_stop", "index": 0})
            ex.event({"type": "future_event", "detail": 1}, event="future_event")
            index = 1
        thought = 0  # thinking tokens (the Messages API counts them in the output)
        if anthropic_thinking_on(body):
            index, thought = anthropic_thinking_blocks(
                send, body, canned.options, index, lambda text: self.pieces(text, Canned())
            )
        text_block = bool(pieces) or not calls  # an answer of calls alone has no text
        if text_block:
            send(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                }
            )
        ex.raw("event: ping" + ex.newline + 'data: {"type": "ping"}' + ex.newline * 2)
        limit = body["max_tokens"]
        sent = 0
        stop = canned.finish or ("tool_use" if calls else "end_turn")
        for n, piece in enumerate(pieces):
            if canned.error_after == n:
                send(
                    {
                        "type": "error",
                        "error": {"type": "overloaded_error", "message": "Overloaded"},
                    }
                )
                return
            if canned.reset_after == n:
                ex.reset()
                return
            if canned.malformed_after == n:
                ex.event("{not json", event="content_block_delta")
                return
            if sent >= limit:
                stop = "max_tokens"
                break
            send(
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "text_delta", "text": piece},
                }
            )
            sent += 1
        if text_block:
            send({"type": "content_block_stop", "index": index})
            index += 1
        if stop != "max_tokens":
            sent += self._tool_blocks(send, calls or [], index)
        thinking = int(canned.options.get("thinking_tokens", 0)) + thought
        final: dict[str, Any] = {**counts.fields(), "output_tokens": sent + thinking}
        if thinking:
            final["output_tokens_details"] = {"thinking_tokens": thinking}
        send(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": final,
            }
        )
        send({"type": "message_stop"})

    def _tool_blocks(self, send: Any, calls: list[tuple[str, str]], first: int) -> int:
        """One ``tool_use`` block per call, its input in fragments (the first one empty,
        as the API sends it); returns how many fragments were sent."""
        sent = 0
        step = sum(  # ids unique in a conversation, the same for the same request
            1
            for m in self.requests[-1]["messages"]
            if m["role"] == "assistant"
            and any(isinstance(b, dict) and b.get("type") == "tool_use" for b in m["content"])
        )
        for n, (name, arguments) in enumerate(calls):
            index = first + n
            block = {
                "type": "tool_use",
                "id": f"toolu_{step}_{n}",
                "name": name,
                "input": {},
            }
            send({"type": "content_block_start", "index": index, "content_block": block})
            for piece in ["", *fragments(arguments, self.chunk_size)]:
                delta = {"type": "input_json_delta", "partial_json": piece}
                send({"type": "content_block_delta", "index": index, "delta": delta})
                sent += 1
            send({"type": "content_block_stop", "index": index})
        return sent


def tool_results(content: Any) -> list[str]:
    """The text of each ``tool_result`` block of a user message's content."""
    if isinstance(content, str):
        return []
    return [
        text_of(block.get("content") or "")
        for block in content
        if block.get("type") == "tool_result"
    ]


def only_results(content: Any) -> bool:
    return bool(content) and all(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    )


def forced_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    """The tool the model must call: the one ``tool_choice`` names, or with ``any`` the
    last one (nbconvo puts its answer tool last)."""
    choice = body.get("tool_choice") or {}
    tools = body.get("tools") or []
    if choice.get("type") == "tool":
        return next((t for t in tools if t.get("name") == choice.get("name")), None)
    if choice.get("type") == "any" and tools:
        return dict(tools[-1])
    return None


def input_tokens(body: dict[str, Any]) -> int:
    system = body.get("system") or ""
    if isinstance(system, list):
        system = " ".join(block.get("text", "") for block in system)
    texts = [system] + [text_of(m["content"]) for m in body["messages"]]
    return sum(count_tokens(t) for t in texts)


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(block["text"] for block in content if block.get("type") == "text")


def tools_error(body: dict[str, Any]) -> str | None:
    """``tools`` with valid names and object input schemas; a ``tool_choice`` that names
    one of them."""
    tools = body.get("tools")
    names = set()
    if tools is not None:
        if not isinstance(tools, list):
            return "tools: Input should be a valid list"
        for i, tool in enumerate(tools):
            name = tool.get("name") if isinstance(tool, dict) else None
            if not isinstance(name, str) or not TOOL_NAME.match(name):
                return (
                    f"tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
                )
            schema = tool.get("input_schema")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                return f"tools.{i}.custom.input_schema.type: Input should be 'object'"
            if name in names:
                return "tools: Tool names must be unique."
            names.add(name)
    choice = body.get("tool_choice")
    if choice is not None:
        kind = choice.get("type") if isinstance(choice, dict) else None
        if kind not in ("auto", "any", "tool", "none"):
            return "tool_choice: Input tag does not match any of the expected tags"
        if kind in ("any", "tool") and not names:
            return "tool_choice: may only be specified while providing tools."
        if kind == "tool" and choice.get("name") not in names:
            return f"tool_choice.tool.name: Tool '{choice.get('name')}' not found in tools"
    return None


def blocks_error(messages: list[dict[str, Any]]) -> str | None:
    """Block types by role, and every ``tool_use`` answered by a ``tool_result`` at the
    start of the next message (and no ``tool_result`` without its ``tool_use``)."""
    waiting: list[str] = []
    for i, message in enumerate(messages):
        content = message["content"]
        blocks = [] if isinstance(content, str) else content
        for j, block in enumerate(blocks):
            kind = block.get("type") if isinstance(block, dict) else None
            if kind not in BLOCKS[message["role"]]:
                return f"messages.{i}.content.{j}.type: Input tag {kind!r} is not allowed here"
        results = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
        leading = [b.get("type") for b in blocks[: len(results)]]
        if any(kind != "tool_result" for kind in leading):
            return (
                f"messages.{i}: `tool_result` blocks must come first in the content, "
                "before any other block"
            )
        missing = [w for w in waiting if w not in results]
        if missing:
            return (
                f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                "corresponding `tool_result` block in the next message."
            )
        stray = [r for r in results if r not in waiting]
        if stray:
            return (
                f"messages.{i}.content.0: unexpected `tool_use_id` found in `tool_result` "
                f"blocks: {stray[0]}. Each `tool_result` block must have a corresponding "
                "`tool_use` block in the previous message."
            )
        waiting = [b["id"] for b in blocks if b.get("type") == "tool_use"]
    if waiting:
        return (
            f"messages.{len(messages) - 1}: `tool_use` ids were found without `tool_result` "
            f"blocks immediately after: {', '.join(waiting)}"
        )
    return None


def validate(body: Any, version: str, *, count_only: bool = False) -> str | None:
    if not isinstance(body, dict):
        return "The request body is not valid JSON."
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    if not count_only:
        if "max_tokens" not in body:
            return "max_tokens: Field required"
        if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1:
            return "max_tokens: Input should be greater than or equal to 1"
        if body.get("stream") is not True:
            return "this fake only serves stream=true"
    if version == NEW_VERSION:
        for name in SAMPLING:
            if name in body:
                return f"{name}: Extra inputs are not permitted"
    system = body.get("system")
    if system is not None and not isinstance(system, (str, list)):
        return "system: Input should be a valid string or a list of text blocks"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: Field required"
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role == "system":
            return (
                'messages: Unexpected role "system". The Messages API accepts a top-level '
                '`system` parameter, not "system" as an input message role.'
            )
        if role not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        content = message.get("content")
        if not isinstance(content, (str, list)) or not (
            text_of(content).strip()
            or any(isinstance(b, dict) and b.get("type") != "text" for b in content)
        ):
            return f"messages.{i}: all messages must have non-empty content"
        if i == 0 and role != "user":
            return 'messages: first message must use the "user" role'
        if i > 0 and messages[i - 1].get("role") == role:
            return 'messages: roles must alternate between "user" and "assistant"'
    return blocks_error(messages) or tools_error(body)


# -- prompt caching ----------------------------------------------------------------------

# The shortest prefix each model caches (Anthropic's prompt-caching guide, late 2026):
# the longest matching name wins; other models 1,024 tokens.
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
TTL_SECONDS = {"5m": 300.0, "1h": 3_600.0}
LOOKBACK = 20  # blocks before a breakpoint where a read also looks for a cached prefix
MAX_BREAKPOINTS = 4


def min_cacheable(model: str) -> int:
    names = [name for name in MIN_CACHEABLE if model.startswith(name)]
    return MIN_CACHEABLE[max(names, key=len)] if names else DEFAULT_MIN_CACHEABLE


@dataclass
class Unit:
    """One block of a request in prompt order (tools, system, messages): what it adds to
    the prompt (its canonical form, without ``cache_control``), its tokens, and its
    breakpoint's TTL if it carries one."""

    piece: str
    tokens: int
    ttl: str | None


@dataclass
class CacheUsage:
    uncached: int
    read: int
    written_5m: int = 0
    written_1h: int = 0

    def fields(self) -> dict[str, int]:
        return {
            "input_tokens": self.uncached,
            "cache_creation_input_tokens": self.written_5m + self.written_1h,
            "cache_read_input_tokens": self.read,
        }

    def creation(self) -> dict[str, int]:
        return {
            "ephemeral_5m_input_tokens": self.written_5m,
            "ephemeral_1h_input_tokens": self.written_1h,
        }


def _marker_ttl(block: Any) -> str | None:
    marker = block.get("cache_control") if isinstance(block, dict) else None
    if not isinstance(marker, dict):
        return None
    return str(marker.get("ttl") or "5m")


def _canonical(where: str, block: Any) -> str:
    if isinstance(block, dict):
        block = {k: v for k, v in block.items() if k != "cache_control"}
    return json.dumps([where, block], sort_keys=True)


def cache_units(body: dict[str, Any]) -> list[Unit]:
    """The request as blocks in the order Anthropic renders a prompt (tools, system,
    messages), each with the tokens the fake counts for it: ``input_tokens(body)`` split
    by block (a word a token; the one token the fake adds to the system, and to each
    message, on its first block). A string system or content is one text block: the
    same prompt as the block, so a breakpoint added or moved changes no prefix."""
    units = [Unit(_canonical("tool", t), 0, _marker_ttl(t)) for t in body.get("tools") or []]
    extra = 1  # the system's token, on the first block after the tools
    system = body.get("system") or []
    for block in [{"type": "text", "text": system}] if isinstance(system, str) else system:
        words = len(str(block.get("text", "")).split())
        units.append(Unit(_canonical("system", block), words + extra, _marker_ttl(block)))
        extra = 0
    for message in body["messages"]:
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        extra += 1  # the message's own token
        for block in blocks:
            words = len(str(block.get("text", "")).split()) if block.get("type") == "text" else 0
            units.append(
                Unit(_canonical(message["role"], block), words + extra, _marker_ttl(block))
            )
            extra = 0
    if extra and units:
        units[-1].tokens += extra
    automatic = body.get("cache_control")
    if isinstance(automatic, dict) and units:  # top level: the last block's breakpoint
        units[-1].ttl = str(automatic.get("ttl") or "5m")
    return units


def cache_control_error(body: dict[str, Any]) -> str | None:
    """What the API answers for breakpoints it refuses: more than four, an unknown type or
    TTL, or a one-hour TTL after a five-minute one."""
    blocks = list(body.get("tools") or [])
    system = body.get("system")
    blocks += system if isinstance(system, list) else []
    for message in body.get("messages") or []:
        content = message.get("content")
        blocks += content if isinstance(content, list) else []
    markers = [b["cache_control"] for b in blocks if isinstance(b, dict) and "cache_control" in b]
    if isinstance(body.get("cache_control"), dict):
        markers.append(body["cache_control"])
    for marker in markers:
        if not isinstance(marker, dict) or marker.get("type") != "ephemeral":
            return "cache_control.type: Input should be 'ephemeral'"
        if marker.get("ttl", "5m") not in TTL_SECONDS:
            return "cache_control.ttl: Input should be '5m' or '1h'"
    if len(markers) > MAX_BREAKPOINTS:
        return (
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {len(markers)}."
        )
    ttls = [str(m.get("ttl", "5m")) for m in markers]
    if "5m" in ttls and "1h" in ttls[ttls.index("5m") :]:
        return (
            "a cache_control block with ttl='1h' cannot come after one with ttl='5m': "
            "longer TTLs must come first"
        )
    return None


class PromptCache:
    """Anthropic's prompt cache, as its guide describes it. A prefix is cached only where a
    breakpoint ends it, and only when it has the model's minimum tokens. A request reads
    the longest live prefix ending at one of its breakpoints or at one of the ``LOOKBACK``
    blocks before one (the prefix is matched exactly: everything before, in prompt
    order, identical; ``cache_control`` itself is no part of it). It writes every
    breakpoint past what it read, and refreshes what it read: an entry lives its TTL
    after its last use. A breakpoint inside the prefix read gets an entry at no cost
    (those tokens were read). Tokens: ``uncached`` (after the last breakpoint, or not
    cacheable) + ``read`` + written, the whole prompt the fake counts."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.cache = PrefixCache(clock)

    def serve(self, api_key: str, body: dict[str, Any]) -> CacheUsage:
        units = cache_units(body)
        total = sum(u.tokens for u in units)
        ends: list[int] = []  # tokens up to and including each block
        for unit in units:
            ends.append((ends[-1] if ends else 0) + unit.tokens)
        hashes = prefix_hashes(u.piece for u in units)
        marks = [i for i, u in enumerate(units) if u.ttl is not None]
        scope = (api_key, body["model"])
        minimum = min_cacheable(body["model"])
        with self.cache.lock:
            read_at = -1
            for mark in marks:
                for i in range(max(0, mark - LOOKBACK), mark + 1):
                    if i > read_at and self.cache.alive(scope, hashes[i]) is not None:
                        read_at = i
            read = ends[read_at] if read_at >= 0 else 0
            usage = CacheUsage(total - read, read)
            if read_at >= 0:
                ttl = self.cache.alive(scope, hashes[read_at])
                self.cache.put(scope, hashes[read_at], read, ttl.ttl if ttl else 300.0)
            done = read
            for mark in marks:
                ttl = units[mark].ttl or "5m"
                if ends[mark] < minimum:
                    continue  # too short to cache: nothing written, no error
                self.cache.put(scope, hashes[mark], ends[mark], TTL_SECONDS[ttl])
                if mark <= read_at:
                    continue
                written = ends[mark] - done
                done = ends[mark]
                if ttl == "1h":
                    usage.written_1h += written
                else:
                    usage.written_5m += written
                usage.uncached -= written
            return usage
