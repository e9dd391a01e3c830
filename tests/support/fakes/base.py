"""The loopback plumbing every fake provider shares: a threaded HTTP server on 127.0.0.1
with an OS-chosen port, a record of each request, a script of canned scenarios, and a
watchdog that stops the server by itself when idle (even if a test forgets to).

A provider fake subclasses ``FakeServer`` and implements ``handle(exchange)``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Hashable, Iterable
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
    # An answer that calls tools: (name, arguments as JSON text) each, in order, after
    # ``pieces`` of text when given (none otherwise); each fake streams them in its wire
    # format, the arguments cut into small fragments (``chunk_size``).
    tool_calls: list[tuple[str, str]] | None = None


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
    """The fakes' token count: one a word, plus one (deterministic, no tokenizer)."""
    return len(text.split()) + 1


# -- prompt caching ----------------------------------------------------------------------


class FakeClock:
    """A clock a test moves by hand: the fakes' prompt caches expire by the clock they are
    given (``time.monotonic`` by default), so a test of a TTL needs no waiting."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class CacheEntry:
    tokens: int  # the length of the cached prefix
    expires: float
    ttl: float


class PrefixCache:
    """Cached prompt prefixes: an entry per scope (an API key and what else separates
    caches) and prefix hash, with the prefix's length in tokens and when it expires. What
    a provider's prompt cache keeps (the prefix's KV states), without the states."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.entries: dict[tuple[Hashable, str], CacheEntry] = {}
        self.lock = threading.Lock()  # the fakes serve requests on threads

    def alive(self, scope: Hashable, key: str) -> CacheEntry | None:
        entry = self.entries.get((scope, key))
        if entry is not None and entry.expires <= self.clock():
            del self.entries[(scope, key)]
            return None
        return entry

    def put(self, scope: Hashable, key: str, tokens: int, ttl: float) -> None:
        """Write an entry, or refresh one: it lives ``ttl`` seconds from now (a longer
        remaining life is kept)."""
        now = self.clock()
        entry = self.alive(scope, key)
        if entry is not None and entry.expires >= now + ttl:
            return
        self.entries[(scope, key)] = CacheEntry(tokens, now + ttl, ttl)

    def clear(self) -> None:
        self.entries.clear()


def prefix_hashes(pieces: Iterable[str]) -> list[str]:
    """The hash of every prefix of ``pieces``: the i-th names pieces[0..i] (a running
    hash, so a prefix's name does not depend on what follows it)."""
    running = hashlib.sha256()
    out = []
    for piece in pieces:
        running.update(piece.encode())
        running.update(b"\x00")
        out.append(running.hexdigest())
    return out


# Models that bill (and report) cache writes on Chat Completions: the GPT-5.6 family and
# later (OpenAI's prompt-caching guide); earlier ones cache without a write fee.
_WRITES_REPORTED = re.compile(r"^gpt-(?:5\.(?:[6-9]|\d\d)|[6-9])")


class AutomaticPromptCache:
    """OpenAI's automatic prompt caching (Chat Completions, and Azure's), as OpenAI's
    prompt-caching guide describes it:

    * prompts of ``MINIMUM`` (1,024) tokens or more are cached, hits come in ``STEP``
      (128-token) increments: a hit is the longest cached prefix of 1,024, 1,152, …
      tokens (here: every such prefix of a prompt is kept, so a hit is the longest common
      prefix with an earlier prompt, rounded down to the increment);
    * a request goes to a machine chosen by the hash of its first ``ROUTE_TOKENS`` (256)
      tokens together with its ``prompt_cache_key``; a machine's cache is its own. More
      than ``ROUTE_RPM`` (15) requests a minute on one route overflow to other machines:
      those find nothing and keep nothing here (a key per conversation keeps its route to
      itself);
    * a prefix is kept ``ttl`` seconds after its last use (in-memory retention clears
      caches after 5 to 10 minutes of inactivity: 10 here);
    * usage: ``cached_tokens`` read, and for the GPT-5.6 family and later, whose writes
      are billed, ``cache_write_tokens`` (the prompt's cacheable length beyond the hit).

    Each scope is also the API key (caches are not shared between organizations)."""

    MINIMUM = 1_024
    STEP = 128
    ROUTE_TOKENS = 256
    ROUTE_RPM = 15

    def __init__(self, clock: Callable[[], float] = time.monotonic, ttl: float = 600.0) -> None:
        self.cache = PrefixCache(clock)
        self.clock = clock
        self.ttl = ttl
        self.recent: dict[Hashable, deque[float]] = {}  # request times by route

    def serve(
        self, api_key: str, model: str, tokens: list[str], cache_key: str | None
    ) -> tuple[int, int]:
        """Read and write the cache for a prompt of ``tokens``: (cached, written), as
        the usage reports them (written is 0 where writes are not reported)."""
        with self.cache.lock:
            route = (api_key, model, cache_key, tuple(tokens[: self.ROUTE_TOKENS]))
            now = self.clock()
            times = self.recent.setdefault(route, deque())
            while times and times[0] <= now - 60.0:
                times.popleft()
            times.append(now)
            if len(times) > self.ROUTE_RPM or len(tokens) < self.MINIMUM:
                return 0, 0  # overflowed to another machine, or too short to cache
            lengths = range(self.MINIMUM, len(tokens) + 1, self.STEP)
            hashes = prefix_hashes(tokens)
            cached = 0
            for length in lengths:
                if self.cache.alive(route, hashes[length - 1]) is None:
                    break
                cached = length
            for length in lengths:  # written, or refreshed by this use
                self.cache.put(route, hashes[length - 1], length, self.ttl)
            whole = lengths[-1]
            written = whole - cached if _WRITES_REPORTED.match(model) else 0
            return cached, written


