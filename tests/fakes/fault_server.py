"""A fault-injecting loopback server speaking the OpenAI Chat Completions wire format at
the socket level, so it can do what a well-behaved HTTP server cannot: reset the
connection after exactly K bytes, stall mid-answer, split an event across TCP writes at
any byte boundary, send malformed SSE, and stream a 10 MB answer.

Each request takes the next ``Fault`` from ``script`` (default: a clean answer). The
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
from collections import deque
from dataclasses import dataclass, field
from typing import Any

JSON = "application/json"


@dataclass
class Fault:
    """One scripted response.

    kind: ``ok`` | ``status`` | ``reset`` (RST) | ``cut`` (FIN) | ``stall`` | ``malformed`` | ``no_terminator``
    | ``stream_error`` | ``split``. ``at`` is a byte offset into the SSE body (reset,
    stall, split) or a count of content events (malformed, stream_error).
    """

    kind: str = "ok"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    at: int = 0
    seconds: float = 0.0
    error_type: str = "server_error"
    answer: str | None = None  # overrides the echo answer
    chunk: int = 4  # characters per content event


WIRES = ("openai", "anthropic")
HEAD = {"openai": 1, "anthropic": 2}  # events before the first text
TAIL = 3  # events after the last text


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


def content_event(text: str) -> bytes:
    return sse(
        {
            "id": "chatcmpl-fault",
            "object": "chat.completion.chunk",
            "model": "gpt-test",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
        }
    )


def named(payload: dict[str, Any]) -> bytes:
    return f"event: {payload['type']}\ndata: {json.dumps(payload)}\n\n".encode()


def anthropic_events(text: str, chunk: int) -> list[bytes]:
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
        named({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text[i : i + chunk]}})
        for i in range(0, len(text), chunk)
    ]
    tail = [
        named({"type": "content_block_stop", "index": 0}),
        named({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": 5}}),
        named({"type": "message_stop"}),
    ]
    return [*head, *pieces, *tail]


def answer_events(text: str, chunk: int, wire: str = "openai") -> list[bytes]:
    """The events of a clean answer: role, content pieces, finish, usage, [DONE]."""
    if wire == "anthropic":
        return anthropic_events(text, chunk)
    head = sse(
        {
            "id": "chatcmpl-fault",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
        }
    )
    pieces = [content_event(text[i : i + chunk]) for i in range(0, len(text), chunk)]
    finish = sse(
        {
            "id": "chatcmpl-fault",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        }
    )
    usage = sse({"id": "chatcmpl-fault", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5}})
    return [head, *pieces, finish, usage, sse("[DONE]")]


def text_before(text: str, chunk: int, at: int, wire: str = "openai") -> str:
    """The answer text of the content events wholly inside the first ``at`` bytes."""
    events = answer_events(text, chunk, wire)
    size, kept = sum(len(e) for e in events[: HEAD[wire]]), []
    for i, event in enumerate(events[HEAD[wire] : -TAIL]):
        size += len(event)
        if size > at:
            break
        kept.append(text[i * chunk : (i + 1) * chunk])
    return "".join(kept)


class FaultServer:
    def __init__(self, *, idle_timeout: float = 120.0) -> None:
        self.script: deque[Fault] = deque()
        self.requests: list[dict[str, Any]] = []
        self.faults_served = 0
        self.idle_timeout = idle_timeout
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self._closed = False
        self._last = time.monotonic()
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
    def _handle(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(30)
        try:
            request = self._read_request(conn)
            if request is None:
                return
            path, body = request
            self.requests.append(body)
            fault = self.script.popleft() if self.script else Fault()
            if fault.kind != "ok":
                self.faults_served += 1
            self._answer(conn, body, fault, "anthropic" if path.endswith("/messages") else "openai")
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def _read_request(self, conn: socket.socket) -> tuple[str, dict[str, Any]] | None:
        data = b""
        while b"\r\n\r\n" not in data:
            more = conn.recv(65536)
            if not more:
                return None
            data += more
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(rest) < length:
            more = conn.recv(65536)
            if not more:
                return None
            rest += more
        parsed: dict[str, Any] = json.loads(rest[:length] or b"{}")
        path = head.split(b"\r\n")[0].split(b" ")[1].decode()
        return path, parsed

    @staticmethod
    def _head(status: int, content_type: str, headers: dict[str, str], length: int | None) -> bytes:
        lines = [f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}", f"content-type: {content_type}"]
        lines.append(f"content-length: {length}" if length is not None else "transfer-encoding: chunked")
        lines.append("connection: close")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    @staticmethod
    def _chunk(data: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(data), data) if data else b""

    def _answer(self, conn: socket.socket, body: dict[str, Any], fault: Fault, wire: str) -> None:
        text = fault.answer if fault.answer is not None else echo(body.get("messages") or [])
        if fault.kind == "status":
            kind = "rate_limit_error" if fault.status == 429 else "server_error"
            if wire == "anthropic" and fault.status != 429:
                kind = "overloaded_error" if fault.status == 529 else "api_error"
            error = {"message": f"status {fault.status}", "type": kind}
            envelope = {"type": "error", "error": error} if wire == "anthropic" else {"error": error}
            payload = json.dumps(envelope).encode()
            conn.sendall(self._head(fault.status, JSON, fault.headers, len(payload)) + payload)
            return
        events = answer_events(text, fault.chunk, wire)
        if fault.kind in ("malformed", "stream_error", "no_terminator"):
            n = HEAD[wire] + fault.at  # after the head events and `at` content events
            if fault.kind == "malformed":
                events = [*events[:n], b"data: {\"choices\": [{\"delta\": {\"content\": \"x\n\n"]
            elif fault.kind == "stream_error":
                error = {"message": "the model is overloaded", "type": fault.error_type}
                if wire == "anthropic":
                    events = [*events[:n], named({"type": "error", "error": error})]
                else:
                    events = [*events[:n], sse({"error": error})]
            else:
                events = events[: len(events) - TAIL]  # no finish and no end marker
        stream = b"".join(events)
        conn.sendall(self._head(200, "text/event-stream", fault.headers, None))
        if fault.kind == "reset":
            conn.sendall(self._chunk(stream[: fault.at]))
            # RST instead of FIN: the client sees a reset, not an orderly close
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        if fault.kind == "cut":  # an orderly close mid-body: every byte sent arrives
            conn.sendall(self._chunk(stream[: fault.at]))
            conn.shutdown(socket.SHUT_WR)
            return
        if fault.kind == "stall":
            conn.sendall(self._chunk(stream[: fault.at]))
            time.sleep(fault.seconds)
            return
        if fault.kind == "split":
            conn.sendall(self._chunk(stream[: fault.at]))
            time.sleep(0.0005)  # two TCP writes, not one
            conn.sendall(self._chunk(stream[fault.at :]) + b"0\r\n\r\n")
            return
        # ok, malformed, stream_error, no_terminator: in pieces of 64 KB
        for start in range(0, len(stream), 65536):
            conn.sendall(self._chunk(stream[start : start + 65536]))
        conn.sendall(b"0\r\n\r\n")
