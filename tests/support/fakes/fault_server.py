"""A fault-injecting loopback server at the socket level, so it can do what a
well-behaved HTTP server cannot: reset the connection after exactly K bytes, stall
mid-answer, split an event across TCP writes at any byte boundary, send malformed SSE,
and stream a 10 MB answer.

It speaks every wire format nbconvo speaks, chosen by the request's path as the real
services route them (the exact shapes follow tests/fakes/*_server.py and the wire-format
reference):

* ``openai``: ``POST /v1/chat/completions``; ``data:`` chunks ending with ``[DONE]``.
* ``anthropic``: ``POST /v1/messages``; named events ending with ``message_stop``.
* ``gemini``: ``POST /{v1,v1beta}/models/M:streamGenerateContent?alt=sse``; ``data:``-only
  events framed with CRLF, the end is the connection's close; errors are
  ``{"error": {"code", "message", "status", "details"}}`` (``RetryInfo.retryDelay`` in the
  details), and a failure after the stream began is bare JSON, not ``data:``.
* ``azure``: ``POST /openai/deployments/D/chat/completions?api-version=V`` or
  ``POST /openai/v1/chat/completions`` with an ``api-key`` header; OpenAI's chunks plus a
  first chunk with only ``prompt_filter_results`` and a chunk with no ``delta``; string
  error codes.
* ``copilot``: ``POST /beta/copilot/conversations`` creates a conversation (201, JSON),
  then ``POST /beta/copilot/conversations/ID/chatOverStream`` streams whole-conversation
  snapshots whose reply text is cumulative, each with an ``id:`` line; the last one has a
  real ``displayName`` and ``turnCount`` > 0. The server keeps each conversation's
  prompts, as the real one does.

Each streaming request takes the next ``Fault`` from ``script`` (default: a clean
answer); a ``Fault(target="create")`` is taken by the next Copilot create instead. The
answer is ``"echo #<n>: <last user text>"`` as in the other fakes, so tests can tell a
kept partial from a duplicated one. Binds 127.0.0.1 on an OS-chosen port and stops by
itself when idle.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

JSON = "application/json"
WIRES = ("openai", "anthropic", "gemini", "azure", "copilot")
COPILOT_ID = "00000000-0000-4000-8000-000000000000"  # the length of every conversation id
MALFORMED = b'data: {"choices": [{"delta": {"content": "x\n\n'


@dataclass
class Fault:
    """One scripted response.

    kind: ``ok`` | ``status`` | ``reset`` (RST) | ``cut`` (FIN) | ``stall`` | ``malformed`` | ``no_terminator``
    | ``stream_error`` | ``split``. ``at`` is a byte offset into the SSE body (reset, cut,
    stall, split) or a count of content events (malformed, stream_error). ``body``
    replaces a status answer's body (a str is sent as text/html). ``target``: ``stream``,
    or ``create`` for the Copilot conversation create (status, reset, cut, stall).
    """

    kind: str = "ok"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    at: int = 0
    seconds: float = 0.0
    error_type: str = "server_error"  # server_error | overloaded_error | invalid_request_error
    answer: str | None = None  # overrides the echo answer
    chunk: int = 4  # characters per content event
    body: Any = None
    target: str = "stream"


# -- the wire formats --------------------------------------------------------------------


def echo(messages: list[dict[str, Any]]) -> str:
    users = [
        m["content"] if isinstance(m["content"], str) else m["content"][0]["text"]
        for m in messages
        if m.get("role") == "user"
    ]
    return f"echo #{len(users)}: {users[-1] if users else ''}"


def sse(data: Any) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data)
    return f"data: {text}\n\n".encode()


def crlf(data: Any) -> bytes:
    return f"data: {json.dumps(data)}\r\n\r\n".encode()


def named(payload: dict[str, Any]) -> bytes:
    return f"event: {payload['type']}\ndata: {json.dumps(payload)}\n\n".encode()


def with_id(data: Any, event_id: int) -> bytes:
    return f"data: {json.dumps(data)}\nid:{event_id}\n\n".encode()


def content_event(text: str) -> bytes:
    return sse(
        {
            "id": "chatcmpl-fault",
            "object": "chat.completion.chunk",
            "model": "gpt-test",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
        }
    )


def split_text(text: str, chunk: int) -> list[str]:
    return [text[i : i + chunk] for i in range(0, len(text), chunk)]


Parts = tuple[list[bytes], list[bytes], list[bytes]]  # head, one event per piece, tail


def openai_parts(text: str, chunk: int) -> Parts:
    """Chat Completions: role, content pieces, finish, usage, [DONE]."""
    base = {"id": "chatcmpl-fault", "object": "chat.completion.chunk"}
    head = [sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})]
    finish = sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    usage = sse({"id": "chatcmpl-fault", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5}})
    return head, [content_event(p) for p in split_text(text, chunk)], [finish, usage, sse("[DONE]")]


def anthropic_parts(text: str, chunk: int) -> Parts:
    """Messages API: message_start, content_block_start, text deltas, content_block_stop,
    message_delta, message_stop."""
    message = {
        "id": "msg_fault",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-test",
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 1},
    }
    head = [
        named({"type": "message_start", "message": message}),
        named({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    ]
    pieces = [
        named({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}})
        for p in split_text(text, chunk)
    ]
    tail = [
        named({"type": "content_block_stop", "index": 0}),
        named({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": 5}}),
        named({"type": "message_stop"}),
    ]
    return head, pieces, tail


def gemini_parts(text: str, chunk: int) -> Parts:
    """streamGenerateContent?alt=sse: whole GenerateContentResponse objects, CRLF-framed:
    an empty-text part carrying a thought signature, the text parts (usage on each, the
    prompt count only), a finish-only chunk with the complete usage; then the close."""
    meta = {"modelVersion": "gemini-test", "responseId": "faultResponse"}
    usage = {"promptTokenCount": 3, "totalTokenCount": 3}

    def chunk_of(part: dict[str, Any]) -> bytes:
        candidate = {"content": {"parts": [part], "role": "model"}, "index": 0}
        return crlf({"candidates": [candidate], "usageMetadata": usage, **meta})

    head = [chunk_of({"text": "", "thoughtSignature": "c2lnbmF0dXJl"})]
    pieces = [chunk_of({"text": p}) for p in split_text(text, chunk)]
    final = {"promptTokenCount": 3, "candidatesTokenCount": 5, "totalTokenCount": 8}
    tail = [crlf({"candidates": [{"finishReason": "STOP", "index": 0}], "usageMetadata": final, **meta})]
    return head, pieces, tail


SAFE = {name: {"filtered": False, "severity": "safe"} for name in ("hate", "self_harm", "sexual", "violence")}


def azure_parts(text: str, chunk: int) -> Parts:
    """Azure OpenAI: a chunk with only the prompt's filter results, the role, content
    chunks with their filter results, a filter chunk with no delta, finish, usage, [DONE]."""
    base = {"id": "chatcmpl-azure", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-4o"}
    prompt_filter = {"prompt_index": 0, "content_filter_results": SAFE}
    head = [
        sse({"choices": [], "created": 0, "id": "", "model": "", "object": "", "prompt_filter_results": [prompt_filter]}),
        sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}),
    ]
    pieces = [
        sse({**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None, "content_filter_results": SAFE}]})
        for p in split_text(text, chunk)
    ]
    offsets = {"check_offset": 0, "start_offset": 0, "end_offset": len(text)}
    tail = [
        sse({**base, "choices": [{"index": 0, "finish_reason": None, "content_filter_results": SAFE, "content_filter_offsets": offsets}]}),
        sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        sse({**base, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}}),
        sse("[DONE]"),
    ]
    return head, pieces, tail


def copilot_snapshot(
    conversation: str, text: str | None, *, prompt: str = "", turns: int = 0
) -> dict[str, Any]:
    """A whole ``copilotConversation``: intermediate (``turns`` 0) or final."""
    reply = {
        "@odata.type": "#microsoft.graph.copilotConversationResponseMessage",
        "id": "reply-" + conversation[:8],
        "text": text,
        "createdDateTime": "2026-11-25T10:00:01Z",
        "adaptiveCards": [],
        "attributions": [],
    }
    final = turns > 0
    messages = [{**reply, "id": "echo-" + conversation[:8], "text": prompt}, reply] if final else []
    if not final and text is not None:
        messages = [reply]
    return {
        "id": conversation,
        "createdDateTime": "2026-11-25T10:00:00Z",
        "displayName": prompt[:60] if final else "Intermediate Conversation Update",
        "state": "active",
        "turnCount": turns,
        "messages": messages,
    }


def copilot_parts(
    text: str, chunk: int, *, conversation: str = COPILOT_ID, prompt: str = "", turns: int = 1
) -> Parts:
    """chatOverStream: an update without messages, then snapshots of the cumulative text,
    then the final snapshot (the prompt's echo and the reply, ``turnCount`` > 0)."""
    head = [with_id(copilot_snapshot(conversation, None), 130)]
    so_far, pieces = "", []
    for n, piece in enumerate(split_text(text, chunk)):
        so_far += piece
        pieces.append(with_id(copilot_snapshot(conversation, so_far), 131 + n))
    final = copilot_snapshot(conversation, text, prompt=prompt, turns=max(1, turns))
    return head, pieces, [with_id(final, 131 + len(pieces))]


def answer_parts(text: str, chunk: int, wire: str = "openai", **copilot: Any) -> Parts:
    """The events of a clean answer on ``wire``: before the first text, one per piece of
    text, after the last. ``copilot``: conversation, prompt and turns of a Copilot reply."""
    if wire == "copilot":
        return copilot_parts(text, chunk, **copilot)
    build = {"openai": openai_parts, "anthropic": anthropic_parts, "gemini": gemini_parts, "azure": azure_parts}
    return build[wire](text, chunk)


def answer_events(text: str, chunk: int, wire: str = "openai", **copilot: Any) -> list[bytes]:
    head, pieces, tail = answer_parts(text, chunk, wire, **copilot)
    return [*head, *pieces, *tail]


def first_text_offset(text: str, chunk: int, wire: str = "openai", **copilot: Any) -> int:
    """Bytes of the stream up to and including the first content event."""
    head, pieces, _tail = answer_parts(text, chunk, wire, **copilot)
    return sum(len(e) for e in head) + len(pieces[0])


def text_before(text: str, chunk: int, at: int, wire: str = "openai", **copilot: Any) -> str:
    """The answer text of the content events wholly inside the first ``at`` bytes."""
    head, pieces, _tail = answer_parts(text, chunk, wire, **copilot)
    size, kept = sum(len(e) for e in head), []
    for piece, event in zip(split_text(text, chunk), pieces, strict=True):
        size += len(event)
        if size > at:
            break
        kept.append(piece)
    return "".join(kept)


# Error codes of each wire for the generic kinds a Fault names.
GEMINI_STATUS = {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
GRAPH_CODES = {429: "TooManyRequests", 500: "InternalServerError", 502: "BadGateway", 503: "ServiceUnavailable"}
IN_STREAM = {
    "gemini": {"server_error": "UNAVAILABLE", "overloaded_error": "UNAVAILABLE", "invalid_request_error": "INVALID_ARGUMENT"},
    "azure": {"server_error": "500", "overloaded_error": "503", "invalid_request_error": "400"},
    "copilot": {"server_error": "InternalServerError", "overloaded_error": "ServiceUnavailable", "invalid_request_error": "BadRequest"},
}


def gemini_error(status: int, message: str, details: list[Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": status, "message": message, "status": GEMINI_STATUS.get(status, "INVALID_ARGUMENT")}
    if details is not None:
        error["details"] = details
    return {"error": error}


def gemini_rate_limited(delay: str | None, quota_id: str = "GenerateRequestsPerMinutePerProjectPerModel") -> dict[str, Any]:
    """A 429 body as Gemini sends it: QuotaFailure and (with ``delay``) RetryInfo."""
    details: list[Any] = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_requests", "quotaId": quota_id}],
        }
    ]
    if delay is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay})
    return gemini_error(429, "You exceeded your current quota, please check your plan and billing details.", details)


