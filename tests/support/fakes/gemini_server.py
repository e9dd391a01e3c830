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
carrying one), ``finish_only`` (the finish reason in a last chunk without content),
``usage`` (fields added to the last chunk's ``usageMetadata``, such as an implicit cache
hit's ``cachedContentTokenCount`` or a thinking model's ``thoughtsTokenCount``, which is
added to ``totalTokenCount`` as Gemini counts it).

Tools: ``Canned(tool_calls=[(name, arguments JSON), …], pieces=[…])`` streams the text
pieces, then one ``functionCall`` part per call (``args`` an object, no id), each in a
chunk of its own or, with ``options={"calls_together": True}``, all in one chunk; the
first call carries a ``thoughtSignature`` (``signature_for(request number)``), as Gemini 3
sends it; the finish reason is ``STOP``. It checks ``functionDeclarations`` (a name, a
schema as ``parameters`` or ``parametersJsonSchema``), that ``functionCall`` parts are the
model's and ``functionResponse`` parts the user's, one response per call, and with
``require_signatures=True`` that the current turn's calls carry back the signatures it
gave (Gemini 3 answers 400 otherwise). Unscripted, a last user turn of function
responses alone is answered ``"tool said: …"`` (each response's ``result`` or ``error``
joined by "; "), and a ``responseJsonSchema`` answer is a JSON object matching it.

