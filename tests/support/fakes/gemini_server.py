"""A loopback Gemini Developer API, written from the wire-format reference (§4, §7, §9).

``POST /{v1|v1beta}/models/{model}:streamGenerateContent?alt=sse`` (without ``alt=sse``
it streams a JSON array, as the real one does), ``:generateContent`` and ``:countTokens``.
It requires ``x-goog-api-key`` (or ``?key=``), accepts camelCase and snake_case field
names, and checks roles (``user``/``model``, alternating, ending with user) and
``generationConfig``. Events are ``data:``-only, framed with CRLF by default, with
``usageMetadata`` on every chunk and complete on the last.

Scenarios (``Canned``): any status and body (e.g. 429 with ``RetryInfo``), ``error_after``
(a bare JSON error object mid-stream, as the real service sends), ``reset_after``,
``malformed_after``, ``finish`` (``MAX_TOKENS``, ``SAFETY`` …), and ``options``:
``block`` (a ``promptFeedback.blockReason``), ``thought_signature`` (an empty-text part
carrying one), ``finish_only`` (the finish reason in a last chunk without content).
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.support.fakes.base import Canned, Exchange, FakeServer, count_tokens

_PATH = re.compile(
    r"^/(v1|v1beta)/models/([^:/]+):(streamGenerateContent|generateContent|countTokens)$"
)
_SNAKE = re.compile(r"_([a-z])")
CONFIG_FIELDS = {
    "temperature",
    "topP",
    "topK",
    "maxOutputTokens",
    "stopSequences",
    "candidateCount",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseMimeType",
    "thinkingConfig",
}
TOP_FIELDS = {
    "contents",
    "systemInstruction",
    "generationConfig",
    "safetySettings",
    "tools",
    "toolConfig",
    "cachedContent",
    "model",
}


def status_error(
    code: int, status: str, message: str, details: list[Any] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return {"error": error}


def bad_key() -> dict[str, Any]:
    return status_error(
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        ],
    )


def rate_limited(
    delay: str, quota_id: str = "GenerateRequestsPerMinutePerProjectPerModel"
) -> dict[str, Any]:
    return status_error(
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details.",
        [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                        "quotaId": quota_id,
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay},
        ],
    )


def camel(value: Any) -> Any:
    """Google's JSON mapping accepts snake_case too; the fake works in camelCase."""
    if isinstance(value, dict):
        return {_SNAKE.sub(lambda m: m.group(1).upper(), k): camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel(v) for v in value]
    return value


