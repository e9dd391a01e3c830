"""A loopback Azure OpenAI resource, written from the wire-format reference (§1, §2, §7).

Both URL styles: ``/openai/deployments/{deployment}/chat/completions?api-version=V``
(without ``api-version``: 404 "Resource not found") and ``/openai/v1/chat/completions``
with the deployment as ``model``. It takes an ``api-key`` header or an Entra bearer token
(on v1, the key as a bearer too), and streams like Azure: a first chunk with empty ``choices`` and only
``prompt_filter_results``, content chunks with ``content_filter_results``, a chunk with no
``delta`` (asynchronous filtering), the finish chunk, the usage chunk, ``[DONE]``.
Errors carry a string ``code``. Prompt caching is OpenAI's automatic caching
(``base.AutomaticPromptCache``, by ``clock``): the usage chunk reports ``cached_tokens``.

Scenarios (``Canned``): any status/body/headers, ``error_after``, ``reset_after``,
``malformed_after``, ``finish`` (e.g. ``content_filter``, ``length``), ``tool_calls``
(as the OpenAI fake streams them, each chunk with its filter results; finish
``tool_calls``). Unscripted, tool results are answered ``"tool said: …"`` and a
``json_schema`` answer is a JSON object matching it, as the OpenAI fake does.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from tests.support.fakes.base import (
    AutomaticPromptCache,
    Canned,
    Exchange,
    FakeServer,
    chat_answer,
    chat_content_text,
    chat_messages_error,
    chat_prompt_tokens,
    chat_tools_error,
    chat_usage,
    count_tokens,
    openai_tool_deltas,
    tool_steps,
)

ROLES = {"system", "developer", "user", "assistant", "tool"}
_CLASSIC = re.compile(r"^/openai/deployments/([^/]+)/chat/completions$")
SAFE = {
    "hate": {"filtered": False, "severity": "safe"},
    "self_harm": {"filtered": False, "severity": "safe"},
    "sexual": {"filtered": False, "severity": "safe"},
    "violence": {"filtered": False, "severity": "safe"},
}


def azure_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


NOT_FOUND = azure_error("404", "Resource not found")
DENIED = azure_error(
    "401",
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide "
    "a valid key for an active subscription and use a correct regional API endpoint for your "
    "resource.",
)


class FakeAzure(FakeServer):
    def __init__(
        self,
        *,
        api_key: str = "azure-test-key-0000000000000000",
        ad_token: str | None = None,
        deployments: set[str] | None = None,
        context_window: int = 128_000,
        clock: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        super().__init__(api_key=api_key, **kwargs)
        self.prompt_cache = AutomaticPromptCache(clock)
        self.ad_token = ad_token
        self.deployments = deployments if deployments is not None else {"gpt-4o-prod"}
        self.context_window = context_window

    @property
    def endpoint(self) -> str:
        return self.root_url

    def handle(self, ex: Exchange) -> None:
        match = _CLASSIC.match(ex.path)
        if ex.seen.method != "POST":
            ex.json(404, NOT_FOUND)
            return
        if match is not None:
            if not ex.seen.query.get("api-version"):
                ex.json(404, NOT_FOUND)
                return
            deployment = match.group(1)
        elif ex.path == "/openai/v1/chat/completions":
            deployment = (
                (ex.seen.body or {}).get("model") if isinstance(ex.seen.body, dict) else None
            )
        else:
            ex.json(404, NOT_FOUND)
            return
        key, bearer = ex.header("api-key"), ex.header("authorization").removeprefix("Bearer ")
        # An Entra token as a bearer; on the v1 API the resource key is accepted that way too.
        tokens = {self.ad_token} | ({self.api_key} if match is None else set())
        if not ((key and key == self.api_key) or (bearer and bearer in tokens)):
            ex.json(401, DENIED)
            return
        body = ex.seen.body
        problem = validate(body, v1=match is None)
        if problem:
            ex.json(
                400,
                {
                    "error": {
                        "code": "BadRequest",
                        "message": problem,
                        "param": None,
                        "type": "invalid_request_error",
                    }
                },
            )
            return
        if deployment not in self.deployments:
            ex.json(
                404,
                azure_error(
                    "DeploymentNotFound",
                    "The API deployment for this resource does not exist. If you created the "
                    "deployment within the last 5 minutes, please wait a moment and try again.",
                ),
            )
            return
        tokens = sum(
            count_tokens(chat_content_text(m.get("content") or "")) + 3 for m in body["messages"]
        )
        if tokens > self.context_window:
            ex.json(
                400,
                {
                    "error": {
                        "message": f"This model's maximum context length is {self.context_window} tokens. "
                        f"However, your messages resulted in {tokens} tokens.",
                        "type": "invalid_request_error",
                        "param": "messages",
                        "code": "context_length_exceeded",
                    }
                },
            )
            return
        self.requests.append(body)
        canned = self.next_canned()
        if canned.status != 200:
            ex.json(
                canned.status,
                canned.body or azure_error("500", "Internal server error"),
                canned.headers,
            )
            return
        users = [chat_content_text(m["content"]) for m in body["messages"] if m["role"] == "user"]
        if canned.tool_calls is not None and canned.pieces is None:
            pieces: list[str] = []  # calls alone
        else:
            text = chat_answer(body["messages"], body, lambda: self.answer(users))
            pieces = self.pieces(text, canned)
        self._stream(ex, body, deployment, pieces, canned, tokens)

    def _stream(
        self,
        ex: Exchange,
        body: dict[str, Any],
        deployment: str,
        pieces: list[str],
        canned: Canned,
        tokens: int,
    ) -> None:
        ex.start_stream("text/event-stream; charset=utf-8", {"apim-request-id": "fake"})
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {
            "id": "chatcmpl-azure",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "gpt-4o-2024-11-20",
            "system_fingerprint": "fp_fake",
        }
        usage_key = {"usage": None} if include_usage else {}
        ex.event(
            {
                "choices": [],
                "created": 0,
                "id": "",
                "model": "",
                "object": "",
                "prompt_filter_results": [
                    {
                        "prompt_index": 0,
                        "content_filter_results": {
                            **SAFE,
                            "jailbreak": {"filtered": False, "detected": False},
                        },
                    }
                ],
            }
        )
        ex.event(
            {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": ""},
                        "finish_reason": None,
                        "logprobs": None,
                        "content_filter_results": {},
                    }
                ],
                **usage_key,
            }
        )
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        finish = canned.finish or "stop"
        sent = 0
        for n, piece in enumerate(pieces):
            if canned.error_after == n:
                ex.event(
                    {
                        "error": {
                            "code": "500",
                            "message": "The server had an error while processing your request.",
                        }
                    }
                )
                return
            if canned.reset_after == n:
                ex.reset()
                return
            if canned.malformed_after == n:
                ex.event("{not json")
                return
            if limit is not None and sent >= limit:
                finish = "length"
                break
            ex.event(
                {
                    **base,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"content": piece},
                            "finish_reason": None,
                            "logprobs": None,
                            "content_filter_results": SAFE,
                        }
                    ],
                    **usage_key,
                }
            )
            sent += 1
            if n == 1:  # asynchronous filtering: a chunk with results and offsets, no delta
                ex.event(
                    {
                        **base,
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": None,
                                "content_filter_results": SAFE,
                                "content_filter_offsets": {
                                    "check_offset": 0,
                                    "start_offset": 0,
                                    "end_offset": 8,
                                },
                            }
                        ],
                        **usage_key,
                    }
                )
        calls = openai_tool_deltas(
            canned.tool_calls or [], self.chunk_size, f"call_{tool_steps(body)}_"
        )
        for delta in calls:
            ex.event(
                {
                    **base,
                    "choices": [
                        {
                            "index": 0,
                            "delta": delta,
                            "finish_reason": None,
                            "logprobs": None,
                            "content_filter_results": {},
                        }
                    ],
                    **usage_key,
                }
            )
        if calls and finish == "stop" and canned.finish is None:
            finish = "tool_calls"
        ex.event(
            {
                **base,
                "choices": [{"index": 0, "delta": {}, "finish_reason": finish, "logprobs": None}],
                **usage_key,
            }
        )
        if include_usage:
            prompt = chat_prompt_tokens(body, framing=4)  # as ``tokens`` counts them
            key = ex.header("api-key") or ex.header("authorization")
            cached, written = self.prompt_cache.serve(
                key, base["model"], prompt, body.get("prompt_cache_key")
            )
            usage = chat_usage(tokens, sent + len(calls), cached, written)
            ex.event({**base, "choices": [], "usage": usage})
        ex.event("[DONE]")


def validate(body: Any, *, v1: bool) -> str | None:
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    if v1 and (not isinstance(body.get("model"), str) or not body["model"]):
        return "you must provide a model parameter"
    problem = chat_messages_error(body.get("messages"), ROLES) or chat_tools_error(body)
    if problem:
        return problem
    if body.get("stream") is not True:
        return "this fake only serves stream=true"
    if "max_tokens" in body and "max_completion_tokens" in body:
        return "max_tokens and max_completion_tokens cannot both be set"
    return None
