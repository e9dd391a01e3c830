"""Shared HTTP plumbing for providers: one httpx client, retries before the first byte,
SSE decoding (httpx-sse), and error messages that name the fix and never a key."""

from __future__ import annotations

import email.utils
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
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

from nbconvo._errors import ConfigurationError, ProviderError

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
MAX_RETRY_AFTER = 60.0
_KEYLIKE = re.compile(r"(sk-[A-Za-z0-9_\-*]{6,}|AIza[0-9A-Za-z_\-]{10,}|Bearer\s+\S+)")


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Remove every secret and anything shaped like a key from text shown to users."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _KEYLIKE.sub("[redacted]", text)


class HttpStatusError(ProviderError):
    """A non-2xx answer before any text. ``retry_after`` is the server's hint in seconds."""

    def __init__(self, message: str, *, status: int, retry_after: float | None, retryable: bool):
        super().__init__(message, status=status)
        self.retry_after = retry_after
        self.retryable = retryable


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
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return max(0.0, parsed.timestamp() - time.time())


def _wait(state: RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome else None
    hint = getattr(error, "retry_after", None)
    if isinstance(hint, float) and 0 < hint <= MAX_RETRY_AFTER:
        return hint
    backoff: float = wait_exponential_jitter(initial=0.5, max=8.0, jitter=0.25)(state)
    return backoff


def _retryable(error: BaseException) -> bool:
    if isinstance(error, HttpStatusError):
        return error.retryable
    return isinstance(error, httpx.TransportError)


def max_retries() -> int:
    try:
        return max(0, int(os.environ.get("NBCONVO_MAX_RETRIES", "2")))
    except ValueError:
        return 2


class SSEStream:
    """POST a JSON body and iterate server-sent events, retrying before the first byte."""

    def __init__(
        self,
        *,
        label: str,
        describe_error: Callable[[int, str, Mapping[str, str]], tuple[str, bool]],
        secrets: tuple[str, ...] = (),
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> None:
        self.label = label
        self.describe_error = describe_error
        self.secrets = secrets
        self.client = httpx.Client(
            transport=transport,
            timeout=timeout or httpx.Timeout(connect=10.0, read=120.0, write=30.0, pool=10.0),
        )

    def events(
        self, url: str, *, body: dict[str, Any], headers: Mapping[str, str]
    ) -> Iterator[httpx_sse.ServerSentEvent]:
        request = self.client.build_request(
            "POST",
            url,
            json=body,
            headers={**headers, "Accept": "text/event-stream", "Cache-Control": "no-store"},
        )
        retrying = Retrying(
            stop=stop_after_attempt(max_retries() + 1),
            wait=_wait,
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        try:
            response = retrying(self._open, request)
        except httpx.TransportError as error:
            raise ProviderError(
                f"could not reach {self.label} at {request.url.copy_with(query=None)}: "
                f"{type(error).__name__}; check the base URL and that the server is running"
            ) from None
        try:
            yield from httpx_sse.EventSource(response).iter_sse()
        except httpx_sse.SSEError as error:
            raise ProviderError(f"{self.label} did not answer with a stream: {error}") from None
        except httpx.TransportError as error:
            raise ProviderError(
                f"the connection to {self.label} broke mid-answer ({type(error).__name__})"
            ) from None
        finally:
            response.close()

    def _open(self, request: httpx.Request) -> httpx.Response:
        response = self.client.send(request, stream=True)
        if response.status_code < 400:
            return response
        try:
            text = response.read().decode("utf-8", "replace")
        finally:
            response.close()
        message, retryable = self.describe_error(response.status_code, text, response.headers)
        raise HttpStatusError(
            redact(message, self.secrets),
            status=response.status_code,
            retry_after=parse_retry_after(response.headers),
            retryable=retryable,
        )


def error_message_from_body(text: str) -> tuple[str, str]:
    """(message, code-or-type) from the common ``{"error": {...}}`` body shapes."""
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:300], ""
    if isinstance(data, list) and data:
        data = data[0]
    error = data.get("error", data) if isinstance(data, dict) else {}
    if not isinstance(error, dict):
        return str(error)[:300], ""
    message = str(error.get("message") or "").strip()
    code = str(error.get("code") or error.get("type") or error.get("status") or "")
    return message[:300], code


# Keys typed in with `%convo key`: kept in this process's memory only, never saved.
TYPED_KEYS: dict[str, str] = {}


def require_key(variable: str, label: str, environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    key = TYPED_KEYS.get(variable) or env.get(variable, "").strip()
    if not key:
        raise ConfigurationError(
            f"no API key for {label}: set the environment variable {variable} "
            f"(or run `%convo key {label.split()[0].lower()}` to type it in)"
        )
    return key