def graph_error(code: str, message: str) -> dict[str, Any]:
    inner = {"date": "2026-11-25T10:00:00", "request-id": "fault-request", "client-request-id": "fault-client"}
    return {"error": {"code": code, "message": message, "innerError": inner}}


def status_body(wire: str, status: int) -> dict[str, Any]:
    message = f"status {status}"
    if wire == "gemini":
        return gemini_rate_limited(None) if status == 429 else gemini_error(status, message)
    if wire == "azure":  # Azure's codes are strings
        return {"error": {"code": str(status), "message": message}}
    if wire == "copilot":
        return graph_error(GRAPH_CODES.get(status, "BadRequest"), message)
    kind = "rate_limit_error" if status == 429 else "server_error"
    if wire == "anthropic" and status != 429:
        kind = "overloaded_error" if status == 529 else "api_error"
    error = {"message": message, "type": kind}
    return {"type": "error", "error": error} if wire == "anthropic" else {"error": error}


def stream_error_event(wire: str, error_type: str) -> bytes:
    message = "the model is overloaded"
    if wire == "anthropic":
        return named({"type": "error", "error": {"message": message, "type": error_type}})
    if wire == "gemini":  # bare JSON lines, not data: (as the real service fails mid-stream)
        error = {"code": 400 if error_type == "invalid_request_error" else 503, "message": message}
        error["status"] = IN_STREAM["gemini"][error_type]
        return json.dumps({"error": error}, indent=2).replace("\n", "\r\n").encode() + b"\r\n"
    if wire == "azure":
        return sse({"error": {"code": IN_STREAM["azure"][error_type], "message": message}})
    if wire == "copilot":
        return with_id(graph_error(IN_STREAM["copilot"][error_type], message), 999)
    return sse({"error": {"message": message, "type": error_type}})


