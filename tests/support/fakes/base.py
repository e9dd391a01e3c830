"""The loopback plumbing every fake provider shares: a threaded HTTP server on 127.0.0.1
with an OS-chosen port, a record of each request, a script of canned scenarios, and a
watchdog that stops the server by itself when idle (even if a test forgets to).

A provider fake subclasses ``FakeServer`` and implements ``handle(exchange)``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Canned:
    """One scripted response. A non-200 ``status`` answers with ``body`` and ``headers``;
    otherwise the answer streams as ``pieces`` (default: the echo answer in chunks)."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    pieces: list[str] | None = None
    error_after: int | None = None  # an in-stream error after N pieces
    reset_after: int | None = None  # drop the connection after N pieces
    malformed_after: int | None = None  # a data line that is not JSON after N pieces
    finish: str | None = None  # the provider's own stop reason; None: a natural stop
    options: dict[str, Any] = field(default_factory=dict)  # provider-specific scenario flags


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


def default_answer(users: list[str]) -> str:
    """Deterministic and revealing: how many user turns the server saw, and the last."""
    return f"echo #{len(users)}: {users[-1]}"


def count_tokens(text: str) -> int:
    return len(text.split()) + 1


class Exchange:
    """One request and the ways to answer it."""

    def __init__(self, handler: BaseHTTPRequestHandler, seen: Seen, newline: str) -> None:
        self.handler = handler
        self.seen = seen
        self.newline = newline
        self.streaming = False  # a chunked body has begun and is not finished

    @property
    def path(self) -> str:
        return self.seen.path

    def header(self, name: str) -> str:
        return self.seen.headers.get(name.lower(), "")

    def json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        h = self.handler
        h.send_response(status)
        h.send_header("content-type", "application/json; charset=utf-8")
        h.send_header("content-length", str(len(data)))
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.end_headers()
        h.wfile.write(data)

    def start_stream(
        self, content_type: str = "text/event-stream", headers: dict[str, str] | None = None
    ) -> None:
        h = self.handler
        h.send_response(200)
        h.send_header("content-type", content_type)
        h.send_header("cache-control", "no-cache")
        h.send_header("transfer-encoding", "chunked")  # as the real services stream
        h.send_header("connection", "close")
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.end_headers()
        self.streaming = True

    def event(self, data: Any, *, event: str | None = None, event_id: str | None = None) -> None:
        text = data if isinstance(data, str) else json.dumps(data)
        lines = [f"event: {event}"] if event else []
        lines.append(f"data: {text}")
        if event_id is not None:
            lines.append(f"id:{event_id}")
        self.raw(self.newline.join(lines) + self.newline + self.newline)

    def raw(self, text: str) -> None:
        data = text.encode()
        self.handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.handler.wfile.flush()

    def finish(self) -> None:
        """End a chunked body (the dispatcher calls this after ``handle``)."""
        if self.streaming:
            self.streaming = False
            self.handler.wfile.write(b"0\r\n\r\n")
            self.handler.wfile.flush()

    def reset(self) -> None:
        """Close the connection mid-answer, as a dropped link would: the chunked body
        never ends, which a client sees as an incomplete read."""
        self.streaming = False
        self.handler.wfile.flush()
        self.handler.connection.shutdown(2)


class FakeServer:
    """Subclasses set ``path_prefix`` and implement ``handle``."""

    path_prefix = ""

    def __init__(
        self,
        *,
        api_key: str,
        answer: Callable[[list[str]], str] = default_answer,
        chunk_size: int = 4,
        idle_timeout: float = 600.0,
        crlf: bool = False,
    ) -> None:
        self.api_key = api_key
        self.answer = answer
        self.chunk_size = chunk_size
        self.newline = "\r\n" if crlf else "\n"
        self.seen: list[Seen] = []
        self.requests: list[Any] = []  # bodies of requests that passed validation
        self.script: deque[Canned] = deque()
        self.idle_timeout = idle_timeout
        self._last_activity = time.monotonic()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._closed = False

    @property
    def root_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        return self.root_url + self.path_prefix

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._server.shutdown()
            self._server.server_close()

    def pieces(self, text: str, canned: Canned) -> list[str]:
        if canned.pieces is not None:
            return canned.pieces
        return [text[i : i + self.chunk_size] for i in range(0, len(text), self.chunk_size)]

    def next_canned(self) -> Canned:
        return self.script.popleft() if self.script else Canned()

    def handle(self, exchange: Exchange) -> None:
        raise NotImplementedError

    def _serve(self) -> None:
        threading.Thread(target=self._watch_idle, daemon=True).start()
        self._server.serve_forever(poll_interval=0.02)  # shutdown() waits up to one interval

    def _watch_idle(self) -> None:
        while not self._closed:
            time.sleep(0.5)
            if time.monotonic() - self._last_activity > self.idle_timeout:
                self.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _dispatch(self, method: str) -> None:
                fake._last_activity = time.monotonic()
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                url = urlsplit(self.path)
                seen = Seen(
                    method,
                    url.path,
                    parse_qs(url.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                fake.seen.append(seen)
                exchange = Exchange(self, seen, fake.newline)
                try:
                    fake.handle(exchange)
                    exchange.finish()
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass  # the client went away: nothing to answer

            def do_GET(self) -> None:
                self._dispatch("GET")

            def do_POST(self) -> None:
                self._dispatch("POST")

        return Handler


# -- message content with parts (text and images), as each wire format writes it ---------


def chat_content_text(content: Any) -> str:
    """The text of a Chat Completions message's content: a string, or its text parts."""
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in content if p.get("type") == "text")


def chat_messages_error(messages: Any, roles: Collection[str]) -> str | None:
    """What OpenAI answers for a ``messages`` list it refuses: missing, a bad role, or a
    content that is neither a string nor text and image parts (the wire-format
    reference, section 1). Shared by the OpenAI and Azure fakes."""
    if not isinstance(messages, list) or not messages:
        return "'messages' is a required property"
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in roles:
            return f"Invalid value for 'messages[{i}].role'"
        problem = chat_content_error(m.get("content"), f"messages[{i}]")
        if problem:
            return problem
    return None


def chat_content_error(content: Any, where: str) -> str | None:
    """What OpenAI answers for content that is neither a string nor a list of ``text``,
    ``image_url`` and ``file`` parts (the wire-format reference, section 1; the SDK's
    ``ChatCompletionContentPartParam``)."""
    if isinstance(content, str):
        return None
    if not isinstance(content, list) or not content:
        return f"Invalid type for '{where}.content'"
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            continue
        if kind == "image_url":
            url = (part.get("image_url") or {}).get("url")
            if isinstance(url, str) and url.startswith(("data:image/", "https://", "http://")):
                continue
            return f"Invalid value for '{where}.content[{j}].image_url.url'"
        if kind == "file":  # a PDF as a data URL, or an uploaded file's id (SDK's File part)
            file = part.get("file") or {}
            data = file.get("file_data")
            if isinstance(data, str) and data.startswith("data:application/pdf;base64,"):
                continue
            if isinstance(file.get("file_id"), str):
                continue
            return f"Invalid value for '{where}.content[{j}].file'"
        return (
            f"Invalid value: '{kind}'. Supported values are: 'text', 'image_url' and 'file'."
        )
    return None