def chat_prompt_tokens(body: dict[str, Any], framing: int = 3) -> list[str]:
    """A Chat Completions prompt as the fakes' tokens: per message ``framing`` (role,
    start, end…) and one a word of its text, as the fakes count a prompt. What is not counted
    (tool calls, a tool's id, the request's tools and response format) still tells
    prompts apart: it is folded into the message's role token, as it shapes the prompt."""
    around = {k: body.get(k) for k in ("tools", "response_format") if body.get(k)}
    out: list[str] = []
    for message in body["messages"]:
        rest = {k: v for k, v in message.items() if k != "content"}
        if not isinstance(message.get("content"), str | None):
            rest["parts"] = [p for p in message["content"] if p.get("type") != "text"]
        if around:
            rest["around"], around = around, {}
        mark = hashlib.sha1(json.dumps(rest, sort_keys=True).encode()).hexdigest()[:12]
        out += [f"<{mark}>", *(["<start>", "<end>", "<sep>"][: framing - 1])]
        out += chat_content_text(message.get("content") or "").split()
    return out


def chat_usage(
    prompt: int, completion: int, cached: int, written: int, reasoning: int = 0
) -> dict[str, Any]:
    """A Chat Completions ``usage`` with its details, as OpenAI reports them."""
    details: dict[str, Any] = {"cached_tokens": cached, "audio_tokens": 0}
    if written:
        details["cache_write_tokens"] = written
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": details,
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def tool_said(results: list[str]) -> str:
    """The default answer after tool results: what the tools said, so a dialogue shows
    the model "used" them."""
    return "tool said: " + "; ".join(results)


