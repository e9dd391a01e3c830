"""A loopback Anthropic Messages API, written from the wire-format reference (§3, §7, §9).

It validates what the real API requires (a key as ``x-api-key`` or a bearer token, the
``anthropic-version`` header, ``model``, ``max_tokens`` and alternating user/assistant
``messages`` starting with user, a top-level ``system``, and under API version
2026-10-21 no sampling parameters) and answers like it: ``message_start`` … ``ping`` …
``content_block_delta`` … ``message_delta`` (cumulative usage) … ``message_stop``.

Scenarios (``Canned``): any status with a body and headers, ``error_after`` (an
``overloaded_error`` event), ``reset_after``, ``malformed_after``, ``finish`` (a stop
reason such as ``max_tokens`` or ``refusal``), ``options={"unknown_events": True}``
(thinking blocks and an event type from the future).
"""

from __future__ import annotations

from typing import Any

from tests.support.fakes.base import Canned, Exchange, FakeServer, count_tokens

NEW_VERSION = "2026-10-21"
SAMPLING = ("temperature", "top_p", "top_k")


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
        **kwargs: Any,
    ) -> None:
        super().__init__(api_key=api_key, **kwargs)
        self.models = models  # None: any model name is served
        self.context_window = context_window

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
        problem = validate(body, version, count_only=ex.path.endswith("count_tokens"))
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
        self.requests.append(body)
        canned = self.next_canned()
        if canned.status != 200:
            payload = canned.body or error_body("api_error", "Internal server error")
            ex.json(canned.status, payload, {"request-id": "req_011fake", **canned.headers})
            return
        users = [text_of(m["content"]) for m in body["messages"] if m["role"] == "user"]
        self._stream(ex, body, self.pieces(self.answer(users), canned), canned, tokens)

    def _stream(
        self, ex: Exchange, body: dict[str, Any], pieces: list[str], canned: Canned, tokens: int
    ) -> None:
        ex.start_stream("text/event-stream; charset=utf-8", {"request-id": "req_011fake"})

        def send(payload: dict[str, Any]) -> None:
            ex.event(payload, event=payload["type"])

        usage = {
            "input_tokens": tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
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
                    "delta": {"type": "signature_delta", "signature": "c2ln"},
                }
            )
            send({"type": "content_block_stop", "index": 0})
            ex.event({"type": "future_event", "detail": 1}, event="future_event")
            index = 1
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
        stop = canned.finish or "end_turn"
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
        send({"type": "content_block_stop", "index": index})
        send(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {
                    "input_tokens": tokens,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "output_tokens": sent,
                },
            }
        )
        send({"type": "message_stop"})


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
        if not isinstance(content, (str, list)) or not text_of(content).strip():
            return f"messages.{i}: all messages must have non-empty content"
        if i == 0 and role != "user":
            return 'messages: first message must use the "user" role'
        if i > 0 and messages[i - 1].get("role") == role:
            return 'messages: roles must alternate between "user" and "assistant"'
    return None
