"""Shared HTTP plumbing for providers: one httpx client, retries before the first text,
SSE decoding (httpx-sse), and error messages that name the fix and never a key.

Retry policy (all providers): 408, 409, 429, 5xx and 529 answers, in-stream errors the
provider marks transient, and connection errors are retried while no text has reached
the user, with jittered exponential backoff (tenacity) that honours ``retry-after-ms``,
``Retry-After`` (seconds or an HTTP date) and Google's ``RetryInfo.retryDelay``. 400,
401, 403, 404 and quota exhaustion are never retried; a server that asks for a longer
wait than ``NBCONVO_RETRY_MAX_WAIT`` seconds (default 60, see ``_settings``) is not
retried either, and the
error says how long it asked for. A failure after text (or a reasoning
model's thinking) arrived raises ``StreamInterrupted`` carrying the partial answer.
"""

from __future__ import annotations

import email.utils
import html
import itertools
import json
import logging
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import httpx
import httpx_sse
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from nbconvo._credentials import key_for
from nbconvo._errors import ConfigurationError, ProviderError, StreamInterrupted
from nbconvo._settings import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_RETRY_MAX_WAIT,
    Settings,
    process_settings,
)
from nbconvo._types import ProviderEvent, ThinkingDelta

log = logging.getLogger("nbconvo.providers")

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
NEVER_RETRY_STATUS = frozenset({400, 401, 403, 404})
_KEYLIKE = re.compile(
    r"(sk-[A-Za-z0-9_\-*]{6,}|AIza[0-9A-Za-z_\-]{10,}|Bearer\s+\S+"
    r"|eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*)"
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Remove every secret and anything shaped like a key or token from text for users."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _KEYLIKE.sub("[redacted]", text)


class ServiceError(ProviderError):
    """The service reported a failure. ``retryable`` says whether trying again may help;
    ``retry_after`` is the server's hint in seconds."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, status=status)
        self.retryable = retryable
        self.retry_after = retry_after


class HttpStatusError(ServiceError):
    """A non-2xx answer before any text."""

    def __init__(self, message: str, *, status: int, retry_after: float | None, retryable: bool):
        super().__init__(message, retryable=retryable, retry_after=retry_after, status=status)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """``retry-after-ms`` first, then ``retry-after`` as seconds or as an HTTP date."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return float(value) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, parsed.timestamp() - time.time())


def retry_delay_from_body(text: str) -> float | None:
    """Google's ``google.rpc.RetryInfo`` detail: ``{"retryDelay": "41.5s"}``."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if isinstance(data, list) and data:
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            match = _DURATION.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def _waiter(cap: float) -> Callable[[RetryCallState], float]:
    """The wait before the next attempt: the server's hint, else jittered backoff; at
    most ``cap`` seconds."""
    backoff = wait_exponential_jitter(
        initial=min(0.5, cap), max=min(8.0, cap), jitter=min(0.25, cap)
    )

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        hint = getattr(error, "retry_after", None)
        if isinstance(hint, float) and hint > 0:
            return min(hint, cap)
        return float(backoff(state))

    return wait


def _retryable(error: BaseException) -> bool:
    if isinstance(error, ServiceError):
        return error.retryable
    return isinstance(error, httpx.TransportError)


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    reason = str(error) if isinstance(error, ProviderError) else type(error).__name__
    log.info("retry %d in %.3f s after: %s", state.attempt_number, wait, reason)


class EventFeed:
    """The server-sent events of one response, plus the raw tail of the body.

    Gemini reports a failure after the stream started as bare JSON lines without
    ``data:``; the SSE decoder rightly skips them, so ``stray_json`` looks for them in
    the last few kilobytes the server sent.
    """

    def __init__(self, response: httpx.Response, *, keep_tail: bool = False) -> None:
        self._tail: deque[bytes] = deque(maxlen=64)
        self._response = response
        # Wrapping the response's own byte stream (one step per piece of the body), so
        # the body is still decoded only once.
        stream: httpx.SyncByteStream = response.stream  # type: ignore[assignment]
        if keep_tail:  # record what the server sends
            stream = _Recording(stream, self._tail)
        response.stream = _Gathering(stream)

    def __iter__(self) -> Iterator[httpx_sse.ServerSentEvent]:
        return httpx_sse.EventSource(self._response).iter_sse()

    def stray_json(self) -> Any:
        """The JSON object the server sent outside any ``data:`` field, if any (only a
        feed made with ``keep_tail`` records the body)."""
        text = b"".join(self._tail)[-8192:].decode("utf-8", "replace")
        lines = [
            line
            for line in text.splitlines()
            if line.strip() and not line.startswith(("data:", "event:", "id:", "retry:", ":"))
        ]
        for start in range(len(lines)):
            try:
                return json.loads("\n".join(lines[start:]))
            except ValueError:
                continue
        return None


class _Recording(httpx.SyncByteStream):
    """A response's byte stream that keeps the last kilobytes of each read in ``tail``."""

    def __init__(self, inner: httpx.SyncByteStream, tail: deque[bytes]) -> None:
        self._inner = inner
        self._tail = tail

    def __iter__(self) -> Iterator[bytes]:
        tail = self._tail
        for chunk in self._inner:
            tail.append(chunk[-4096:])
            yield chunk

    def close(self) -> None:
        self._inner.close()


# How long a fast stream gathers between reads (see ``_Gathering``).
GATHER_S = 0.005
# A chunk that took less than this came out of bytes already read (no wait on the network).
_BUFFERED_S = 0.0001
# A body is gathered only once it has been coming for this long: a short answer is read
# as it comes, so waiting never makes it later.
GATHER_AFTER_S = 0.02
# After this many waits in a row that gathered a single piece, a response is read as it comes.
_IDLE_WAITS = 3


class _Gathering(httpx.SyncByteStream):
    """A response's byte stream read in fewer, larger pieces when it comes fast.

    A fast model sends a token every half millisecond, each its own network write; read
    as they come, every token costs the kernel a wakeup, a read and a pass of httpx's
    and h11's machinery: as much CPU as everything else done with it. So when a read had
    to wait for its bytes, but less than ``GATHER_S``, the next read waits ``GATHER_S``
    first and takes what arrived meanwhile in one piece (ten tokens at 2,000 a second).
    A slower stream (a token every 5 ms or more: most models) is read as it comes. A
    server that sends its next write only once the last is acknowledged (Nagle's
    algorithm: no ``TCP_NODELAY``) gives no more after a wait than before: after three
    waits in a row that gathered a single piece, this response is read as it comes. The
    wait adds at most 5 ms before a token is shown; the display shows one update every
    50 ms at most anyway. A body is gathered only once it has been coming for 20 ms, so
    a short answer is never made later by a wait. (The pieces are the HTTP body's
    chunks, several to a network read; tests/unit/test_providers_http.py runs it against
    simulated networks.)"""

    def __init__(
        self,
        inner: Iterable[bytes],
        pause: float = GATHER_S,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._inner = inner
        self._pause = pause
        self._clock, self._sleep = clock, sleep
        self.waits = 0  # how many times it waited

    def __iter__(self) -> Iterator[bytes]:
        pause, clock, sleep = self._pause, self._clock, self._sleep
        reads = iter(self._inner)
        first: float | None = None  # when the first piece came
        waited_last = False  # the last piece came right after a wait of ours
        waited_any = False  # a wait of ours came before the pieces counted in gathered
        gathered = 0  # pieces since then that came without waiting on the network
        idle = 0  # waits in a row that gathered a single piece
        while True:
            started = clock()
            chunk = next(reads, None)
            if chunk is None:
                return
            now = clock()
            took = now - started
            if first is None:
                first = now
            if waited_last or took < _BUFFERED_S:
                waited_last = False
                gathered += 1
                yield chunk
                continue
            if waited_any:
                idle = idle + 1 if gathered <= 1 else 0
                if idle == _IDLE_WAITS:
                    pause = 0.0  # waits gather nothing: read as it comes from now on
            waited_any = False
            gathered = 0
            yield chunk
            if took < pause and now - first >= GATHER_AFTER_S:
                self.waits += 1
                sleep(pause)
                waited_last = waited_any = True

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


Translate = Callable[[EventFeed], Iterator[ProviderEvent]]
DescribeError = Callable[[int, str, Mapping[str, str]], tuple[str, bool]]


class SSEStream:
    """POST a JSON body and stream provider events, retrying while no text has arrived."""

    def __init__(
        self,
        *,
        label: str,
        describe_error: DescribeError,
        secrets: tuple[str, ...] = (),
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | None = None,
        client: httpx.Client | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_wait: float = DEFAULT_RETRY_MAX_WAIT,
    ) -> None:
        self.label = label
        self.max_retries = max_retries
        self.max_wait = max_wait
        self.describe_error = describe_error
        self.secrets = secrets
        # Each request carries the timeout, so a shared client serves every provider.
        self.timeout = timeout or httpx.Timeout(connect=10.0, read=120.0, write=30.0, pool=10.0)
        self._owns_client = client is None
        self.client = client if client is not None else httpx.Client(transport=transport)

    def close(self) -> None:
        """Close the client if this stream made it (a shared one is its owner's to close)."""
        if self._owns_client:
            self.client.close()

    def _retrying(self) -> Retrying:
        return Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=_waiter(self.max_wait),
            retry=retry_if_exception(_retryable),
            before_sleep=_log_retry,
            reraise=True,
        )

    def stream(
        self,
        url: str,
        *,
        body: dict[str, Any],
        headers: Mapping[str, str],
        translate: Translate,
        keep_tail: bool = False,
    ) -> Iterator[ProviderEvent]:
        """Events from ``translate`` over the response's SSE. Failures before the first
        text are retried; after it they raise ``StreamInterrupted`` with the text so far.
        ``keep_tail`` keeps the end of the raw body for ``EventFeed.stray_json``."""
        request = self.client.build_request(
            "POST",
            url,
            json=body,
            headers={**headers, "Accept": "text/event-stream", "Cache-Control": "no-store"},
            timeout=self.timeout,
        )
        try:
            head, rest, response = self._retrying()(self._until_text, request, translate, keep_tail)
        except httpx.TransportError as error:
            raise self._unreachable(request, error) from None
        except ProviderError as error:
            raise self._redacted(error) from None
        parts: list[str] = []
        try:
            for event in itertools.chain(head, rest):
                if type(event) is str:
                    parts.append(event)
                yield event
        except httpx.TransportError as error:
            raise StreamInterrupted(
                f"the connection to {self.label} broke mid-answer ({type(error).__name__})",
                partial="".join(parts),
            ) from None
        except ProviderError as error:
            raise StreamInterrupted(
                redact(str(error), self.secrets), partial="".join(parts), status=error.status
            ) from None
        finally:
            close = getattr(rest, "close", None)  # a generator: stop it before the socket
            if close is not None:
                close()
            response.close()

    def _until_text(
        self, request: httpx.Request, translate: Translate, keep_tail: bool
    ) -> tuple[list[ProviderEvent], Iterator[ProviderEvent], httpx.Response]:
        # One attempt: open, then read events up to the first text or thinking (or the
        # end): a reasoning model may think for minutes, shown as it comes, before its text.
        response = self._open(request)
        events = translate(EventFeed(response, keep_tail=keep_tail))
        head: list[ProviderEvent] = []
        try:
            for event in events:
                head.append(event)
                if type(event) is str or type(event) is ThinkingDelta:
                    break
        except httpx_sse.SSEError as error:
            response.close()
            raise ProviderError(f"{self.label} did not answer with a stream: {error}") from None
        except BaseException:
            response.close()
            raise
        return head, events, response

    def post_json(self, url: str, *, body: dict[str, Any], headers: Mapping[str, str]) -> Any:
        """POST and return the decoded JSON answer, with the same retries and errors."""
        request = self.client.build_request(
            "POST", url, json=body, headers=headers, timeout=self.timeout
        )

        def attempt() -> Any:
            response = self._open(request)
            try:
                return json.loads(response.read())
            except ValueError:
                raise ProviderError(f"{self.label} answered with something not JSON") from None
            finally:
                response.close()

        try:
            return self._retrying()(attempt)
        except httpx.TransportError as error:
            raise self._unreachable(request, error) from None
        except ProviderError as error:
            raise self._redacted(error) from None

    def _open(self, request: httpx.Request) -> httpx.Response:
        response = self.client.send(request, stream=True)
        if response.status_code < 400:
            return response
        try:
            text = response.read().decode("utf-8", "replace")
        finally:
            response.close()
        status = response.status_code
        message, retryable = self.describe_error(status, text, response.headers)
        hint = parse_retry_after(response.headers) or retry_delay_from_body(text)
        should = response.headers.get("x-should-retry")
        if should == "false":
            retryable = False
        elif should == "true":
            retryable = True
        if status in NEVER_RETRY_STATUS:
            retryable = False
        if retryable and hint is not None and hint > self.max_wait:
            retryable = False
            message = f"{message}; the server asks to wait {hint:.0f} s — try again later"
        raise HttpStatusError(
            redact(message, self.secrets), status=status, retry_after=hint, retryable=retryable
        )

    def _unreachable(self, request: httpx.Request, error: httpx.TransportError) -> ProviderError:
        if isinstance(error, httpx.ConnectError):
            where = request.url.copy_with(query=None)
            return ProviderError(
                f"could not reach {self.label} at {where}: {type(error).__name__}; "
                "check the base URL and that the server is running"
            )
        return ProviderError(
            f"the connection to {self.label} failed ({type(error).__name__}) "
            f"after {self.max_retries + 1} attempts; try again"
        )

    def _redacted(self, error: ProviderError) -> ProviderError:
        if error.args:
            error.args = (redact(str(error.args[0]), self.secrets), *error.args[1:])
        return error


class HTTPProvider:
    """What every HTTP provider shares: its settings, its label, the key it sends and one
    ``SSEStream`` (built on first use, so a missing key fails the turn, not the setup).
    Subclasses set the key variable and where the base URL comes from, and describe
    their service's errors."""

    name = ""
    key_variable = ""
    base_url_variables: tuple[str, ...] = ()  # environment variables naming the base URL
    vendor_base_url = ""

    def __init__(
        self,
        *,
        prefix: str,
        model: str,
        base_url: str | None = None,
        transport: httpx.BaseTransport | None = None,
        environ: Mapping[str, str] | None = None,
        client: httpx.Client | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.settings = settings if settings is not None else process_settings()
        self.prefix = prefix
        self.model = self.model_name(model)
        self.transport = transport
        self.client = client  # the session's, when it gives one; else the stream makes its own
        self.base_url = self.resolve_base_url(base_url)
        self._stream: SSEStream | None = None

    def model_name(self, model: str) -> str:
        """The model as this service names it."""
        return model

    def resolve_base_url(self, explicit: str | None) -> str:
        """``--base-url``, else the first set variable, else the vendor's address."""
        return base_url_from(explicit, self.environ, self.base_url_variables, self.vendor_base_url)

    @property
    def label(self) -> str:
        return f"{self.prefix}:{self.model}"

    def key(self) -> str:
        """The key or token to send, or a one-line error naming the variable to set."""
        return require_key(self.key_variable, self.prefix, self.environ)

    def secret(self) -> str | None:
        """What to redact from every error: the key, where one is sent."""
        return self.key()

    def _describe_error(
        self, status: int, text: str, headers: Mapping[str, str]
    ) -> tuple[str, bool]:
        raise NotImplementedError

    def _sse(self) -> SSEStream:
        if self._stream is None:
            key = self.secret()
            self._stream = SSEStream(
                label=self.label,
                describe_error=self._describe_error,
                secrets=(key,) if key else (),
                transport=self.transport,
                client=self.client,
                max_retries=self.settings.max_retries,
                max_wait=self.settings.retry_max_wait,
            )
        return self._stream

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


def error_message_from_body(text: str) -> tuple[str, str]:
    """(message, code-or-type) from the common ``{"error": {...}}`` body shapes."""
    try:
        data = json.loads(text)
    except ValueError:
        return _plain_text_error(text), ""
    if isinstance(data, list) and data:
        data = data[0]
    error = data.get("error", data) if isinstance(data, dict) else {}
    if not isinstance(error, dict):
        return clip(str(error)), ""
    message = str(error.get("message") or "").strip()
    code = str(error.get("code") or error.get("type") or error.get("status") or "")
    return clip(message), code


def clip(text: str, limit: int = 600) -> str:
    """A service's message on one line: whole unless very long, then cut at a word and
    marked, never mid-word."""
    line = " ".join(text.split())
    if len(line) <= limit:
        return line
    return line[:limit].rsplit(" ", 1)[0] + " …"


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")


def _plain_text_error(text: str) -> str:
    """A body that is not JSON: a proxy's or front end's HTML page is summed up by its
    title (or its text), never shown as markup."""
    stripped = text.strip()
    if stripped.startswith("<") or "<html" in stripped[:512].lower():
        title = _TITLE.search(stripped)
        words = _TAG.sub(" ", title.group(1) if title else stripped)
        summary = " ".join(html.unescape(words).split())[:200]
        return f"an HTML error page ({summary})" if summary else "an HTML error page"
    return clip(stripped)


def parse_json_event(label: str, data: str) -> Any:
    """One SSE ``data`` value as JSON, or a one-line error naming the provider."""
    try:
        return json.loads(data)
    except ValueError:
        raise ProviderError(f"{label} sent a malformed stream chunk: {data[:80]!r}") from None


def base_url_from(
    explicit: str | None, environ: Mapping[str, str], variables: tuple[str, ...], default: str
) -> str:
    """``--base-url``, else the first set environment variable, else the vendor's URL."""
    for candidate in (explicit, *(environ.get(v) for v in variables)):
        if candidate and candidate.strip():
            return candidate.strip().rstrip("/")
    return default


def require_key(
    variable: str,
    label: str,
    environ: Mapping[str, str] | None = None,
    *,
    alternatives: tuple[str, ...] = (),
) -> str:
    for name in (variable, *alternatives):
        key = key_for(name, environ)
        if key:
            return key
    also = "".join(f" (or {name})" for name in alternatives)
    raise ConfigurationError(
        f"no API key for {label}: set the environment variable {variable}{also} "
        f"(or run `%convo key {label.split()[0].lower()}` to type it in)"
    )
