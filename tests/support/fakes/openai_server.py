"""A loopback OpenAI Chat Completions server for tests, written from the wire-format
reference (section 1): role chunk, content chunks, finish chunk with an empty delta, a
usage chunk with empty ``choices`` when ``stream_options.include_usage`` is set, then
``data: [DONE]``. It validates what the real API requires and answers like it.

The default answer is deterministic and reveals what the server was sent, so tests can
check the history each branch carries: ``"echo #<n>: <last user text>"`` where n is the
number of user messages. ``server.script`` holds canned responses for fault scenarios.
An ``answer`` callable may return the stream's pieces itself (a list of strings, one
content delta each) instead of a text cut into ``chunk_size`` pieces; ``delay`` paces
the pieces of every answer that is not scripted with a delay of its own.

Tools: ``Canned(tool_calls=[("add", '{"a": 2, "b": 3}'), …], pieces=[…])`` streams the
pieces, then the calls as ``delta.tool_calls`` (ids ``call_<step>_<index>`` where step
counts the assistant messages with calls before, so ids are unique in a conversation; the
arguments in fragments of ``chunk_size``, parallel calls interleaved) and finishes with
``tool_calls``. Unscripted, a request whose last messages are tool results is answered
``"tool said: <their contents joined by '; '>"``, and one with a ``json_schema``
``response_format`` with a JSON object matching it (``base.example``).

Prompt caching: automatic, as ``base.AutomaticPromptCache`` describes (1,024 tokens and
more, 128-token increments, routed by ``prompt_cache_key`` and the prompt's start, kept
``cache_ttl`` seconds after its last use by ``clock``); the usage chunk reports
``prompt_tokens_details.cached_tokens`` (and ``cache_write_tokens`` for the models that
bill writes) and ``completion_tokens_details.reasoning_tokens``
(``Canned(options={"reasoning_tokens": N})``, counted in the completion tokens).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from tests.support.fakes import base
from tests.support.fakes.base import (
    AutomaticPromptCache,
    Exchange,
    FakeServer,
    chat_answer,
    chat_content_text,
    chat_messages_error,
    chat_prompt_tokens,
    chat_tools_error,
    chat_usage,
    openai_tool_deltas,
    tool_steps,
)
from tests.support.fakes.thinking import chat_effort_error

ROLES = {"system", "developer", "user", "assistant", "tool"}


@dataclasses.dataclass
class Canned(base.Canned):
    """One scripted response: a status with a JSON body, or a stream of text pieces."""

    delay: float = 0.0  # seconds between pieces
    finish_reason: str = "stop"  # e.g. "length" or "content_filter" ("tool_calls" with calls)


def default_answer(messages: list[dict[str, Any]]) -> str:
    users = [chat_content_text(m["content"]) for m in messages if m["role"] == "user"]
    return f"echo #{len(users)}: {users[-1]}"


class FakeOpenAI(FakeServer):
    path_prefix = "/v1"

    def __init__(
        self,
        *,
        api_key: str | None = "sk-test-fake-key-000000000000",
        answer: Callable[[list[dict[str, Any]]], str | list[str]] = default_answer,
        chunk_size: int = 4,
        delay: float = 0.0,  # seconds between two pieces (not before the first)
        send_usage: bool = True,
        idle_timeout: float = 600.0,
        model_fields: dict[str, Any] | None = None,
        props: dict[str, Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        cache_ttl: float = 600.0,
    ) -> None:
        super().__init__(api_key=api_key or "", chunk_size=chunk_size, idle_timeout=idle_timeout)
        self.check_key = api_key is not None  # None: a local server that takes any key
        self.answer = answer  # type: ignore[assignment]  # messages in, not user texts
        self.model_fields = model_fields or {}  # extra fields of GET /models entries (vLLM)
        self.props = props  # what GET /props answers (llama.cpp), or 404 when None
        self.delay = delay
        self.send_usage = send_usage
        self.requests: list[dict[str, Any]] = []
        self.script: Any = self.script  # holds this module's Canned
        self.prompt_cache = AutomaticPromptCache(clock, cache_ttl)

    @property
    def gets(self) -> list[str]:
        """The paths of the GET requests, in order."""
        return [seen.path for seen in self.seen if seen.method == "GET"]

    @property
    def headers_seen(self) -> list[dict[str, str]]:
        """The headers of every POST, valid or not."""
        return [seen.headers for seen in self.seen if seen.method == "POST"]

    def __enter__(self) -> FakeOpenAI:
        super().__enter__()
        return self

    def handle(self, exchange: Exchange) -> None:
        if exchange.seen.method == "GET":
            self._get(exchange)
            return
        if not exchange.path.endswith("/chat/completions"):
            exchange.json(
                404, _error(f"Unknown path {exchange.path}", "invalid_request_error", None)
            )
            return
        if self.check_key and exchange.header("authorization") != f"Bearer {self.api_key}":
            message = (
                "Incorrect API key provided: sk-xxxx***xxxx. You can find your API key "
                "at https://platform.openai.com/account/api-keys."
            )
            exchange.json(401, _error(message, "invalid_request_error", "invalid_api_key"))
            return
        body = exchange.seen.body
        if isinstance(body, bytes):
            message = "We could not parse the JSON body of your request."
            exchange.json(400, _error(message, "invalid_request_error", None))
            return
        problem = _validate(body)
        if problem:
            exchange.json(400, _error(problem, "invalid_request_error", None))
            return
        self.requests.append(body)
        canned = self.script.popleft() if self.script else Canned()
        if canned.status != 200:
            exchange.json(
                canned.status, canned.body or _error("error", "server_error", None), canned.headers
            )
            return
        pieces = self._pieces(body, canned)
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if limit is not None and len(pieces) > limit:
            pieces = pieces[:limit]  # one piece stands for one token
            canned = dataclasses.replace(canned, finish_reason="length")
        exchange.start_stream("text/event-stream; charset=utf-8", {"x-request-id": "req_fake"})
        self._events(exchange, body, pieces, canned)

    def _pieces(self, body: dict[str, Any], canned: Canned) -> list[str]:
        """The answer's text pieces: scripted (none before scripted tool calls), else the
        answer cut into ``chunk_size`` pieces or the pieces it chose."""
        if canned.pieces is not None or canned.tool_calls is not None:
            return list(canned.pieces or [])
        messages = body["messages"]
        text = chat_answer(messages, body, lambda: self.answer(messages))  # type: ignore[arg-type]
        if not isinstance(text, str):
            return list(text)  # the answer chose its own pieces
        size = self.chunk_size
        return [text[i : i + size] for i in range(0, len(text), size)]

    def _get(self, exchange: Exchange) -> None:
        if exchange.path.rstrip("/").endswith("/models"):
            entry = {"id": "fake-model", "object": "model", **self.model_fields}
            exchange.json(200, {"object": "list", "data": [entry]})
        elif exchange.path == "/props" and self.props is not None:
            exchange.json(200, self.props)
        else:
            exchange.json(404, _error("not found", "invalid_request_error", None))

    def _events(
        self, exchange: Exchange, body: dict[str, Any], pieces: list[str], canned: Canned
    ) -> None:
        """The events of one answer (the dispatcher ends the chunked body after them)."""
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        usage_key = {"usage": None} if include_usage else {}
        head = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1694268190,
            "model": body["model"],
        }

        def chunk(delta: dict[str, Any], finish: str | None, **extra: Any) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return {**head, "choices": [choice], **usage_key, **extra}

        exchange.event(chunk({"role": "assistant", "content": ""}, None))
        for n, piece in enumerate(pieces):
            if canned.error_after is not None and n == canned.error_after:
                message = "The server had an error while processing your request. Sorry about that!"
                exchange.event(
                    {
                        "error": {
                            "message": message,
                            "type": "server_error",
                            "param": None,
                            "code": None,
                        }
                    }
                )
                return
            if canned.reset_after is not None and n == canned.reset_after:
                exchange.reset()
                return
            if canned.malformed_after is not None and n == canned.malformed_after:
                exchange.event("{not json")
                return
            if canned.delay:
                time.sleep(canned.delay)
            elif self.delay and n:
                time.sleep(self.delay)
            exchange.event(chunk({"content": piece}, None, obfuscation="pad"))
        calls = openai_tool_deltas(
            canned.tool_calls or [], self.chunk_size, f"call_{tool_steps(body)}_"
        )
        for delta in calls:
            exchange.event(chunk(delta, None))
        finish = canned.finish or ("tool_calls" if calls else canned.finish_reason)
        exchange.event(chunk({}, finish))
        if include_usage and self.send_usage:
            tokens = chat_prompt_tokens(body)
            cached, written = self.prompt_cache.serve(
                self.api_key, body["model"], tokens, body.get("prompt_cache_key")
            )
            reasoning = int(canned.options.get("reasoning_tokens", 0))
            completion = len(pieces) + len(calls) + reasoning
            usage = chat_usage(len(tokens), completion, cached, written, reasoning)
            exchange.event({**head, "choices": [], "usage": usage})
        exchange.event("[DONE]")


def _error(message: str, kind: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _validate(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "you must provide a model parameter"
    problem = (
        chat_messages_error(body.get("messages"), ROLES)
        or chat_tools_error(body)
        or chat_effort_error(body)
    )
    if problem:
        return problem
    if body.get("stream") is not True:
        return "this fake only serves stream=true"
    key = body.get("prompt_cache_key")
    if key is not None and not isinstance(key, str):
        return "Invalid type for 'prompt_cache_key': expected a string"
    retention = body.get("prompt_cache_retention")
    if retention is not None and retention not in ("in_memory", "24h"):
        return (
            f"Invalid value: '{retention}'. Supported values are: 'in_memory' and '24h'. "
            "(prompt_cache_retention)"
        )
    if (
        "max_tokens" in body
        and "max_completion_tokens" in body
        and body["max_tokens"] != body["max_completion_tokens"]
    ):
        return "max_tokens and max_completion_tokens disagree"
    return None