def fragments(text: str, size: int) -> list[str]:
    """Arguments cut as a model streams them: small pieces, at least two when possible."""
    size = max(1, min(size, len(text) // 2 or 1))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def example(schema: Any, text: str, number: int = 1) -> Any:
    """A value matching a JSON schema (what the fakes answer when a structured answer is
    asked for): each string is ``text``, each number ``number``, each object has all its
    properties, an enum its first value, ``anyOf`` its first choice that is not null."""
    if not isinstance(schema, dict):
        return text
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        choices = [c for c in schema.get(key) or [] if c.get("type") != "null"]
        if choices:
            return example(choices[0], text, number)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        return {name: example(sub, text, number) for name, sub in properties.items()}
    if kind == "array":
        return [example(schema.get("items") or {}, text, number)]
    if kind == "integer":
        return number
    if kind == "number":
        return float(number)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return text


def tool_steps(body: dict[str, Any]) -> int:
    """How many assistant messages with tool calls a Chat Completions request holds: the
    fakes number a new answer's call ids with it, so ids are unique in a conversation and
    the same for the same request (the SDK's and nbconvo's)."""
    return sum(1 for m in body["messages"] if m["role"] == "assistant" and m.get("tool_calls"))


def openai_tool_deltas(
    calls: list[tuple[str, str]], size: int, prefix: str
) -> list[dict[str, Any]]:
    """Chat Completions ``delta.tool_calls`` for ``calls``: each call's first delta has its
    index, id (``prefix`` + its place), type and name and empty arguments, the next ones
    pieces of its arguments; parallel calls interleave, one fragment each in turn."""
    queues = []
    for index, (name, arguments) in enumerate(calls):
        head = {
            "index": index,
            "id": f"{prefix}{index}",
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        rest = [
            {"index": index, "function": {"arguments": piece}}
            for piece in fragments(arguments, size)
        ]
        queues.append([head, *rest])
    deltas = []
    while any(queues):
        for queue in queues:
            if queue:
                deltas.append({"tool_calls": [queue.pop(0)]})
    return deltas


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
    """What OpenAI answers for a ``messages`` list it refuses: missing, a bad role, a
    content that is neither a string nor text and image parts (the wire-format
    reference, section 1), or tool calls and tool messages that do not pair up. Shared
    by the OpenAI and Azure fakes."""
    if not isinstance(messages, list) or not messages:
        return "'messages' is a required property"
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in roles:
            return f"Invalid value for 'messages[{i}].role'"
        if m["role"] == "assistant" and m.get("tool_calls") is not None:
            problem = chat_tool_calls_error(m, f"messages[{i}]")
        elif m["role"] == "tool":
            problem = chat_tool_message_error(m, f"messages[{i}]")
        else:
            problem = chat_content_error(m.get("content"), f"messages[{i}]")
        if problem:
            return problem
    return chat_pairing_error(messages)


def chat_tool_calls_error(message: dict[str, Any], where: str) -> str | None:
    """An assistant message with ``tool_calls``: a content string (or null) and calls with
    an id, type ``function``, a name and arguments as a string."""
    content = message.get("content")
    if content is not None:
        problem = chat_content_error(content, where)
        if problem:
            return problem
    calls = message["tool_calls"]
    if not isinstance(calls, list) or not calls:
        return f"Invalid '{where}.tool_calls': empty array. Expected an array with minimum length 1"
    for j, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or call.get("type") != "function":
            return f"Missing required parameter: '{where}.tool_calls[{j}].function'."
        if not isinstance(call.get("id"), str) or not call["id"]:
            return f"Missing required parameter: '{where}.tool_calls[{j}].id'."
        if not isinstance(function.get("name"), str) or not function["name"]:
            return f"Missing required parameter: '{where}.tool_calls[{j}].function.name'."
        if not isinstance(function.get("arguments"), str):
            return (
                f"Invalid type for '{where}.tool_calls[{j}].function.arguments': expected a string"
            )
    return None


def chat_tool_message_error(message: dict[str, Any], where: str) -> str | None:
    if not isinstance(message.get("tool_call_id"), str) or not message["tool_call_id"]:
        return f"Missing parameter 'tool_call_id': messages with role 'tool' must have a 'tool_call_id'. ({where})"
    if not isinstance(message.get("content"), str):
        return chat_content_error(message.get("content"), where)
    return None


def chat_pairing_error(messages: list[dict[str, Any]]) -> str | None:
    """Each tool message answers a call of the assistant message just before the run of
    tool messages it is in, and every call is answered (OpenAI's own two errors)."""
    waiting: list[str] = []
    for i, m in enumerate(messages):
        if m["role"] == "tool":
            if m["tool_call_id"] not in waiting:
                return (
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    f"preceeding message with 'tool_calls'. (messages[{i}])"
                )
            waiting.remove(m["tool_call_id"])
            continue
        if waiting:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(waiting)}"
            )
        if m["role"] == "assistant" and m.get("tool_calls"):
            waiting = [c["id"] for c in m["tool_calls"]]
    if waiting:
        return f"The following tool_call_ids did not have response messages: {', '.join(waiting)}"
    return None


def chat_tools_error(body: dict[str, Any]) -> str | None:
    """``tools`` of type ``function`` with a name and an object schema, and a
    ``response_format`` of a known type (a ``json_schema`` one with a name and schema)."""
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list) or not tools:
            return "Invalid 'tools': empty array. Expected an array with minimum length 1"
        for i, t in enumerate(tools):
            function = t.get("function") if isinstance(t, dict) else None
            if t.get("type") != "function" or not isinstance(function, dict):
                return f"Missing required parameter: 'tools[{i}].function'."
            if not isinstance(function.get("name"), str) or not function["name"]:
                return f"Missing required parameter: 'tools[{i}].function.name'."
            parameters = function.get("parameters", {"type": "object"})
            if not isinstance(parameters, dict) or parameters.get("type") != "object":
                return (
                    f"Invalid schema for function '{function['name']}': schema must be a JSON "
                    "Schema of 'type: \"object\"'"
                )
    fmt = body.get("response_format")
    if fmt is not None:
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind not in ("text", "json_object", "json_schema"):
            return "Invalid value for 'response_format.type'"
        if kind == "json_schema":
            spec = fmt.get("json_schema")
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                return "Missing required parameter: 'response_format.json_schema.name'."
            if not isinstance(spec.get("schema"), dict):
                return "Invalid 'response_format.json_schema.schema': expected an object"
    return None


def chat_answer(
    messages: list[dict[str, Any]], body: dict[str, Any], echo: Callable[[], Any]
) -> Any:
    """What a Chat Completions fake answers when not scripted: after tool messages, what
    the tools said; else ``echo()``; as a JSON example when a ``json_schema`` answer is
    asked for (the echo's text in its strings)."""
    results = []
    for m in reversed(messages):
        if m["role"] != "tool":
            break
        results.insert(0, chat_content_text(m["content"]))
    answer = tool_said(results) if results else echo()
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema" and isinstance(answer, str):
        users = sum(1 for m in messages if m["role"] == "user")
        return json.dumps(example(fmt["json_schema"]["schema"], answer, users))
    return answer


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
        return f"Invalid value: '{kind}'. Supported values are: 'text', 'image_url' and 'file'."
    return None