def malformed_event(wire: str) -> bytes:
    return MALFORMED.replace(b"\n", b"\r\n") if wire == "gemini" else MALFORMED


def users_of(wire: str, body: dict[str, Any]) -> list[str]:
    """The user texts of a request body, as the server sees them."""
    if wire == "gemini":
        return [c["parts"][0]["text"] for c in body.get("contents") or [] if c.get("role", "user") == "user"]
    messages = body.get("messages") or []
    return [
        m["content"] if isinstance(m["content"], str) else m["content"][0]["text"]
        for m in messages
        if m.get("role") == "user"
    ]


# -- routing: which wire a request speaks, and whether it may be answered ----------------

AUTH = {
    "openai": ("authorization",),
    "anthropic": ("x-api-key", "authorization"),
    "gemini": ("x-goog-api-key",),
    "azure": ("api-key", "authorization"),
    "copilot": ("authorization",),
}


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def wire(self) -> str:
        if self.path.endswith("/messages"):
            return "anthropic"
        if ":streamGenerateContent" in self.path:
            return "gemini"
        if self.path.startswith("/openai/"):
            return "azure"
        if self.path.startswith("/beta/copilot/"):
            return "copilot"
        return "openai"

    def refusal(self) -> tuple[int, dict[str, Any]] | None:
        """The 401/404 the real service would answer (not a fault), or None."""
        wire = self.wire
        if not any(self.headers.get(name) for name in AUTH[wire]):
            if wire == "copilot":
                return 401, graph_error("InvalidAuthenticationToken", "Access token is empty.")
            return 401, status_body(wire, 401)
        if wire == "azure" and "/deployments/" in self.path and "api-version=" not in self.query:
            return 404, {"error": {"code": "404", "message": "Resource not found"}}
        if wire == "azure" and self.path.startswith("/openai/v1/") and not self.body.get("model"):
            return 400, {"error": {"code": "BadRequest", "message": "you must provide a model parameter"}}
        if wire == "gemini" and "alt=sse" not in self.query:
            return 400, gemini_error(400, "this fault server streams only with alt=sse")
        return None