class FakeGemini(FakeServer):
    def __init__(
        self,
        *,
        api_key: str = "AIza" + "FakeTestKey0000000000000000000",
        models: set[str] | None = None,
        input_limit: int = 1_048_576,
        crlf: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(api_key=api_key, crlf=crlf, **kwargs)
        self.models = models  # None: any model name is served
        self.input_limit = input_limit

    def handle(self, ex: Exchange) -> None:
        match = _PATH.match(ex.path)
        if ex.seen.method != "POST" or match is None:
            ex.json(
                404, status_error(404, "NOT_FOUND", f"Requested entity was not found: {ex.path}")
            )
            return
        version, model, method = match.groups()
        key = ex.header("x-goog-api-key") or (ex.seen.query.get("key") or [""])[0]
        if not key:
            ex.json(
                403,
                status_error(
                    403,
                    "PERMISSION_DENIED",
                    "Method doesn't allow unregistered callers (callers without established "
                    "identity). Please use API Key or other form of API consumer identity to call "
                    "this API.",
                ),
            )
            return
        if key != self.api_key:
            ex.json(400, bad_key())
            return
        if not isinstance(ex.seen.body, dict):
            ex.json(400, status_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received."))
            return
        body = camel(ex.seen.body)
        if method == "countTokens" and "generateContentRequest" in body:
            body = body["generateContentRequest"]
        problem = validate(body, count_only=method == "countTokens")
        if problem:
            ex.json(400, status_error(400, "INVALID_ARGUMENT", problem))
            return
        if self.models is not None and model not in self.models:
            ex.json(
                404,
                status_error(
                    404,
                    "NOT_FOUND",
                    f"models/{model} is not found for API version {version}, or is not supported "
                    "for generateContent. Call ListModels to see the list of available models and "
                    "their supported methods.",
                ),
            )
            return
        tokens = prompt_tokens(body)
        if tokens > self.input_limit:
            ex.json(
                400,
                status_error(
                    400,
                    "INVALID_ARGUMENT",
                    f"The input token count ({tokens}) exceeds the maximum number of tokens "
                    f"allowed ({self.input_limit}).",
                ),
            )
            return
        if method == "countTokens":
            ex.json(
                200,
                {
                    "totalTokens": tokens,
                    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}],
                },
            )
            return
        self.requests.append(body)
        canned = self.next_canned()
        if canned.status != 200:
            ex.json(
                canned.status,
                canned.body or status_error(500, "INTERNAL", "Internal error"),
                canned.headers,
            )
            return
        users = [
            " ".join(p["text"] for p in c["parts"] if "text" in p)
            for c in body["contents"]
            if c.get("role", "user") == "user"
        ]
        pieces = self.pieces(self.answer(users), canned)
        chunks = self._chunks(body, model, pieces, canned, tokens)
        if method == "generateContent":
            ex.json(200, chunks[-1] if chunks else {})
        elif (ex.seen.query.get("alt") or [""])[0] == "sse":
            self._sse(ex, chunks, canned)
        else:
            ex.start_stream("application/json; charset=UTF-8")
            ex.raw("[" + ",\r\n".join(json.dumps(c) for c in chunks) + "]")

    def _chunks(
        self, body: dict[str, Any], model: str, pieces: list[str], canned: Canned, tokens: int
    ) -> list[Any]:
        meta = {"modelVersion": model, "responseId": "fakeResponse01"}
        intermediate_usage = {
            "promptTokenCount": tokens,
            "totalTokenCount": tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}],
        }
        if canned.options.get("block"):
            return [
                {
                    "promptFeedback": {"blockReason": canned.options["block"], "safetyRatings": []},
                    "usageMetadata": intermediate_usage,
                    **meta,
                }
            ]
        limit = (body.get("generationConfig") or {}).get("maxOutputTokens")
        finish = canned.finish or "STOP"
        if limit is not None and len(pieces) > limit:
            pieces, finish = pieces[:limit], "MAX_TOKENS"
        chunks: list[Any] = []
        if canned.options.get("thought_signature"):
            chunks.append(
                {
                    "candidates": [
                        {
                            "content": {
                                "parts": [{"text": "", "thoughtSignature": "c2lnbmF0dXJl"}],
                                "role": "model",
                            },
                            "index": 0,
                        }
                    ],
                    "usageMetadata": intermediate_usage,
                    **meta,
                }
            )
        for piece in pieces:
            chunks.append(
                {
                    "candidates": [
                        {"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}
                    ],
                    "usageMetadata": intermediate_usage,
                    **meta,
                }
            )
        final_usage = {
            "promptTokenCount": tokens,
            "candidatesTokenCount": len(pieces),
            "totalTokenCount": tokens + len(pieces),
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}],
            "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": len(pieces)}],
        }
        if canned.options.get("finish_only") or not chunks:
            chunks.append(
                {
                    "candidates": [{"finishReason": finish, "index": 0}],
                    "usageMetadata": final_usage,
                    **meta,
                }
            )
        else:
            chunks[-1] = {**chunks[-1], "usageMetadata": final_usage}
            chunks[-1]["candidates"][0]["finishReason"] = finish
        return chunks

    def _sse(self, ex: Exchange, chunks: list[Any], canned: Canned) -> None:
        ex.start_stream("text/event-stream")
        for n, chunk in enumerate(chunks):
            if canned.error_after == n:
                # A failure after the stream began: bare JSON lines, then the end.
                ex.raw(
                    '{\r\n  "error": {\r\n    "code": 503,\r\n    "message": "The model is '
                    'overloaded. Please try again later.",\r\n    "status": "UNAVAILABLE"\r\n'
                    "  }\r\n}\r\n"
                )
                return
            if canned.reset_after == n:
                ex.reset()
                return
            if canned.malformed_after == n:
                ex.event("{not json")
                return
            ex.event(chunk)


def prompt_tokens(body: dict[str, Any]) -> int:
    texts = [p.get("text", "") for c in body.get("contents", []) for p in c.get("parts", [])]
    system = body.get("systemInstruction") or {}
    texts += [p.get("text", "") for p in system.get("parts", [])]
    return sum(count_tokens(t) for t in texts)


def validate(body: dict[str, Any], *, count_only: bool = False) -> str | None:
    unknown = set(body) - TOP_FIELDS
    if unknown and not count_only:
        name = sorted(unknown)[0]
        return f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.'
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    previous = None
    for i, content in enumerate(contents):
        role = content.get("role", "user") if isinstance(content, dict) else None
        if role not in ("user", "model"):
            return f"Please use a valid role: user, model. (contents[{i}])"
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            return (
                f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."
            )
        if role == previous:
            return "Please ensure that multiturn requests alternate between user and model."
        previous = role
    if previous != "user":
        return "Please ensure that multiturn requests ends with a user role or a function response."
    system = body.get("systemInstruction")
    if system is not None and not (
        isinstance(system, dict) and isinstance(system.get("parts"), list)
    ):
        return "Invalid value at 'system_instruction': expected a Content with parts"
    config = body.get("generationConfig") or {}
    for name in config:
        if name not in CONFIG_FIELDS:
            return (
                f'Invalid JSON payload received. Unknown name "{name}" at '
                "'generation_config': Cannot find field."
            )
    temperature = config.get("temperature")
    if temperature is not None and not 0 <= temperature <= 2:
        return "* GenerateContentRequest.generation_config.temperature: must be in [0.0, 2.0]"
    limit = config.get("maxOutputTokens")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        return "* GenerateContentRequest.generation_config.max_output_tokens: must be positive"
    return None