Thinking (``thinkingConfig``): checked, and with ``includeThoughts`` thought parts
streamed first, as ``fakes.thinking`` describes.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from tests.support.fakes.base import (
    Canned,
    Exchange,
    FakeServer,
    count_tokens,
    example,
    tool_said,
)
from tests.support.fakes.thinking import gemini_thinking_error, gemini_thought_parts

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
    "responseJsonSchema",
    "responseSchema",
    "thinkingConfig",
}
# Struct fields: Google's JSON mapping leaves the keys inside them as they are written.
OPAQUE = {"parametersJsonSchema", "responseJsonSchema", "args", "response"}
FUNCTION_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.:-]{0,127}$")
MISSING_SIGNATURE = (
    "Function call is missing a thought_signature in functionCall parts. This is required "
    "for tools to work correctly, and missing thought_signature may lead to degraded model "
    "performance. Additional data, function call `default_api:{name}`, position {position}."
)
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
    """Google's JSON mapping accepts snake_case too; the fake works in camelCase (but
    leaves what is inside a schema, arguments or a response as it is)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            name = _SNAKE.sub(lambda m: m.group(1).upper(), key)
            out[name] = item if name in OPAQUE else camel(item)
        return out
    if isinstance(value, list):
        return [camel(v) for v in value]
    return value


def signature_for(request: int) -> str:
    """The thought signature the fake gives the first call of its n-th answer."""
    return base64.b64encode(f"fake-signature-{request}".encode()).decode()


def response_text(part: dict[str, Any]) -> str:
    """What a ``functionResponse`` part says: its ``result``, else its ``error``."""
    response = part["functionResponse"].get("response") or {}
    value = response.get("result", response.get("error", response))
    return value if isinstance(value, str) else json.dumps(value)


def only_responses(content: dict[str, Any]) -> bool:
    parts = content.get("parts") or []
    return bool(parts) and all("functionResponse" in p for p in parts)


class FakeGemini(FakeServer):
    def __init__(
        self,
        *,
        api_key: str = "AIza" + "FakeTestKey0000000000000000000",
        models: set[str] | None = None,
        input_limit: int = 1_048_576,
        crlf: bool = True,
        require_signatures: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(api_key=api_key, crlf=crlf, **kwargs)
        self.models = models  # None: any model name is served
        self.input_limit = input_limit
        self.require_signatures = require_signatures  # as Gemini 3 does

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
        problem = validate(body, count_only=method == "countTokens") or gemini_thinking_error(
            model, body.get("generationConfig") or {}
        )
        if not problem and self.require_signatures:
            problem = signature_error(body)
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
        pieces, calls = self._answer(body, canned)
        chunks = self._chunks(body, model, pieces, canned, tokens, calls)
        if method == "generateContent":
            ex.json(200, chunks[-1] if chunks else {})
        elif (ex.seen.query.get("alt") or [""])[0] == "sse":
            self._sse(ex, chunks, canned)
        else:
            ex.start_stream("application/json; charset=UTF-8")
            ex.raw("[" + ",\r\n".join(json.dumps(c) for c in chunks) + "]")

    def _answer(
        self, body: dict[str, Any], canned: Canned
    ) -> tuple[list[str], list[tuple[str, str]]]:
        """The text pieces and the calls (name, arguments) to stream."""
        if canned.tool_calls is not None:
            return list(canned.pieces or []), list(canned.tool_calls)
        users = [  # a turn of function responses alone is no user turn
            " ".join(p["text"] for p in c["parts"] if "text" in p)
            for c in body["contents"]
            if c.get("role", "user") == "user" and not only_responses(c)
        ]
        last = body["contents"][-1]
        if only_responses(last):
            text = tool_said([response_text(p) for p in last["parts"]])
        else:
            text = self.answer(users)
        schema = (body.get("generationConfig") or {}).get("responseJsonSchema")
        if schema is not None:
            text = json.dumps(example(schema, text, len(users)))
        return self.pieces(text, canned), []

    def _call_parts(self, calls: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """A ``functionCall`` part per call; the first with a thought signature."""
        parts: list[dict[str, Any]] = []
        for name, arguments in calls:
            part: dict[str, Any] = {"functionCall": {"name": name, "args": json.loads(arguments)}}
            if not parts:
                part["thoughtSignature"] = signature_for(len(self.requests))
            parts.append(part)
        return parts

    def _chunks(
        self,
        body: dict[str, Any],
        model: str,
        pieces: list[str],
        canned: Canned,
        tokens: int,
        calls: list[tuple[str, str]] | None = None,
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
        thoughts = gemini_thought_parts(body, self.chunk_size * 4)  # with includeThoughts
        for part in thoughts:
            content = {"parts": [part], "role": "model"}
            chunks.append(
                {
                    "candidates": [{"content": content, "index": 0}],
                    "usageMetadata": intermediate_usage,
                    **meta,
                }
            )
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
        call_parts = self._call_parts(calls or []) if finish == "STOP" else []
        together = canned.options.get("calls_together") and call_parts
        for group in [call_parts] if together else [[p] for p in call_parts]:
            chunks.append(
                {
                    "candidates": [{"content": {"parts": group, "role": "model"}, "index": 0}],
                    "usageMetadata": intermediate_usage,
                    **meta,
                }
            )
        output = len(pieces) + len(call_parts)
        final_usage = {
            "promptTokenCount": tokens,
            "candidatesTokenCount": output,
            "totalTokenCount": tokens + output,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}],
            "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": output}],
        }
        extra = dict(canned.options.get("usage") or {})
        final_usage.update(extra)
        final_usage["totalTokenCount"] += int(extra.get("thoughtsTokenCount") or 0)
        if thoughts:  # thinking tokens are not candidates' tokens, but count in the total
            final_usage["thoughtsTokenCount"] = len(thoughts)
            final_usage["totalTokenCount"] += len(thoughts)
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
    calls = 0  # the function calls of the model turn just before
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
        problem = parts_error(parts, role, i)
        if problem:
            return problem
        responses = sum(1 for p in parts if "functionResponse" in p)
        if responses != calls:
            return (
                "Please ensure that the number of function response parts is equal to the "
                "number of function call parts of the function call turn."
            )
        calls = sum(1 for p in parts if "functionCall" in p)
        previous = role
    if previous != "user":
        return "Please ensure that multiturn requests ends with a user role or a function response."
    system = body.get("systemInstruction")
    if system is not None and not (
        isinstance(system, dict) and isinstance(system.get("parts"), list)
    ):
        return "Invalid value at 'system_instruction': expected a Content with parts"
    problem = tools_error(body.get("tools"))
    if problem:
        return problem
    config = body.get("generationConfig") or {}
    if "responseJsonSchema" in config and "responseSchema" in config:
        return "response_schema and response_json_schema cannot both be set"
    schema_set = "responseJsonSchema" in config or "responseSchema" in config
    if schema_set and config.get("responseMimeType") != "application/json":
        return (
            "* GenerateContentRequest.generation_config.response_mime_type: a response schema "
            "needs response_mime_type application/json"
        )
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


def parts_error(parts: list[Any], role: str, i: int) -> str | None:
    """Each part one kind of data; calls are the model's, responses the user's."""
    for j, part in enumerate(parts):
        if not isinstance(part, dict):
            return f"Invalid value at 'contents[{i}].parts[{j}]'"
        if "functionCall" in part:
            call = part["functionCall"]
            if role != "model":
                return f"contents[{i}].parts[{j}]: a function call must be in a model turn"
            if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                return f"* GenerateContentRequest.contents[{i}].parts[{j}].function_call.name: name is not specified"
            if not isinstance(call.get("args", {}), dict):
                return f"Invalid value at 'contents[{i}].parts[{j}].function_call.args' (type.googleapis.com/google.protobuf.Struct)"
        if "functionResponse" in part:
            response = part["functionResponse"]
            if role != "user":
                return f"contents[{i}].parts[{j}]: a function response must be in a user turn"
            if (
                not isinstance(response, dict)
                or not isinstance(response.get("name"), str)
                or not response["name"]
            ):
                return f"* GenerateContentRequest.contents[{i}].parts[{j}].function_response.name: name is not specified"
            if not isinstance(response.get("response"), dict):
                return f"Invalid value at 'contents[{i}].parts[{j}].function_response.response' (type.googleapis.com/google.protobuf.Struct)"
    return None


def tools_error(tools: Any) -> str | None:
    """``functionDeclarations``: a valid name each, and a schema as ``parameters`` or
    ``parametersJsonSchema``, never both."""
    if tools is None:
        return None
    if not isinstance(tools, list):
        return "Invalid value at 'tools'"
    for i, tool in enumerate(tools):
        for j, declaration in enumerate((tool or {}).get("functionDeclarations") or []):
            where = f"GenerateContentRequest.tools[{i}].function_declarations[{j}]"
            if not FUNCTION_NAME.match(str(declaration.get("name") or "")):
                return f"* {where}.name: Invalid function name. Must start with a letter or an underscore."
            if "parameters" in declaration and "parametersJsonSchema" in declaration:
                return f"* {where}: parameters and parameters_json_schema cannot both be set"
            schema = declaration.get("parametersJsonSchema", declaration.get("parameters"))
            if schema is not None and not isinstance(schema, dict):
                return f"Invalid value at '{where}.parameters_json_schema'"
    return None


def signature_error(body: dict[str, Any]) -> str | None:
    """Gemini 3's rule: in the current turn (since the last user text), the first function
    call of each model turn carries back the thought signature it came with."""
    contents = body["contents"]
    start = max(
        (
            i
            for i, c in enumerate(contents)
            if c.get("role", "user") == "user" and not only_responses(c)
        ),
        default=0,
    )
    for content in contents[start:]:
        parts = content["parts"]
        position = next((j for j, p in enumerate(parts) if "functionCall" in p), None)
        if position is None:
            continue
        first = parts[position]
        if not first.get("thoughtSignature"):
            name = first["functionCall"]["name"]
            return MISSING_SIGNATURE.format(name=name, position=position + 1)
    return None