class FaultServer:
    def __init__(self, *, idle_timeout: float = 120.0) -> None:
        self.script: deque[Fault] = deque()
        self.requests: list[dict[str, Any]] = []  # bodies of streamed requests
        self.headers_seen: list[dict[str, str]] = []
        self.created = 0  # Copilot conversations created
        self.faults_served = 0
        self.faults_by_wire: Counter[str] = Counter()
        self.copilot: dict[str, list[str]] = {}  # conversation id -> the user texts it holds
        self.idle_timeout = idle_timeout
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self._closed = False
        self._last = time.monotonic()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def root_url(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        return self.root_url + "/v1"

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes accept() at once
        self._thread.join(timeout=5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._closed:
            if time.monotonic() - self._last > self.idle_timeout:
                self._closed = True  # stops by itself when a test forgets to
                break
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            self._last = time.monotonic()
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    # -- one connection, one request ---------------------------------------------------
    def _next_fault(self, target: str, wire: str) -> Fault:
        with self._lock:
            if not self.script or self.script[0].target != target:
                return Fault(target=target)
            fault = self.script.popleft()
            if fault.kind != "ok":
                self.faults_served += 1
                self.faults_by_wire[wire] += 1
            return fault

    def _handle(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(30)
        try:
            request = self._read_request(conn)
            if request is None:
                return
            self.headers_seen.append(request.headers)
            refusal = request.refusal()
            if refusal is not None:
                payload = json.dumps(refusal[1]).encode()
                conn.sendall(self._head(refusal[0], JSON, {}, len(payload)) + payload)
            elif request.wire == "copilot" and request.path == "/beta/copilot/conversations":
                self._create(conn, self._next_fault("create", "copilot"))
            elif request.wire == "copilot":
                self._copilot_chat(conn, request)
            else:
                self.requests.append(request.body)
                fault = self._next_fault("stream", request.wire)
                users = users_of(request.wire, request.body)
                text = f"echo #{len(users)}: {users[-1] if users else ''}"
                self._answer(conn, request.wire, fault, text)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def _create(self, conn: socket.socket, fault: Fault) -> None:
        conversation = str(uuid.uuid4())
        if fault.kind == "status":
            self._status(conn, "copilot", fault)
            return
        payload = json.dumps(
            {"id": conversation, "createdDateTime": "2026-11-25T10:00:00Z", "displayName": "", "status": "active", "turnCount": 0}
        ).encode()
        response = self._head(201, JSON, {}, len(payload), reason="Created") + payload
        if fault.kind in ("reset", "cut", "stall"):
            self._break(conn, response[: fault.at], fault)
            return
        self.copilot[conversation] = []
        conn.sendall(response)

    def _copilot_chat(self, conn: socket.socket, request: Request) -> None:
        conversation = request.path.split("/")[4]
        if conversation not in self.copilot or not request.path.endswith("/chatOverStream"):
            payload = json.dumps(graph_error("NotFound", "Conversation not found.")).encode()
            conn.sendall(self._head(404, JSON, {}, len(payload)) + payload)
            return
        self.requests.append(request.body)
        fault = self._next_fault("stream", "copilot")
        held = self.copilot[conversation]
        if not held:  # a new conversation: the earlier turns come as additionalContext
            context = request.body.get("additionalContext") or []
            held = [c["text"].removeprefix("User: ") for c in context if c["text"].startswith("User: ")]
        prompt = request.body["message"]["text"]
        users = [*held, prompt]
        text = f"echo #{len(users)}: {prompt}"
        parts = {"conversation": conversation, "prompt": prompt, "turns": len(users)}
        if self._answer(conn, "copilot", fault, text, parts):
            self.copilot[conversation] = users  # the server keeps a turn it finished

    def _read_request(self, conn: socket.socket) -> Request | None:
        data = b""
        while b"\r\n\r\n" not in data:
            more = conn.recv(65536)
            if not more:
                return None
            data += more
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        while len(rest) < length:
            more = conn.recv(65536)
            if not more:
                return None
            rest += more
        body: dict[str, Any] = json.loads(rest[:length] or b"{}")
        method, target = lines[0].split(" ")[:2]
        path, _, query = target.partition("?")
        return Request(method, path, query, headers, body)

    @staticmethod
    def _head(
        status: int, content_type: str, headers: dict[str, str], length: int | None, reason: str = ""
    ) -> bytes:
        reason = reason or ("OK" if status == 200 else "Error")
        lines = [f"HTTP/1.1 {status} {reason}", f"content-type: {content_type}"]
        lines.append(f"content-length: {length}" if length is not None else "transfer-encoding: chunked")
        lines.append("connection: close")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    @staticmethod
    def _chunk(data: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(data), data) if data else b""

    def _status(self, conn: socket.socket, wire: str, fault: Fault) -> None:
        body = status_body(wire, fault.status) if fault.body is None else fault.body
        if isinstance(body, str):
            payload, content_type = body.encode(), "text/html; charset=UTF-8"
        else:
            payload, content_type = json.dumps(body).encode(), JSON
        conn.sendall(self._head(fault.status, content_type, fault.headers, len(payload)) + payload)

    @staticmethod
    def _break(conn: socket.socket, data: bytes, fault: Fault) -> None:
        """Send ``data``, then end as a ``reset``, ``cut`` or ``stall`` fault does."""
        conn.sendall(data)
        if fault.kind == "reset":
            # RST instead of FIN: the client sees a reset, not an orderly close
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif fault.kind == "cut":  # an orderly close mid-body: every byte sent arrives
            conn.shutdown(socket.SHUT_WR)
        else:
            time.sleep(fault.seconds)

    def _answer(
        self, conn: socket.socket, wire: str, fault: Fault, text: str, copilot: dict[str, Any] | None = None
    ) -> bool:
        """Stream the answer (or the fault); True when the whole clean answer was sent."""
        if fault.answer is not None:
            text = fault.answer
        if fault.kind == "status":
            self._status(conn, wire, fault)
            return False
        head, pieces, tail = answer_parts(text, fault.chunk, wire, **(copilot or {}))
        if fault.kind == "malformed":
            events = [*head, *pieces[: fault.at], malformed_event(wire)]
        elif fault.kind == "stream_error":
            events = [*head, *pieces[: fault.at], stream_error_event(wire, fault.error_type)]
        elif fault.kind == "no_terminator":
            events = [*head, *pieces]  # no finish and no end marker
        else:
            events = [*head, *pieces, *tail]
        stream = b"".join(events)
        content_type = "text/event-stream; charset=utf-8" if wire == "azure" else "text/event-stream"
        conn.sendall(self._head(200, content_type, fault.headers, None))
        if fault.kind in ("reset", "cut", "stall"):
            self._break(conn, self._chunk(stream[: fault.at]), fault)
            return False
        if fault.kind == "split":
            conn.sendall(self._chunk(stream[: fault.at]))
            time.sleep(0.0005)  # two TCP writes, not one
            conn.sendall(self._chunk(stream[fault.at :]) + b"0\r\n\r\n")
            return True
        # ok, malformed, stream_error, no_terminator: in pieces of 64 KB
        for start in range(0, len(stream), 65536):
            conn.sendall(self._chunk(stream[start : start + 65536]))
        conn.sendall(b"0\r\n\r\n")
        return fault.kind == "ok"
