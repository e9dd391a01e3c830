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
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.fakes.base import chat_content_text, chat_messages_error

ROLES = {"system", "developer", "user", "assistant", "tool"}


@dataclass
class Canned:
    """One scripted response: a status with a JSON body, or a stream of text pieces."""

    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    pieces: list[str] | None = None
    error_after: int | None = None  # send an in-stream error object after N pieces
    reset_after: int | None = None  # drop the connection after N pieces
    delay: float = 0.0  # seconds between pieces
    malformed_after: int | None = None  # a data line that is not JSON after N pieces
    finish_reason: str = "stop"  # e.g. "length" or "content_filter"


def default_answer(messages: list[dict[str, Any]]) -> str:
    users = [chat_content_text(m["content"]) for m in messages if m["role"] == "user"]
    return f"echo #{len(users)}: {users[-1]}"


class FakeOpenAI:
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
    ) -> None:
        self.api_key = api_key
        self.model_fields = model_fields or {}  # extra fields of GET /models entries (vLLM)
        self.props = props  # what GET /props answers (llama.cpp), or 404 when None
        self.gets: list[str] = []
        self.answer = answer
        self.chunk_size = chunk_size
        self.delay = delay
        self.send_usage = send_usage
        self.requests: list[dict[str, Any]] = []
        self.headers_seen: list[dict[str, str]] = []
        self.script: deque[Canned] = deque()
        self.idle_timeout = idle_timeout
        self._last_activity = time.monotonic()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._closed = False

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._server.shutdown()
            self._server.server_close()

    def _serve(self) -> None:
        watchdog = threading.Thread(target=self._watch_idle, daemon=True)
        watchdog.start()
        self._server.serve_forever(poll_interval=0.02)  # shutdown() waits up to one interval

    def _watch_idle(self) -> None:
        # Stops by itself when idle for too long, even if a test forgets to close it.
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

            def do_GET(self) -> None:
                fake.gets.append(self.path)
                if self.path.rstrip("/").endswith("/models"):
                    entry = {"id": "fake-model", "object": "model", **fake.model_fields}
                    self._json(200, {"object": "list", "data": [entry]})
                elif self.path == "/props" and fake.props is not None:
                    self._json(200, fake.props)
                else:
                    self._json(404, _error("not found", "invalid_request_error", None))

            def do_POST(self) -> None:
                fake._last_activity = time.monotonic()
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                fake.headers_seen.append({k.lower(): v for k, v in self.headers.items()})
                if not self.path.endswith("/chat/completions"):
                    self._json(
                        404, _error(f"Unknown path {self.path}", "invalid_request_error", None)
                    )
                    return
                if fake.api_key is not None:
                    auth = self.headers.get("authorization", "")
                    if auth != f"Bearer {fake.api_key}":
                        self._json(
                            401,
                            _error(
                                "Incorrect API key provided: sk-xxxx***xxxx. You can find your API key "
                                "at https://platform.openai.com/account/api-keys.",
                                "invalid_request_error",
                                "invalid_api_key",
                            ),
                        )
                        return
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._json(
                        400,
                        _error(
                            "We could not parse the JSON body of your request.",
                            "invalid_request_error",
                            None,
                        ),
                    )
                    return
                problem = _validate(body)
                if problem:
                    self._json(400, _error(problem, "invalid_request_error", None))
                    return
                fake.requests.append(body)
                canned = fake.script.popleft() if fake.script else Canned()
                if canned.status != 200:
                    self._json(
                        canned.status,
                        canned.body or _error("error", "server_error", None),
                        canned.headers,
                    )
                    return
                text = fake.answer(body["messages"])
                if canned.pieces is not None:
                    pieces = canned.pieces
                elif isinstance(text, str):
                    size = fake.chunk_size
                    pieces = [text[i : i + size] for i in range(0, len(text), size)]
                else:  # the answer chose its own pieces
                    pieces = list(text)
                limit = body.get("max_completion_tokens") or body.get("max_tokens")
                if limit is not None and len(pieces) > limit:
                    pieces = pieces[:limit]  # one piece stands for one token
                    canned = dataclasses.replace(canned, finish_reason="length")
                self._stream(body, pieces, canned)

            def _json(
                self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, body: dict[str, Any], pieces: list[str], canned: Canned) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream; charset=utf-8")
                self.send_header("cache-control", "no-cache")
                self.send_header("x-request-id", "req_fake")
                self.send_header("transfer-encoding", "chunked")
                self.send_header("connection", "close")
                self.end_headers()

                def send(obj: dict[str, Any] | str) -> None:
                    line = obj if isinstance(obj, str) else json.dumps(obj)
                    data = f"data: {line}\n\n".encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()

                try:
                    if self._events(body, pieces, canned, send):
                        self.wfile.write(b"0\r\n\r\n")  # the last chunk of a chunked body
                except (BrokenPipeError, ConnectionResetError):
                    return

            def _events(
                self,
                body: dict[str, Any],
                pieces: list[str],
                canned: Canned,
                send: Callable[[dict[str, Any] | str], None],
            ) -> bool:
                """The events of one answer; False when the connection was dropped."""
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                usage_key = {"usage": None} if include_usage else {}
                base = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": 1694268190,
                    "model": body["model"],
                }

                send(
                    {
                        **base,
                        "choices": [
                            {
                                "index": 0,
                                "delta": {"role": "assistant", "content": ""},
                                "logprobs": None,
                                "finish_reason": None,
                            }
                        ],
                        **usage_key,
                    }
                )
                for n, piece in enumerate(pieces):
                    if canned.error_after is not None and n == canned.error_after:
                        send(
                            {
                                "error": {
                                    "message": "The server had an error while processing your "
                                    "request. Sorry about that!",
                                    "type": "server_error",
                                    "param": None,
                                    "code": None,
                                }
                            }
                        )
                        return True
                    if canned.reset_after is not None and n == canned.reset_after:
                        self.wfile.flush()
                        self.connection.shutdown(2)
                        return False
                    if canned.malformed_after is not None and n == canned.malformed_after:
                        send("{not json")
                        return True
                    if canned.delay:
                        time.sleep(canned.delay)
                    elif fake.delay and n:
                        time.sleep(fake.delay)
                    send(
                        {
                            **base,
                            "choices": [
                                {
                                    "index": 0,
                                    "delta": {"content": piece},
                                    "logprobs": None,
                                    "finish_reason": None,
                                }
                            ],
                            **usage_key,
                            "obfuscation": "pad",
                        }
                    )
                send(
                    {
                        **base,
                        "choices": [
                            {
                                "index": 0,
                                "delta": {},
                                "logprobs": None,
                                "finish_reason": canned.finish_reason,
                            }
                        ],
                        **usage_key,
                    }
                )
                if include_usage and fake.send_usage:
                    prompt = sum(
                        len(chat_content_text(m["content"]).split()) + 3 for m in body["messages"]
                    )
                    completion = len(pieces)
                    send(
                        {
                            **base,
                            "choices": [],
                            "usage": {
                                "prompt_tokens": prompt,
                                "completion_tokens": completion,
                                "total_tokens": prompt + completion,
                            },
                        }
                    )
                send("[DONE]")
                return True

        return Handler


def _error(message: str, kind: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _validate(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "you must provide a model parameter"
    problem = chat_messages_error(body.get("messages"), ROLES)
    if problem:
        return problem
    if body.get("stream") is not True:
        return "this fake only serves stream=true"
    if (
        "max_tokens" in body
        and "max_completion_tokens" in body
        and body["max_tokens"] != body["max_completion_tokens"]
    ):
        return "max_tokens and max_completion_tokens disagree"
    return None
