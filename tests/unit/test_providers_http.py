"""The shared pieces: retry hints, redaction, the model table, the provider registry, and
how a fast stream is read (against simulated networks: no clocks, no sockets)."""

from __future__ import annotations

import email.utils
import itertools
import time
from collections.abc import Iterator

import httpx
import pytest

from nbconvo._errors import ConfigurationError
from nbconvo._models import (
    DEFAULT_MAX_TOKENS,
    accepts_sampling,
    context_window,
    default_max_tokens,
    known_names,
    lookup,
    tokenizer_hint,
)
from nbconvo._settings import read_environment
from nbconvo.providers import PROVIDERS, create_provider, default_model_spec
from nbconvo.providers._http import (
    GATHER_S,
    EventFeed,
    _Gathering,
    error_message_from_body,
    parse_retry_after,
    redact,
    retry_delay_from_body,
)
from tests.support.provider_cases import CASES


def test_retry_after_ms_wins_over_seconds_and_dates() -> None:
    assert parse_retry_after({"retry-after-ms": "45190", "retry-after": "46"}) == 45.19
    assert parse_retry_after({"retry-after": "2.5"}) == 2.5
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < (parse_retry_after({"retry-after": soon}) or 0) <= 30
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert parse_retry_after({"retry-after": "soon-ish"}) is None
    assert parse_retry_after({}) is None


def test_google_retry_info() -> None:
    body = '{"error": {"code": 429, "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "41.5s"}]}}'
    assert retry_delay_from_body(body) == 41.5
    assert retry_delay_from_body("[" + body + "]") == 41.5
    assert retry_delay_from_body('{"error": {"message": "x"}}') is None
    assert retry_delay_from_body("not json") is None


@pytest.mark.parametrize(
    "secret",
    [
        "sk-ant-" + "api03-abcdefghijklmnop",  # split: no key-shaped literal in the repo
        "sk-proj-abcdefghijklmnop",
        "AIzaSyA1234567890abcdefghij",
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2dyYXBoIn0.c2lnbmF0dXJlX2hlcmU",
    ],
)
def test_redact_hides_every_key_shape(secret: str) -> None:
    assert secret not in redact(f"the key {secret} is wrong")
    assert redact("Authorization: Bearer abc.def") == "Authorization: [redacted]"
    assert redact("a plain azure key 0123456789abcdef", ("0123456789abcdef",)) == (
        "a plain azure key [redacted]"
    )


def test_stray_json_after_sse_events_is_found() -> None:
    body = b'data: {"a": 1}\r\n\r\n{\r\n  "error": {\r\n    "code": 503\r\n  }\r\n}\r\n'

    def response() -> httpx.Response:
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            stream=httpx.ByteStream(body),  # not yet read, as a response off the network
            request=httpx.Request("POST", "http://127.0.0.1:9/"),
        )

    feed = EventFeed(response(), keep_tail=True)
    assert [event.data for event in feed] == ['{"a": 1}']
    assert feed.stray_json() == {"error": {"code": 503}}
    plain = EventFeed(response())  # only Gemini pays for recording the body
    assert [event.data for event in plain] == ['{"a": 1}']
    assert plain.stray_json() is None


def test_model_table_prefixes_and_fallbacks() -> None:
    assert lookup("anthropic:claude-sonnet-5-20260630") == lookup("anthropic:claude-sonnet-5")
    assert lookup("azure:gpt-4o") == lookup("openai:gpt-4o")  # a deployment named after a model
    assert lookup("openai:gpt-5.6-sol") is not None and not accepts_sampling("openai:gpt-6-astra")
    assert accepts_sampling("openai:gpt-4.1") and accepts_sampling("openai:some-new-model")
    assert not accepts_sampling("anthropic:claude-anything-9")  # the API version refuses it
    assert context_window("anthropic:claude-anything-9") is None
    assert context_window("gemini:gemini-2.5-flash") == 1_048_576
    assert context_window("copilot:chat") is None and lookup("copilot:chat") is not None
    assert default_max_tokens("anthropic:claude-haiku-4-5") == 8_192
    assert default_max_tokens("anthropic:claude-opus-5-5") == 16_384
    assert default_max_tokens("anthropic:claude-new") == DEFAULT_MAX_TOKENS
    assert tokenizer_hint("openai:gpt-5.5") == "o200k_base"
    assert tokenizer_hint("gemini:gemini-3.5-flash") == "estimate"
    assert "claude-sonnet-5" in known_names("anthropic")


def test_every_model_row_is_well_formed() -> None:
    from nbconvo._models import KNOWN_MODELS

    for spec, info in KNOWN_MODELS.items():
        assert spec.partition(":")[0] in PROVIDERS, spec
        if info.context_window is not None and info.max_output is not None:
            assert info.max_output <= info.context_window, spec


def test_registry_has_every_cloud_provider() -> None:
    for case in CASES:
        assert case.spec.partition(":")[0] in PROVIDERS


@pytest.mark.parametrize(
    ("environment", "spec"),
    [
        ({"ANTHROPIC_API_KEY": "k"}, "anthropic:claude-sonnet-5-5"),
        ({"GEMINI_API_KEY": "k"}, "gemini:gemini-3.5-flash"),
        ({"GOOGLE_API_KEY": "k"}, "gemini:gemini-3.5-flash"),
        ({"OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k"}, "openai:gpt-5.5"),
        ({"NBCONVO_MODEL": "copilot:chat", "GEMINI_API_KEY": "k"}, "copilot:chat"),
    ],
)
def test_keys_choose_a_default_model(environment: dict[str, str], spec: str) -> None:
    settings, problems = read_environment(environment)
    assert default_model_spec(settings, environment) == spec and problems == []


