"""A loopback OpenAI Responses API (``POST /v1/responses``), written from the wire-format
reference (§1.8) and the openai SDK's types and stream accumulator, so that the SDK's
``responses.stream(...)`` and ``get_final_response()`` read it.

It streams what the real API streams, each event with an ``event:`` line, its ``type`` and
a ``sequence_number``: ``response.created``, ``response.in_progress``; for a model that
reasons, a ``reasoning`` output item whose summary (when ``reasoning.summary`` is asked)
streams as ``response.reasoning_summary_part.added`` / ``…_text.delta`` / ``…_text.done``
/ ``…_part.done`` in two parts, done with its ``encrypted_content`` when ``include`` asks
for ``reasoning.encrypted_content``; a ``message`` item (``content_part.added``,
``output_text.delta`` pieces, ``output_text.done``, ``content_part.done``); one
``function_call`` item per scripted call (``function_call_arguments.delta`` fragments,
``…done``); then ``response.completed`` with the whole response and its usage
(``input_tokens_details.cached_tokens``, ``output_tokens_details.reasoning_tokens``), or
``response.incomplete`` (``max_output_tokens``: one piece stands for one token).

It checks what the API checks: a bearer key; ``model``; ``input`` as a string or items
(messages of the four roles with string or ``input_text``/``input_image``/``input_file``
content, ``function_call`` and ``function_call_output`` items that pair up, reasoning
items with a ``summary`` list); under ``store: false`` a reasoning item sent by id alone is
not found, and its ``encrypted_content`` must come back unmodified (the fake signs what
it issues); ``reasoning`` and ``include: ["reasoning.encrypted_content"]`` only for a
model that reasons (GPT-5 and later, o-series), and no ``temperature`` for one; function
tools with an object schema; ``text.format`` of a known type.

The default answer is ``"echo #<n>: <last user text>"`` (n: the user messages), after
function results ``"tool said: …"``, a JSON example for a ``json_schema`` format. The
reasoning summary says what the model was asked and how many reasoning items came back,
``self.carried`` records, per request, the ids of the reasoning items it received (read
from their encrypted content): a test sees which turns' reasoning a request carried.

Scenarios (``Canned``): a status with a body; ``error_after`` (an ``error`` event after N
pieces), ``reset_after``, ``malformed_after``; ``finish="failed"`` (``response.failed``)
or ``"content_filter"`` (``response.incomplete``); ``tool_calls`` (after ``pieces`` of
text, if any); ``options={"summary": [...]}`` (the summary's parts).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

from tests.support.fakes.base import (
    Canned,
    Exchange,
    FakeServer,
    count_tokens,
    example,
    fragments,
    tool_said,
)

REASONING_MODEL = re.compile(r"^(gpt-5|gpt-6|o\d)")
ROLES = {"user", "assistant", "system", "developer"}
EFFORTS = {"none", "minimal", "low", "medium", "high", "xhigh", "max"}
ENCRYPTED = "reasoning.encrypted_content"
_SECRET = b"fake-responses-secret"


def error_body(message: str, kind: str = "invalid_request_error", param: Any = None) -> Any:
    return {"error": {"message": message, "type": kind, "param": param, "code": None}}


def seal(payload: dict[str, Any]) -> str:
    """Encrypted content as the fake issues it: the payload, and a tag over it."""
    data = base64.b64encode(json.dumps(payload, sort_keys=True).encode()).decode()
    tag = hashlib.sha256(_SECRET + data.encode()).hexdigest()[:24]
    return f"{data}.{tag}"


def unseal(text: Any) -> dict[str, Any] | None:
    """The payload of encrypted content the fake issued, or None if it was altered."""
    if not isinstance(text, str) or "." not in text:
        return None
    data, tag = text.rsplit(".", 1)
    if hashlib.sha256(_SECRET + data.encode()).hexdigest()[:24] != tag:
        return None
    try:
        value = json.loads(base64.b64decode(data))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(
        str(p.get("text") or "")
        for p in content or []
        if isinstance(p, dict) and p.get("type") in ("input_text", "output_text")
    )


class FakeResponses(FakeServer):
    path_prefix = "/v1"

    def __init__(
        self,
        *,
        api_key: str = "sk-test-fake-key-000000000000",
        models: set[str] | None = None,
        context_window: int = 1_047_576,
        **kwargs: Any,
    ) -> None:
        super().__init__(api_key=api_key, **kwargs)
        self.models = models  # None: any model name is served
        self.context_window = context_window
        self.carried: list[list[str]] = []  # per request: the reasoning item ids it sent back

    def __enter__(self) -> FakeResponses:
        super().__enter__()
        return self

    def handle(self, ex: Exchange) -> None:
        if ex.seen.method != "POST" or ex.path != "/v1/responses":
            ex.json(404, error_body(f"Invalid URL (POST {ex.path})"))
            return
        if ex.header("authorization") != f"Bearer {self.api_key}":
            message = "Incorrect API key provided: sk-xxxx***xxxx."
            ex.json(401, {"error": {**error_body(message)["error"], "code": "invalid_api_key"}})
            return
        body = ex.seen.body
        problem, carried = validate(body)
        if problem:
            message, param = problem if isinstance(problem, tuple) else (problem, None)
            ex.json(400, error_body(message, "invalid_request_error", param))
            return
        if self.models is not None and body["model"] not in self.models:
            message = f"The model '{body['model']}' does not exist or you do not have access to it."
            ex.json(404, {"error": {**error_body(message)["error"], "code": "model_not_found"}})
            return
        tokens = prompt_tokens(body)
        if tokens > self.context_window:
            message = (
                f"Your input exceeds the context window of this model ({tokens} tokens > "
                f"{self.context_window}). Please adjust your input and try again."
            )
            error = {
                **error_body(message, param="input")["error"],
                "code": "context_length_exceeded",
            }
            ex.json(400, {"error": error})
            return
        self.requests.append(body)
        self.carried.append(carried)
        canned = self.next_canned()
        if canned.status != 200:
            ex.json(
                canned.status, canned.body or error_body("error", "server_error"), canned.headers
            )
            return
        ex.start_stream("text/event-stream; charset=utf-8", {"x-request-id": "req_fake"})
        _Stream(self, ex, body, canned, carried).run()


class _Stream:
    """One streamed response."""

    def __init__(
        self,
        fake: FakeResponses,
        ex: Exchange,
        body: dict[str, Any],
        canned: Canned,
        carried: list[str],
    ) -> None:
        self.fake, self.ex, self.body, self.canned, self.carried = fake, ex, body, canned, carried
        self.sequence = 0
        self.output: list[dict[str, Any]] = []
        self.pieces_sent = 0
        # Ids made from the request: the same request (the SDK's, nbconvo's) gets the same.
        self.digest = hashlib.sha256(json.dumps(body.get("input")).encode()).hexdigest()[:12]
        self.response_id = f"resp_{self.digest}"

    def send(self, payload: dict[str, Any]) -> None:
        payload = {"type": payload["type"], "sequence_number": self.sequence, **payload}
        self.sequence += 1
        self.ex.event(payload, event=payload["type"])

    def response(self, status: str, usage: Any = None, **extra: Any) -> dict[str, Any]:
        body = self.body
        reasoning = body.get("reasoning")
        return {
            "id": self.response_id,
            "object": "response",
            "created_at": 1741290958,
            "status": status,
            "model": body["model"],
            "output": list(self.output) if status != "in_progress" else [],
            "parallel_tool_calls": True,
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "previous_response_id": None,
            "reasoning": {"effort": (reasoning or {}).get("effort"), "summary": None},
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}},
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": usage,
            "error": None,
            "incomplete_details": None,
            "metadata": {},
            **extra,
        }

    def run(self) -> None:
        body, canned = self.body, self.canned
        self.send({"type": "response.created", "response": self.response("in_progress")})
        self.send({"type": "response.in_progress", "response": self.response("in_progress")})
        thought = 0
        if REASONING_MODEL.match(body["model"]):
            thought = self.reasoning()
        pieces, calls = self.answer()
        limit = body.get("max_output_tokens")
        cut = limit is not None and len(pieces) + thought > limit
        if cut:
            pieces = pieces[: max(0, int(limit) - thought)]
        if (pieces or not calls) and not self.message(pieces):
            return
        if not cut:
            for name, arguments in calls:
                self.call(name, arguments)
        output = self.pieces_sent + thought
        prompt = prompt_tokens(body)
        usage = {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": thought},
            "total_tokens": prompt + output,
        }
        if canned.finish == "failed":
            error = {"code": "server_error", "message": "The model failed to answer."}
            self.send(
                {"type": "response.failed", "response": self.response("failed", None, error=error)}
            )
            return
        if cut or canned.finish == "content_filter":
            reason = "max_output_tokens" if cut else "content_filter"
            response = self.response("incomplete", usage, incomplete_details={"reason": reason})
            self.send({"type": "response.incomplete", "response": response})
            return
        self.send({"type": "response.completed", "response": self.response("completed", usage)})

    def answer(self) -> tuple[list[str], list[tuple[str, str]]]:
        canned, body = self.canned, self.body
        if canned.tool_calls is not None:
            return list(canned.pieces or []), list(canned.tool_calls)
        items = input_items(body)
        results = []
        for item in reversed(items):
            if item.get("type") != "function_call_output":
                break
            results.insert(0, str(item.get("output")))
        users = [text_of(i.get("content")) for i in items if _role(i) == "user"]
        text = (
            tool_said(results) if results else f"echo #{len(users)}: {users[-1] if users else ''}"
        )
        fmt = (body.get("text") or {}).get("format") or {}
        if fmt.get("type") == "json_schema":
            text = json.dumps(example(fmt.get("schema"), text, len(users)))
        return self.fake.pieces(text, canned), []

    def reasoning(self) -> int:
        """A reasoning item: its summary streamed when asked for. Returns its tokens."""
        body, canned = self.body, self.canned
        index = len(self.output)
        item_id = f"rs_{self.digest}_{index}"
        effort = (body.get("reasoning") or {}).get("effort") or "medium"
        items = input_items(body)
        users = [text_of(i.get("content")) for i in items if _role(i) == "user"]
        summary_texts = canned.options.get("summary") or [
            f"**Reading the question** The user asks: {users[-1] if users else ''}",
            f"**Planning at {effort} effort** {len(self.carried)} earlier reasoning items "
            "came back.",
        ]
        wanted = (body.get("reasoning") or {}).get("summary") is not None
        added = {"id": item_id, "type": "reasoning", "summary": []}
        self.send({"type": "response.output_item.added", "output_index": index, "item": added})
        summary = []
        tokens = 8
        if wanted:
            for n, text in enumerate(summary_texts):
                where = {"item_id": item_id, "output_index": index, "summary_index": n}
                empty = {"type": "summary_text", "text": ""}
                self.send({"type": "response.reasoning_summary_part.added", **where, "part": empty})
                for piece in self.fake.pieces(text, Canned()):
                    self.send(
                        {"type": "response.reasoning_summary_text.delta", **where, "delta": piece}
                    )
                    tokens += 1
                self.send({"type": "response.reasoning_summary_text.done", **where, "text": text})
                part = {"type": "summary_text", "text": text}
                self.send({"type": "response.reasoning_summary_part.done", **where, "part": part})
                summary.append(part)
        done: dict[str, Any] = {"id": item_id, "type": "reasoning", "summary": summary}
        if ENCRYPTED in (body.get("include") or []):
            done["encrypted_content"] = seal(
                {"id": item_id, "model": body["model"], "summary": summary}
            )
        self.send({"type": "response.output_item.done", "output_index": index, "item": done})
        self.output.append(done)
        return tokens

    def message(self, pieces: list[str]) -> bool:
        """The message item; False when a scripted fault ended the stream."""
        index = len(self.output)
        item_id = f"msg_{self.digest}_{index}"
        item = {"id": item_id, "type": "message", "status": "in_progress", "role": "assistant"}
        self.send({"type": "response.output_item.added", "output_index": index,
                   "item": {**item, "content": []}})  # fmt: skip
        where = {"item_id": item_id, "output_index": index, "content_index": 0}
        empty = {"type": "output_text", "text": "", "annotations": []}
        self.send({"type": "response.content_part.added", **where, "part": empty})
        canned = self.canned
        for n, piece in enumerate(pieces):
            if canned.error_after == n:
                self.send(
                    {
                        "type": "error",
                        "code": "server_error",
                        "message": "The server had an error while processing your request.",
                        "param": None,
                    }
                )
                return False
            if canned.reset_after == n:
                self.ex.reset()
                return False
            if canned.malformed_after == n:
                self.ex.event("{not json", event="response.output_text.delta")
                return False
            self.send({"type": "response.output_text.delta", **where, "delta": piece,
                       "logprobs": []})  # fmt: skip
            self.pieces_sent += 1
        text = "".join(pieces)
        self.send({"type": "response.output_text.done", **where, "text": text, "logprobs": []})
        part = {"type": "output_text", "text": text, "annotations": []}
        self.send({"type": "response.content_part.done", **where, "part": part})
        done = {**item, "status": "completed", "content": [part]}
        self.send({"type": "response.output_item.done", "output_index": index, "item": done})
        self.output.append(done)
        return True

    def call(self, name: str, arguments: str) -> None:
        index = len(self.output)
        step = sum(1 for i in input_items(self.body) if i.get("type") == "function_call")
        call_id = f"call_{step}_{index}"  # unique in a conversation
        item_id = f"fc_{self.digest}_{index}"
        item = {"id": item_id, "type": "function_call", "call_id": call_id, "name": name}
        self.send({"type": "response.output_item.added", "output_index": index,
                   "item": {**item, "arguments": "", "status": "in_progress"}})  # fmt: skip
        where = {"item_id": item_id, "output_index": index}
        for piece in fragments(arguments, self.fake.chunk_size):
            self.send({"type": "response.function_call_arguments.delta", **where, "delta": piece})
            self.pieces_sent += 1
        self.send({"type": "response.function_call_arguments.done", **where,
                   "arguments": arguments, "name": name})  # fmt: skip
        done = {**item, "arguments": arguments, "status": "completed"}
        self.send({"type": "response.output_item.done", "output_index": index, "item": done})
        self.output.append(done)


def _role(item: dict[str, Any]) -> str | None:
    if item.get("type", "message") == "message":
        role = item.get("role")
        return role if isinstance(role, str) else None
    return None


def input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    value = body.get("input")
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return [i for i in value or [] if isinstance(i, dict)]


def prompt_tokens(body: dict[str, Any]) -> int:
    texts = [str(body.get("instructions") or "")]
    for item in input_items(body):
        kind = item.get("type", "message")
        if kind == "message":
            texts.append(text_of(item.get("content")))
        elif kind == "function_call":
            texts.append(str(item.get("arguments")))
        elif kind == "function_call_output":
            texts.append(str(item.get("output")))
    return sum(count_tokens(t) for t in texts)


def validate(body: Any) -> tuple[Any, list[str]]:
    """(the API's complaint or None, the reasoning item ids that came back)."""
    if not isinstance(body, dict):
        return "We could not parse the JSON body of your request.", []
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return ("Missing required parameter: 'model'.", "model"), []
    if body.get("stream") is not True:
        return "this fake only serves stream=true", []
    reasons = bool(REASONING_MODEL.match(model))
    reasoning = body.get("reasoning")
    if reasoning is not None:
        if not reasons:
            return (
                "Unsupported parameter: 'reasoning.effort' is not supported with this model.",
                "reasoning.effort",
            ), []
        if reasoning.get("effort") not in EFFORTS | {None}:
            return (f"Invalid value: '{reasoning.get('effort')}'.", "reasoning.effort"), []
        if reasoning.get("summary") not in ("auto", "concise", "detailed", None):
            return (f"Invalid value: '{reasoning.get('summary')}'.", "reasoning.summary"), []
    include = body.get("include") or []
    if ENCRYPTED in include and not reasons:
        return ("Encrypted content is not supported with this model.", "include"), []
    if reasons and "temperature" in body:
        return (
            "Unsupported parameter: 'temperature' is not supported with this model.",
            "temperature",
        ), []
    for name in ("seed", "messages", "max_tokens", "reasoning_effort"):
        if name in body:
            return (f"Unknown parameter: '{name}'.", name), []
    problem = tools_error(body)
    if problem:
        return problem, []
    return items_error(body, model)


def tools_error(body: dict[str, Any]) -> Any:
    for i, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            return (f"Invalid value for 'tools[{i}].type'.", f"tools[{i}].type")
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            return (f"Missing required parameter: 'tools[{i}].name'.", f"tools[{i}].name")
        if "function" in tool:
            return (f"Unknown parameter: 'tools[{i}].function'.", f"tools[{i}].function")
        parameters = tool.get("parameters")
        if not isinstance(parameters, dict) or parameters.get("type") != "object":
            return (
                f"Invalid schema for function '{tool['name']}': schema must be a JSON Schema "
                "of 'type: \"object\"'",
                f"tools[{i}].parameters",
            )
        if tool.get("strict", True) and parameters.get("additionalProperties") is not False:
            return (
                f"Invalid schema for function '{tool['name']}': In context=(), "
                "'additionalProperties' is required to be supplied and to be false.",
                f"tools[{i}].parameters",
            )
    fmt = (body.get("text") or {}).get("format")
    if fmt is not None:
        if fmt.get("type") not in ("text", "json_object", "json_schema"):
            return ("Invalid value for 'text.format.type'.", "text.format.type")
        if fmt.get("type") == "json_schema" and not (
            isinstance(fmt.get("name"), str) and isinstance(fmt.get("schema"), dict)
        ):
            return ("Missing required parameter: 'text.format.name'.", "text.format.name")
    if "response_format" in body:
        return (
            "Unsupported parameter: 'response_format'. In the Responses API, this parameter "
            "has moved to 'text.format'.",
            "response_format",
        )
    return None


def items_error(body: dict[str, Any], model: str) -> tuple[Any, list[str]]:
    value = body.get("input")
    if isinstance(value, str):
        return None, []
    if not isinstance(value, list) or not value:
        return ("Missing required parameter: 'input'.", "input"), []
    stored = body.get("store", True)
    carried: list[str] = []
    waiting: list[str] = []  # calls without an output yet
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            return (f"Invalid type for '{where}'.", where), []
        kind = item.get("type", "message")
        if kind == "message":
            if item.get("role") not in ROLES:
                return (f"Invalid value: '{item.get('role')}'.", f"{where}.role"), []
            problem = content_error(item.get("content"), item["role"], where)
            if problem:
                return problem, []
            if item["role"] == "user" and waiting:
                return (f"No tool output found for function call {waiting[0]}.", "input"), []
        elif kind == "function_call":
            for name in ("call_id", "name", "arguments"):
                if not isinstance(item.get(name), str):
                    return (f"Missing required parameter: '{where}.{name}'.", where), []
            waiting.append(item["call_id"])
        elif kind == "function_call_output":
            if item.get("call_id") not in waiting:
                return (
                    "No tool call found for function call output with call_id "
                    f"{item.get('call_id')}.",
                    "input",
                ), []
            if not isinstance(item.get("output"), str | list):
                return (f"Missing required parameter: '{where}.output'.", where), []
            waiting.remove(item["call_id"])
        elif kind == "reasoning":
            if not isinstance(item.get("summary"), list):
                return (f"Missing required parameter: '{where}.summary'.", f"{where}.summary"), []
            encrypted = item.get("encrypted_content")
            if encrypted is None:
                if stored is False and item.get("id"):
                    return (
                        f"Item with id '{item['id']}' not found. Items are not persisted when "
                        "`store` is set to false. Try again with `store` set to true, or "
                        "remove this item from your input.",
                        "input",
                    ), []
                return (f"Missing required parameter: '{where}.encrypted_content'.", where), []
            payload = unseal(encrypted)
            if payload is None:
                return (
                    "The encrypted content could not be verified. Ensure the value is the "
                    "unmodified encrypted_content from a previous response.",
                    f"{where}.encrypted_content",
                ), []
            if item.get("id") and stored is False:
                return (
                    f"Item with id '{item['id']}' not found. Items are not persisted when "
                    "`store` is set to false.",
                    "input",
                ), []
            if payload.get("model") == model:  # another model's reasoning is left out
                carried.append(str(payload.get("id")))
        else:
            return (f"Invalid value: '{kind}'.", f"{where}.type"), []
    if waiting:
        return (f"No tool output found for function call {waiting[0]}.", "input"), []
    return None, carried


def content_error(content: Any, role: str, where: str) -> Any:
    if isinstance(content, str):
        return None
    if not isinstance(content, list) or not content:
        return (f"Invalid type for '{where}.content'.", f"{where}.content")
    kinds = {"output_text", "refusal"} if role == "assistant" else {
        "input_text", "input_image", "input_file"
    }  # fmt: skip
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in kinds:
            return (
                f"Invalid value: '{kind}'. Supported values are: {', '.join(sorted(kinds))}.",
                f"{where}.content[{j}].type",
            )
        if kind == "input_image" and not str(part.get("image_url", "")).startswith(
            ("data:image/", "https://", "http://")
        ):
            return (f"Invalid value for '{where}.content[{j}].image_url'.", where)
        if kind == "input_image" and part.get("detail") not in ("low", "high", "auto", "original"):
            return (f"Missing required parameter: '{where}.content[{j}].detail'.", where)
    return None
