"""OpenAI Chat Completions and OpenAI-compatible servers (Ollama, vLLM, llama.cpp, LM Studio).

Wire format: ``POST {base}/chat/completions`` with ``stream: true``; chunks are ``data:``
lines of JSON ending with ``data: [DONE]``; usage arrives in a last chunk with empty
``choices`` when ``stream_options.include_usage`` is set (local servers may omit it).
A ``data: {"error": …}`` object inside the stream is a failure (retried while no text
has arrived). The finish reason is reported at the end, after usage, so a ``length``
stop can say how many tokens the answer had.

Tools go as ``tools`` of ``function`` type; a tool call streams as ``delta.tool_calls``
fragments (the id and name first, the arguments in pieces, calls in parallel told apart
by ``index``), gathered here and yielded whole when the finish reason arrives. A
structured answer is asked for with a ``json_schema`` ``response_format``.

Effort (``--effort``) goes as ``reasoning_effort``; a model the table knows takes none is
refused before sending. Chat Completions returns no reasoning to send back, so reasoning
parts in the history (another API's) are left out. The GPT-5.2 family and later take no
effort beside function tools here: it is dropped with a note (the Responses API,
``openai-responses:``, takes both); a 400 naming ``reasoning_effort`` from an unknown model
is retried once without it, as one naming ``temperature`` is.

Prompt caching is automatic (prompts of 1,024 tokens and more); OpenAI's and Azure's own
services get ``prompt_cache_key`` (the conversation tree's key, ``request.cache``) so a
tree's requests reach the machines that hold its prefixes. No ``prompt_cache_retention``:
it is deprecated (``prompt_cache_options.ttl`` replaces it, GPT-5.6 and later, one value),
extended retention is already the default where it is allowed, and Azure refuses the field
on models without it. A service that refuses ``prompt_cache_key`` (models some Azure
resources serve) gets the request again without it, and no key after that. The usage's
``prompt_tokens_details`` says what was read from the cache (``cached_tokens``) and, on the
models that bill writes, written to it (``cache_write_tokens``);
``completion_tokens_details.reasoning_tokens`` the output spent thinking.
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator, Iterator, Mapping
from typing import Any

import httpx

from nbconvo._credentials import KEYS
from nbconvo._errors import ProviderError
from nbconvo._models import accepts_sampling, known_names
from nbconvo._parts import ToolCallPart
from nbconvo._types import ChatRequest, Finish, Notice, ProviderEvent, Usage
from nbconvo.providers._content import (
    openai_messages,
    openai_response_format,
    openai_tools,
    refuse_effort,
)
from nbconvo.providers._http import (
    RETRYABLE_STATUS,
    EventFeed,
    HTTPProvider,
    HttpStatusError,
    ServiceError,
    base_url_from,
    error_message_from_body,
    parse_json_event,
)

OPENAI_BASE_URL = "https://api.openai.com/v1"
_FINISH = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",  # the deprecated name, still sent by some servers
}
# Error types (OpenAI) and codes (Azure writes words) that say "try again", compared
# lower-case without separators.
_TRANSIENT_TYPES = frozenset(
    {
        "servererror",
        "apierror",
        "overloadederror",
        "timeout",
        "ratelimiterror",
        "internalservererror",
        "serviceunavailable",
        "toomanyrequests",
        "requesttimeout",
        "badgateway",
        "gatewaytimeout",
    }
)


# Models that refuse ``reasoning_effort`` beside function tools on Chat Completions ("use
# /v1/responses"): GPT-5.2 and later.
_NO_EFFORT_WITH_TOOLS = re.compile(r"^gpt-(?:5\.(?:[2-9]|\d\d)|[6-9])")


def length_notice(tokens: int | None) -> str:
    if tokens:
        return f"answer cut at {tokens:,} tokens: raise the limit with --max-tokens N"
    return "answer cut at the max-tokens limit: raise it with --max-tokens N"


# Servers that run a GGUF model with its own chat template (llama.cpp's and
# llama-cpp-python's): the template describes the tools and the model writes its calls
# as text (Qwen's ``<tool_call>`` blocks, or bare JSON), which the server passes on as
# the answer's content; they are read out of it as the in-process model's are.
_CALLS_AS_TEXT = frozenset({"llamacpp"})


def _for_llama_servers(body: dict[str, Any], request: ChatRequest) -> None:
    """What llama servers need that OpenAI does not: an assistant message's content a
    string (llama-cpp-python's server answers 500 to ``null``), tool results worded as
    the in-process model gets them (``llama.said_result``), a schema as the
    ``json_object`` response format with its ``schema`` (the form both servers read), and
    ``cache_prompt``: llama.cpp's server then keeps the prompt's KV cache for the next
    request that shares its prefix (its default in recent builds, off in older ones;
    llama-cpp-python's server ignores it and always reuses the prefix of its last prompt).
    No ``id_slot``: left to itself, llama.cpp's server gives a request the idle slot whose
    cached prompt shares the most with it, which suits branches better than one slot a
    conversation (README, Providers)."""
    body["cache_prompt"] = True
    for message in body["messages"]:
        if message.get("tool_calls") and message.get("content") is None:
            message["content"] = ""
    if any(m.get("role") == "tool" for m in body["messages"]):
        from nbconvo.providers.llama import said_results  # results as small models read them

        said = iter(said_results(request.messages))
        for message in body["messages"]:
            if message.get("role") == "tool":
                message["content"] = next(said)
    if request.schema is not None:
        body["response_format"] = {"type": "json_object", "schema": request.schema.schema}


def _calls_in_text(
    events: Iterator[ProviderEvent], request: ChatRequest
) -> Iterator[ProviderEvent]:
    """``events`` with the tool calls written in the answer's text taken out of it."""
    from nbconvo.providers.llama import ToolCallText

    taken = {
        p.call_id
        for m in request.messages
        if not isinstance(m["content"], str)
        for p in m["content"]
        if isinstance(p, ToolCallPart)
    }
    reader = ToolCallText([t.name for t in request.tools], taken)
    try:
        for event in events:
            if type(event) is str:
                shown = reader.feed(event)
                if shown:
                    yield shown
            elif isinstance(event, Finish):
                rest = reader.end(event.reason)
                if rest:
                    yield rest
                if reader.calls and event.reason != "length":
                    yield from reader.calls
                    yield Finish("tool_calls")
                else:
                    yield event
            else:
                yield event
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


class OpenAICompatibleProvider(HTTPProvider):
    """Chat Completions over SSE. Subclasses decide the base URL, the URL and the key."""

    reads_documents = False  # OpenAI's and Azure's own services read PDFs; servers do not

    name = "openai-compatible"
    key_variable = KEYS["openai-compatible"].variable
    key_required = False
    service = "the server"
    _dropped: float | None = None  # the temperature last dropped, noted once
    _dropped_effort: str | None = None  # likewise the effort
    sends_cache_key = False  # prompt_cache_key: OpenAI's and Azure's own services
    _cache_key_refused = False  # the service answered 400 to it: sent no more
    # Servers that say their context window: vLLM (``max_model_len`` in ``GET /models``)
    # and llama.cpp (``n_ctx`` in ``GET /props``). OpenAI's list has no window; Ollama and
    # LM Studio report the model's trained length, not the one they run with.
    _ASKS_WINDOW = frozenset({"vllm", "llamacpp", "openai-compatible"})
    _window: int | None = None
    _window_asked = False

    @property
    def context_window(self) -> int | None:
        """The window the server reports, asked once (2 s at most); None if it says none."""
        if not self._window_asked:
            self._window_asked = True
            if self.prefix in self._ASKS_WINDOW:
                self._window = self._ask_window()
        return self._window

    def _ask_window(self) -> int | None:
        client, headers = self._sse().client, self.headers()
        try:
            answer = client.get(f"{self.base_url}/models", headers=headers, timeout=2.0)
            if answer.status_code == 200:
                models = [m for m in answer.json().get("data") or [] if isinstance(m, dict)]
                # The model asked for, or the only one served (names may differ).
                named = [m for m in models if m.get("id") == self.model]
                named = named or (models if len(models) == 1 else [])
                window = named[0].get("max_model_len") if named else None
                if isinstance(window, int) and window > 0:
                    return window
            root = self.base_url.removesuffix("/v1")
            answer = client.get(f"{root}/props", headers=headers, timeout=2.0)
            if answer.status_code == 200:
                settings = answer.json().get("default_generation_settings") or {}
                window = settings.get("n_ctx") if isinstance(settings, dict) else None
                if isinstance(window, int) and window > 0:
                    return window
        except (httpx.HTTPError, ValueError, AttributeError):
            pass  # says nothing usable: the table, or `%convo window N`, decides
        return None

    def resolve_base_url(self, explicit: str | None) -> str:
        return (explicit or self.default_base_url(self.environ)).rstrip("/")

    def default_base_url(self, env: Mapping[str, str]) -> str:
        url = env.get("NBCONVO_BASE_URL")
        if not url:
            raise ProviderError(
                f"no server address for {self.prefix}: run `%convo model {self.prefix}:MODEL "
                "--base-url http://HOST:PORT/v1` or set NBCONVO_BASE_URL"
            )
        return url

    def secret(self) -> str | None:
        return self.api_key()

    def api_key(self) -> str | None:
        if self.key_required:
            return self.key()
        return self.environ.get(self.key_variable) or None

    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def headers(self) -> dict[str, str]:
        key = self.api_key()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def body(self, request: ChatRequest) -> dict[str, Any]:
        # Text messages go as they are (no copy: a long history is thousands of them).
        messages: list[Any] = []
        for m in request.all_messages():
            if type(m["content"]) is str:
                messages.append(m)
            else:
                messages += openai_messages(m, self.label, self.reads_documents)
        body: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.tools:
            body["tools"] = openai_tools(request.tools)
        if request.schema is not None:
            body["response_format"] = openai_response_format(request.schema)
        if self.prefix in _CALLS_AS_TEXT:
            _for_llama_servers(body, request)
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            body["max_completion_tokens"] = request.max_tokens
            body["max_tokens"] = request.max_tokens
        if request.seed is not None:
            body["seed"] = request.seed
        if request.effort is not None:
            body["reasoning_effort"] = request.effort
        if request.cache is not None and self.sends_cache_key and not self._cache_key_refused:
            body["prompt_cache_key"] = request.cache.key
        return body

    def _describe_error(
        self, status: int, text: str, headers: Mapping[str, str]
    ) -> tuple[str, bool]:
        message, code = error_message_from_body(text)
        where = f"{self.prefix} ({status})"
        if status == 401:
            return (
                f"{where} rejected the API key: set {self.key_variable} to a valid key",
                False,
            )
        if status == 403:
            return (f"{where}: this key may not use {self.model!r} — {message}", False)
        if status == 404:
            names = ", ".join(known_names(self.prefix)) or "see the server's /models list"
            return (
                f"{where}: model {self.model!r} not found — {message} (known: {names})",
                False,
            )
        if status == 429 and code == "insufficient_quota":
            return (f"{where}: quota exhausted — check the account's plan and billing", False)
        if code == "context_length_exceeded":
            return (
                f"{where}: the prompt exceeds the model's context window — run "
                "`%convo compact` (or start a new branch with `%convo fork`)",
                False,
            )
        return (f"{where}: {message or 'request failed'}", status in RETRYABLE_STATUS)

    def stream(self, request: ChatRequest) -> Iterator[ProviderEvent]:
        events = self._events(request)
        if request.tools and self.prefix in _CALLS_AS_TEXT:
            events = _calls_in_text(events, request)
        try:
            yield from events
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()

    def _events(self, request: ChatRequest) -> Iterator[ProviderEvent]:
        spec = f"{self.prefix}:{request.model}"
        refuse_effort(request, spec)
        body = self.body(request)
        dropped: dict[str, Any] = {}
        if "temperature" in body and not accepts_sampling(spec):
            dropped["temperature"] = yield from self._drop_temperature(
                body, "the model takes no sampling parameters"
            )
        if (
            "reasoning_effort" in body
            and "tools" in body
            and _NO_EFFORT_WITH_TOOLS.match(request.model)
        ):
            dropped["effort"] = yield from self._drop_effort(
                body,
                "Chat Completions takes none beside tools for this model "
                f"(openai-responses:{request.model} takes both)",
            )
        yield from self._send(body, dropped)
        self._noted(dropped)

    def _send(self, body: dict[str, Any], dropped: dict[str, Any]) -> Iterator[ProviderEvent]:
        """Stream ``body``. A 400 that names a parameter ``_drop_rejected`` can do without
        (an unknown model that takes no temperature, say): drop it with a note and send
        once more."""
        try:
            yield from self._sse().stream(
                self.url(), body=body, headers=self.headers(), translate=self._translate
            )
        except HttpStatusError as error:
            if error.status != 400:
                raise
            if not (yield from self._drop_rejected(body, str(error).lower(), dropped)):
                raise
            yield from self._sse().stream(
                self.url(), body=body, headers=self.headers(), translate=self._translate
            )

    def _drop_rejected(
        self, body: dict[str, Any], said: str, dropped: dict[str, Any]
    ) -> Generator[ProviderEvent, None, bool]:
        """Drop the parameter a 400 (``said``) names, with a note; False if none."""
        if "temperature" in body and "temperature" in said:
            dropped["temperature"] = yield from self._drop_temperature(
                body, "the model rejected it"
            )
        elif "reasoning_effort" in body and "reasoning_effort" in said:
            dropped["effort"] = yield from self._drop_effort(body, "the model rejected it")
        elif "prompt_cache_key" in body and "prompt_cache_key" in said:
            body.pop("prompt_cache_key")
            self._cache_key_refused = True
            yield Notice(
                f"{self.label} refuses prompt_cache_key: sent without it (its caching, "
                "if any, stays automatic)"
            )
        else:
            return False
        return True

    def _noted(self, dropped: dict[str, Any]) -> None:
        """What was dropped is noted once the user has seen it (a failed turn shows none):
        the next turn that drops the same says nothing."""
        if "temperature" in dropped:
            self._dropped = dropped["temperature"]
        if "effort" in dropped:
            self._dropped_effort = dropped["effort"]

    def _drop_effort(self, body: dict[str, Any], why: str) -> Generator[ProviderEvent, None, str]:
        effort = str(body.pop("reasoning_effort"))
        if effort != self._dropped_effort:
            yield Notice(f"effort {effort} not sent to {self.label}: {why}")
        return effort

    def _drop_temperature(
        self, body: dict[str, Any], why: str
    ) -> Generator[ProviderEvent, None, float]:
        value = float(body.pop("temperature"))
        if value != self._dropped:
            yield Notice(f"temperature {value} not sent to {self.label}: {why}")
        return value

    def _translate(self, feed: EventFeed) -> Iterator[ProviderEvent]:
        # Runs once per token: the common chunk (one choice with a content delta) takes
        # the shortest path; everything else goes through ``_other``.
        finish: Finish | None = None
        usage: Usage | None = None
        calls: _ToolCalls | None = None  # made when the first call arrives
        done = False
        loads = json.loads
        events = iter(feed)
        for event in events:
            data = event.data
            try:
                chunk = loads(data)
            except ValueError:
                if data.startswith("[DONE]"):
                    done = True
                    # Read to the end of the body (as the OpenAI SDK does): a response
                    # closed before its end closes the connection, and the next turn
                    # would open a new one (a TLS handshake on a real API).
                    for _ in events:
                        pass
                    break
                if not data.strip():
                    continue
                parse_json_event(self.label, data)  # raises the one-line error
                continue
            if type(chunk) is not dict:
                continue
            if chunk.get("error"):
                raise self._stream_error(chunk["error"])
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta")  # Azure filter chunks carry no delta
                if delta:
                    text = delta.get("content") or delta.get("refusal")  # never both
                    if text:
                        yield text
                    if delta.get("tool_calls"):  # one lookup a token, beside its JSON decoding
                        calls = calls or _ToolCalls()
                        calls.add(delta["tool_calls"])
                reason = choice.get("finish_reason")
                if reason:
                    finish = Finish(_FINISH.get(reason, "other"))
                    if calls:
                        yield from calls.done()
                        # Some servers (Ollama, llama.cpp) end a turn of calls with "stop".
                        finish = Finish("tool_calls") if finish.reason == "stop" else finish
            reported = chunk.get("usage")
            if type(reported) is dict and "prompt_tokens" in reported:
                usage = chat_usage(reported)
                yield usage
        if finish is None and not done:
            raise ServiceError(
                f"{self.label}: the stream ended before the answer was complete", retryable=True
            )
        if calls:  # a server that said [DONE] and no finish reason
            yield from calls.done()
            finish = finish or Finish("tool_calls")
        if finish is not None:
            yield self._finish(finish, usage, calls is not None)

    def _finish(self, finish: Finish, usage: Usage | None, called: bool = False) -> Finish:
        if finish.reason == "tool_calls" and not called:
            return Finish("other", "the model stopped for a tool call but sent none")
        if finish.reason == "length":
            return Finish("length", length_notice(usage.output_tokens if usage else None))
        if finish.reason == "content_filter":
            return Finish(
                "content_filter",
                f"the answer was stopped by {self.service}'s content filter; rephrase the prompt",
            )
        return finish

    def _stream_error(self, error: Any) -> ServiceError:
        error = error if isinstance(error, dict) else {"message": str(error)}
        message = str(error.get("message") or "unknown error")
        kind = str(error.get("type") or error.get("code") or "")
        word = kind.lower().replace("_", "").replace("-", "")
        transient = word in _TRANSIENT_TYPES or not kind
        if kind.isdigit():  # Azure may send the HTTP status as the code
            transient = int(kind) in RETRYABLE_STATUS
        return ServiceError(f"{self.label} failed mid-answer: {message}", retryable=transient)


def chat_usage(reported: dict[str, Any]) -> Usage:
    """Chat Completions usage: the whole prompt, of it what was read from the cache and
    written to it, and the output with the tokens it spent reasoning."""
    prompt = reported.get("prompt_tokens_details")
    prompt = prompt if isinstance(prompt, dict) else {}
    completion = reported.get("completion_tokens_details")
    completion = completion if isinstance(completion, dict) else {}
    return Usage(
        int(reported.get("prompt_tokens") or 0),
        int(reported.get("completion_tokens") or 0),
        cached_input_tokens=int(prompt.get("cached_tokens") or 0),
        cache_write_tokens=int(prompt.get("cache_write_tokens") or 0),
        reasoning_tokens=int(completion.get("reasoning_tokens") or 0),
    )


class _ToolCalls:
    """The tool calls of one streamed answer, from their fragments: the first fragment of
    a call carries its ``index``, ``id`` and name, the next ones pieces of its arguments
    (a server may send a call whole, or leave out the index or the id)."""

    def __init__(self) -> None:
        self.calls: dict[int, tuple[str, str, list[str]]] = {}

    def __bool__(self) -> bool:
        return bool(self.calls)

    def add(self, fragments: Any) -> None:
        for fragment in fragments if isinstance(fragments, list) else ():
            if not isinstance(fragment, dict):
                continue
            index = fragment.get("index")
            if not isinstance(index, int):
                index = self._index_of(fragment.get("id"))
            function = fragment.get("function") or {}
            call_id, name, arguments = self.calls.get(index, ("", "", []))
            self.calls[index] = (
                call_id or str(fragment.get("id") or ""),
                name or str(function.get("name") or ""),
                arguments,
            )
            if function.get("arguments"):
                arguments.append(str(function["arguments"]))

    def _index_of(self, call_id: Any) -> int:
        """Where a fragment without an index goes: the call with its id, a new call for
        a new id, else the last call."""
        for index, (known, _, _) in self.calls.items():
            if call_id and known == call_id:
                return index
        if call_id or not self.calls:
            return len(self.calls)
        return max(self.calls)

    def done(self) -> Iterator[ToolCallPart]:
        """Each call, whole, in index order (an id made up where the server gave none);
        then none: a second finish reason yields nothing twice."""
        calls, self.calls = self.calls, {}
        for index in sorted(calls):
            call_id, name, arguments = calls[index]
            yield ToolCallPart(call_id or f"call_{index}", name, "".join(arguments) or "{}")


class OpenAIProvider(OpenAICompatibleProvider):
    name = "openai"
    reads_documents = True
    sends_cache_key = True
    key_variable = KEYS["openai"].variable
    key_required = True
    service = "OpenAI"

    def default_base_url(self, env: Mapping[str, str]) -> str:
        return base_url_from(None, env, ("OPENAI_BASE_URL",), OPENAI_BASE_URL)

    def body(self, request: ChatRequest) -> dict[str, Any]:
        body = super().body(request)
        body.pop("max_tokens", None)  # deprecated upstream; max_completion_tokens replaces it
        return body