@pytest.mark.parametrize(
    ("variable", "spec", "expected"),
    [
        ("OPENAI_BASE_URL", "openai:gpt-4.1", "http://gateway.test/v1"),
        ("ANTHROPIC_BASE_URL", "anthropic:claude-sonnet-5-5", "http://gateway.test/v1"),
        ("GEMINI_BASE_URL", "gemini:gemini-3.5-flash", "http://gateway.test/v1"),
        ("NBCONVO_M365_BASE_URL", "copilot:chat", "http://gateway.test/v1"),
        ("AZURE_OPENAI_ENDPOINT", "azure:dep", "http://gateway.test/v1"),
    ],
)
def test_base_urls_from_the_environment_and_the_option(
    variable: str, spec: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, "http://gateway.test/v1/")
    assert create_provider(spec).base_url == expected  # type: ignore[attr-defined]
    explicit = create_provider(spec, base_url="http://other.test/api")
    assert explicit.base_url == "http://other.test/api"  # type: ignore[attr-defined]


def test_unknown_prefix_lists_the_new_providers() -> None:
    with pytest.raises(ConfigurationError) as caught:
        create_provider("nope:x")
    for prefix in ("anthropic", "gemini", "azure", "copilot"):
        assert prefix in str(caught.value)


def test_an_html_error_page_is_summed_up_by_its_title() -> None:
    google = (
        "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n"
        "  <title>Error 502 (Server Error)!!1</title>\n  <style>*{margin:0}</style>\n"
        "  <p><b>502.</b> <ins>That’s an error.</ins>\n"
    )
    assert error_message_from_body(google) == (
        "an HTML error page (Error 502 (Server Error)!!1)",
        "",
    )
    bare = "<html><body><h1>502 Bad&nbsp;Gateway</h1><hr>nginx</body></html>"
    assert error_message_from_body(bare) == ("an HTML error page (502 Bad Gateway nginx)", "")
    assert error_message_from_body("upstream   connect error\n") == ("upstream connect error", "")
    assert error_message_from_body('{"error": {"message": "busy", "code": 503}}') == ("busy", "503")


class Network:
    """A simulated response body: event i is sent at ``sent[i]``; a read waits until one
    has arrived, takes ``READ_S`` and then holds every event that has arrived, handed out
    one piece each at no cost (as h11 hands out an HTTP body's chunks). With ``nagle``,
    the server sends an event only once the client has read the one before (Nagle's
    algorithm meeting a delayed ACK): each read holds a single event."""

    READ_S = 0.0002

    def __init__(self, gaps: list[float], *, nagle: bool = False) -> None:
        self.sent = list(itertools.accumulate(gaps))
        self.nagle = nagle
        self.now = 0.0
        self.reads = 0
        self.shown_at: list[float] = []  # when each event reached the reader

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def pieces(self) -> Iterator[bytes]:
        held: list[int] = []
        i = 0
        while i < len(self.sent) or held:
            if not held:
                self.now = max(self.now, self.sent[i]) + self.READ_S
                self.reads += 1
                while i < len(self.sent) and self.sent[i] <= self.now:
                    held.append(i)
                    i += 1
                    if self.nagle:
                        if i < len(self.sent):
                            self.sent[i] = max(self.sent[i], self.now)  # sent once this is read
                        break
            yield b"event %d" % held.pop(0)

    def read_all(self) -> tuple[list[bytes], _Gathering]:
        gathering = _Gathering(self.pieces(), clock=self.clock, sleep=self.sleep)
        got = []
        for piece in gathering:
            got.append(piece)
            self.shown_at.append(self.now)
        return got, gathering


def events(n: int) -> list[bytes]:
    return [b"event %d" % i for i in range(n)]


def test_a_fast_stream_is_read_in_fewer_larger_pieces_and_nothing_waits_long() -> None:
    network = Network([0.0005] * 2000)  # 2,000 tokens a second, each its own write
    got, gathering = network.read_all()
    assert got == events(2000)
    assert gathering.waits > 0
    assert network.reads < 2000 / 4  # a read takes ten events or so, not one
    late = [shown - sent for shown, sent in zip(network.shown_at, network.sent, strict=True)]
    assert max(late) <= GATHER_S + 2 * Network.READ_S  # no event is held back for long


def test_a_slow_stream_is_read_as_it_comes() -> None:
    network = Network([0.010] * 200)  # 100 tokens a second
    got, gathering = network.read_all()
    assert got == events(200)
    assert gathering.waits == 0
    assert network.reads == 200
    assert network.shown_at == [sent + Network.READ_S for sent in network.sent]


def test_a_server_that_waits_for_each_acknowledgement_is_read_as_it_comes() -> None:
    """Waiting gathers nothing from a server that sends one write per read (no
    TCP_NODELAY): after three such waits the response is read as it comes."""
    network = Network([0.0] * 500, nagle=True)
    got, gathering = network.read_all()
    assert got == events(500)
    assert network.reads == 500
    assert gathering.waits == 3


def test_a_pause_in_a_fast_stream_is_read_as_it_comes_and_then_gathered_again() -> None:
    gaps = [0.0005] * 400 + [0.5] + [0.0005] * 400  # a tool call, a slow thought...
    network = Network(gaps)
    got, _ = network.read_all()
    assert got == events(801)
    assert network.reads < 801 / 4
    assert network.shown_at[400] == network.sent[400] + Network.READ_S  # not held back


def test_a_short_answer_is_read_as_it_comes() -> None:
    """An answer that is all there within 20 ms (a short one from a fast server) is
    never waited for: waiting could only make it later."""
    network = Network([0.00001] * 300)
    got, gathering = network.read_all()
    assert got == events(300)
    assert gathering.waits == 0
