"""Faults injected at the socket under a real %%turn, on every wire format nbconvo speaks
(OpenAI, Anthropic, Gemini, Azure OpenAI, Microsoft 365 Copilot): 429 with each retry
hint the service sends (``retry-after-ms``, ``retry-after`` in seconds or as a date,
Gemini's ``RetryInfo``), 500/502/503 (and 529 on Anthropic), resets and cuts after K
bytes, stalls past the read timeout, malformed SSE, a missing end, in-stream errors, an
event split across TCP writes at every byte boundary, a 10 MB answer. For each: retried
when safe (and then answered), otherwise one line; a partial answer is kept as an
``error`` turn; the tree's invariants hold; the next turn works.

tests/unit/test_providers_errors.py checks each provider's own error shapes at the provider
level; this file checks what the user is left with, through the magic."""

from __future__ import annotations

import base64
import email.utils
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from IPython.core.interactiveshell import InteractiveShell

import nbconvo
from nbconvo.providers._http import SSEStream
from tests.support import reliability_counts as counts
from tests.support.fakes.fault_server import (
    COPILOT_ID,
    WIRES,
    Fault,
    FaultServer,
    answer_events,
    echo,
    first_text_offset,
    gemini_rate_limited,
    text_before,
)
from tests.support.provider_cases import clean_environment

READ_TIMEOUT = 0.4  # for the tests of a stall: short, so a stall is quick to test
STALL = 3 * READ_TIMEOUT
# Every other test: a read timeout no busy machine reaches between two writes, so a slow
# scheduler can never turn a scripted fault into an unscripted retry.
GENEROUS_READ_TIMEOUT = 60.0
_READ = {"timeout": GENEROUS_READ_TIMEOUT}


def _jwt() -> str:
    part = base64.urlsafe_b64encode(b'{"typ":"JWT","fault":1}').decode().rstrip("=")
    return f"{part}.{part}.c2ln"


# Fake keys, built at run time: no key-shaped literal in the repository.
KEYS = {
    "openai": "sk-" + "fault-test-0000000000000000",
    "anthropic": "sk-" + "ant-fault-test-000000",
    "gemini": "AI" + "za" + "FaultTest00000000000000000000",
    "azure": "fault-azure-key-" + "0" * 16,
    "copilot": _jwt(),
}
SPECS = {
    "openai": "openai:gpt-test",
    "anthropic": "anthropic:claude-sonnet-5-5",
    "gemini": "gemini:gemini-3.5-flash",
    "azure": "azure:gpt-4o-prod",
    "azure-v1": "azure:gpt-4o-prod",
    "copilot": "copilot:chat",
}


def environment(wire: str, server: FaultServer) -> dict[str, str]:
    root = server.root_url
    return {
        "openai": {"OPENAI_API_KEY": KEYS["openai"], "OPENAI_BASE_URL": root + "/v1"},
        "anthropic": {"ANTHROPIC_API_KEY": KEYS["anthropic"], "ANTHROPIC_BASE_URL": root},
        "gemini": {"GEMINI_API_KEY": KEYS["gemini"], "GEMINI_BASE_URL": root},
        # the classic deployment URL with api-version, and the v1 style
        "azure": {"AZURE_OPENAI_API_KEY": KEYS["azure"], "AZURE_OPENAI_ENDPOINT": root},
        "azure-v1": {"AZURE_OPENAI_API_KEY": KEYS["azure"], "AZURE_OPENAI_ENDPOINT": root + "/openai/v1"},
        "copilot": {"NBCONVO_M365_TOKEN": KEYS["copilot"], "NBCONVO_M365_BASE_URL": root + "/beta"},
    }[wire]


def patch_read_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """The read timeout nbconvo uses (120 s) replaced by ``_READ["timeout"]``: generous,
    unless a test of a stall calls ``reads_time_out_quickly``."""
    original = SSEStream.__init__
    _READ["timeout"] = GENEROUS_READ_TIMEOUT

    def init(self: SSEStream, **kwargs: Any) -> None:
        read = _READ["timeout"]
        kwargs["timeout"] = httpx.Timeout(connect=10.0, read=read, write=10.0, pool=10.0)
        original(self, **kwargs)

    monkeypatch.setattr(SSEStream, "__init__", init)


def reads_time_out_quickly(faults: list[Fault]) -> None:
    """A test of a stall: the stall lasts 3× a short read timeout (call before the first
    turn: the provider keeps the timeout it was built with)."""
    if any(f.kind == "stall" for f in faults):
        _READ["timeout"] = READ_TIMEOUT


@pytest.fixture
def server(shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultServer]:
    clean_environment(monkeypatch)  # retry waits capped at 0.05 s
    patch_read_timeout(monkeypatch)
    with FaultServer() as fake:
        yield fake
    counts.add("faults injected", fake.faults_served)
    for wire, n in fake.faults_by_wire.items():
        counts.add(f"faults injected: {wire}", n)


def connect(
    shell: InteractiveShell, server: FaultServer, monkeypatch: pytest.MonkeyPatch, wire: str
) -> None:
    for name, value in environment(wire, server).items():
        monkeypatch.setenv(name, value)
    assert shell.run_cell(f"%convo model {SPECS[wire]}").success


class Result:
    def __init__(self, success: bool, text: str) -> None:
        self.success = success
        self.text = text


def turn(shell: InteractiveShell, capsys: pytest.CaptureFixture[str], prompt: str, cell: str) -> Result:
    capsys.readouterr()
    result = shell.run_cell(f"%%turn\n{prompt}", cell_id=cell)
    out = capsys.readouterr()
    return Result(result.success, (out.out + out.err).strip())


def http_date(delay: float) -> str:
    return email.utils.formatdate(time.time() + delay, usegmt=True)


RETRIED = "retried"  # the turn succeeds after the faults
ONE_LINE = "one-line"  # a one-line error; nothing recorded
PARTIAL = "partial"  # a one-line error; the partial answer kept as an error turn

EXPECTED_TWO = echo([{"role": "user", "content": p} for p in ("one", "two")])
# The second turn's Copilot reply (its conversation ids all have COPILOT_ID's length).
SECOND = {"copilot": {"conversation": COPILOT_ID, "prompt": "two", "turns": 2}}

Scenario = tuple[str, list[Fault], str, int]  # id, faults for the turn, outcome, requests sent

RETRY_HINTS: dict[str, list[Scenario]] = {
    "openai": [
        ("429-retry-after-ms", [Fault("status", 429, {"retry-after-ms": "20"})], RETRIED, 2),
        ("429-retry-after-seconds", [Fault("status", 429, {"retry-after": "0.02"})], RETRIED, 2),
        ("429-retry-after-http-date", [Fault("status", 429, {"retry-after": http_date(0)})], RETRIED, 2),
        ("429-asks-for-an-hour", [Fault("status", 429, {"retry-after": "3600"})], ONE_LINE, 1),
        ("429-x-should-retry-false", [Fault("status", 429, {"x-should-retry": "false"})], ONE_LINE, 1),
    ],
    "anthropic": [
        ("429-retry-after-seconds", [Fault("status", 429, {"retry-after": "0.02"})], RETRIED, 2),
        ("429-retry-after-ms", [Fault("status", 429, {"retry-after-ms": "20"})], RETRIED, 2),
        ("429-asks-for-an-hour", [Fault("status", 429, {"retry-after": "3600"})], ONE_LINE, 1),
        ("529", [Fault("status", 529)], RETRIED, 2),
        ("529-past-the-retry-limit", [Fault("status", 529)] * 3, ONE_LINE, 3),
    ],
    "gemini": [
        ("429-retry-info", [Fault("status", 429, body=gemini_rate_limited("0.02s"))], RETRIED, 2),
        ("429-retry-info-asks-for-an-hour", [Fault("status", 429, body=gemini_rate_limited("3600s"))], ONE_LINE, 1),
        (
            "429-daily-quota",
            [Fault("status", 429, body=gemini_rate_limited("40s", "GenerateRequestsPerDayPerProjectPerModel"))],
            ONE_LINE,
            1,
        ),
        # Google's front end answers a 502 with an HTML page, not JSON
        ("502-html-past-the-retry-limit", [Fault("status", 502, body="<!DOCTYPE html>\n<title>Error 502 (Server Error)!!1</title>\n<p>That's an error.</p>\n")] * 3, ONE_LINE, 3),
    ],
    "azure": [
        ("429-retry-after-ms", [Fault("status", 429, {"retry-after-ms": "20"})], RETRIED, 2),
        ("429-retry-after-seconds", [Fault("status", 429, {"retry-after": "0"})], RETRIED, 2),
        ("429-both-headers", [Fault("status", 429, {"retry-after-ms": "20", "retry-after": "1"})], RETRIED, 2),
        ("429-asks-for-an-hour", [Fault("status", 429, {"retry-after-ms": "3600000"})], ONE_LINE, 1),
    ],
    "copilot": [
        ("429-Retry-After", [Fault("status", 429, {"Retry-After": "0"})], RETRIED, 2),
        ("429-Retry-After-http-date", [Fault("status", 429, {"Retry-After": http_date(0)})], RETRIED, 2),
        ("429-asks-for-an-hour", [Fault("status", 429, {"Retry-After": "3600"})], ONE_LINE, 1),
    ],
}
IN_STREAM_TYPE = {"anthropic": "overloaded_error"}  # the others: a server error


def scenarios(wire: str) -> list[Scenario]:
    """Every fault kind on ``wire``, at the offsets of its own framing."""
    if wire == "azure-v1":  # the same stream on another URL: a few faults
        chosen = ("429-retry-after-ms", "reset-mid-answer", "cut-mid-answer", "stream-error-before-text")
        return [s for s in scenarios("azure") if s[0] in chosen]
    first = first_text_offset(EXPECTED_TWO, 4, wire, **SECOND.get(wire, {}))
    length = len(b"".join(answer_events(EXPECTED_TWO, 4, wire, **SECOND.get(wire, {}))))
    transient = IN_STREAM_TYPE.get(wire, "server_error")
    common: list[Scenario] = [
        ("429-no-hint", [Fault("status", 429)], RETRIED, 2),
        ("500", [Fault("status", 500)], RETRIED, 2),
        ("502", [Fault("status", 502)], RETRIED, 2),
        ("503", [Fault("status", 503)], RETRIED, 2),
        ("503-twice", [Fault("status", 503), Fault("status", 503)], RETRIED, 3),
        ("503-past-the-retry-limit", [Fault("status", 503)] * 3, ONE_LINE, 3),
        ("reset-after-0-bytes", [Fault("reset", at=0)], RETRIED, 2),
        ("reset-in-the-first-event", [Fault("reset", at=20)], RETRIED, 2),
        ("reset-1-byte-before-the-first-text", [Fault("reset", at=first - 1)], RETRIED, 2),
        ("reset-right-after-the-first-text", [Fault("reset", at=first)], PARTIAL, 1),
        ("reset-mid-answer", [Fault("reset", at=(first + length) // 2)], PARTIAL, 1),
        ("reset-before-the-end", [Fault("reset", at=length - 20)], PARTIAL, 1),
        ("resets-past-the-retry-limit", [Fault("reset", at=5)] * 3, ONE_LINE, 3),
        ("cut-1-byte-before-the-first-text", [Fault("cut", at=first - 1)], RETRIED, 2),
        ("cut-right-after-the-first-text", [Fault("cut", at=first)], PARTIAL, 1),
        ("cut-mid-answer", [Fault("cut", at=(first + length) // 2)], PARTIAL, 1),
        ("stall-before-text", [Fault("stall", at=0, seconds=STALL)], RETRIED, 2),
        ("stall-after-text", [Fault("stall", at=first + 10, seconds=STALL)], PARTIAL, 1),
        ("broken-json-before-text", [Fault("malformed", at=0)], ONE_LINE, 1),
        ("broken-json-after-text", [Fault("malformed", at=2)], PARTIAL, 1),
        ("no-end-after-text", [Fault("no_terminator")], PARTIAL, 1),
        ("no-end-no-text", [Fault("no_terminator", answer="")], RETRIED, 2),
        ("stream-error-before-text", [Fault("stream_error", at=0, error_type=transient)], RETRIED, 2),
        ("stream-error-after-text", [Fault("stream_error", at=3, error_type=transient)], PARTIAL, 1),
        ("stream-error-not-transient", [Fault("stream_error", at=0, error_type="invalid_request_error")], ONE_LINE, 1),
    ]
    if wire == "openai":  # the retry count is the same code for every wire: once is enough
        common.append(("stalls-past-the-retry-limit", [Fault("stall", seconds=STALL)] * 3, ONE_LINE, 3))
    return RETRY_HINTS[wire] + common


CASES = [
    pytest.param(wire, faults, outcome, sent, id=f"{wire}-{name}")
    for wire in (*WIRES, "azure-v1")
    for name, faults, outcome, sent in scenarios(wire)
]


def check_tree() -> None:
    nbconvo.current().tree.check_invariants()


@pytest.mark.parametrize(("wire", "faults", "outcome", "sent"), CASES)
def test_fault_outcome(
    shell: InteractiveShell,
    server: FaultServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    wire: str,
    faults: list[Fault],
    outcome: str,
    sent: int,
) -> None:
    fmt = wire.removesuffix("-v1")  # the wire format azure-v1 speaks is azure's
    reads_time_out_quickly(faults)
    connect(shell, server, monkeypatch, wire)
    first_turn = turn(shell, capsys, "one", "c1")
    assert first_turn.success, first_turn.text
    convo = nbconvo.current()
    first = convo.path[0]
    before = len(server.requests)
    server.script.extend(faults)
    result = turn(shell, capsys, "two", "c2")
    assert len(server.requests) - before == sent
    assert not server.script  # every fault was served
    check_tree()
    if outcome == RETRIED:
        assert result.success, result.text
        assert convo.path[-1].answer == EXPECTED_TWO and convo.path[-1].status == "ok"
    else:
        assert not result.success
        assert len(result.text.splitlines()) == 1 and "Traceback" not in result.text, result.text
        assert KEYS[fmt] not in result.text
        if outcome == PARTIAL:
            kept = convo.path[-1]
            assert kept.status == "error" and kept.prompt == "two"
            assert kept.answer and EXPECTED_TWO.startswith(kept.answer)  # no duplicated text
            cut = next((f for f in faults if f.kind == "cut"), None)
            if cut is not None:  # every byte sent arrived: the partial is exactly that text
                at = cut.at
                assert kept.answer == text_before(EXPECTED_TWO, 4, at, fmt, **SECOND.get(wire, {}))
            assert "kept as turn 2" in result.text
        else:
            assert [t.prompt for t in convo.path] == ["one"] and len(convo.turns) == 1
    # the next turn works and continues from whatever the path holds
    n = len(convo.path) + 1
    after = turn(shell, capsys, "three", "c3")
    assert after.success, after.text
    assert convo.path[-1].answer == f"echo #{n}: three"
    assert convo.path[0] is first and first.answer == "echo #1: one"
    check_tree()


@pytest.mark.parametrize("wire", WIRES)
def test_event_split_across_tcp_writes_at_every_byte_boundary(
    shell: InteractiveShell, server: FaultServer, monkeypatch: pytest.MonkeyPatch, wire: str
) -> None:
    """A clean answer (with multi-byte characters) written in two TCP writes, split at
    each byte of the stream in turn: every split gives the same answer."""
    connect(shell, server, monkeypatch, wire)
    answer = "héllo — wörld ✓"
    stream = b"".join(answer_events(answer, 5, wire, prompt="say it"))
    convo = nbconvo.Conversation(name=f"split-{wire}", model=SPECS[wire])
    for at in range(1, len(stream)):
        server.script.append(Fault("split", at=at, answer=answer, chunk=5))
        turn_ = convo.ask("say it", cell_id="same-cell")  # a rerun: a new version each time
        assert turn_.answer == answer and turn_.status == "ok", at
    assert not server.script
    convo.tree.check_invariants()
    assert len(convo.turns) == len(stream) - 1


# Not Copilot: its snapshots repeat the whole text so far (12 GB for 10 MB in 4 KB steps);
# not Azure: OpenAI's chunks with filter results, as cheap to parse as OpenAI's.
@pytest.mark.parametrize("wire", ["openai", "anthropic", "gemini"])
def test_a_10_mb_answer(
    shell: InteractiveShell,
    server: FaultServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    wire: str,
) -> None:
    connect(shell, server, monkeypatch, wire)
    # ≈3.2 M tokens of history: past a known model's window, which would refuse the last turn
    assert shell.run_cell("%convo window 10000000").success
    answer = ("0123456789abcdef" * 64 + "\n") * 10_000  # 10.25 MB of text
    server.script.append(Fault(answer=answer, chunk=4096))
    started = time.monotonic()
    result = turn(shell, capsys, "a long one", "c1")
    took = time.monotonic() - started
    assert result.success, result.text
    convo = nbconvo.current()
    assert convo.path[-1].answer == answer
    check_tree()
    # and broken near its end: the 10 MB partial is kept, no byte twice
    size = len(b"".join(answer_events(answer, 4096, wire)))
    server.script.append(Fault("cut", at=size - 5000, answer=answer, chunk=4096))
    result = turn(shell, capsys, "again", "c2")
    assert not result.success and len(result.text.splitlines()) == 1
    kept = convo.path[-1]
    assert kept.status == "error" and kept.answer == text_before(answer, 4096, size - 5000, wire)
    assert len(kept.answer) > 10_000_000
    final = turn(shell, capsys, "short now", "c3")
    assert final.success, final.text
    check_tree()
    assert took < 60, f"a 10 MB answer took {took:.1f} s"


@pytest.mark.parametrize(
    ("faults", "outcome"),
    [
        pytest.param([Fault("status", 503, target="create")], RETRIED, id="503"),
        pytest.param([Fault("status", 429, {"Retry-After": "0"}, target="create")], RETRIED, id="429-Retry-After"),
        pytest.param([Fault("reset", at=0, target="create")], RETRIED, id="reset"),
        pytest.param([Fault("cut", at=150, target="create")], RETRIED, id="cut-mid-json"),
        pytest.param([Fault("stall", at=0, seconds=STALL, target="create")], RETRIED, id="stall"),
        pytest.param([Fault("status", 503, target="create")] * 3, ONE_LINE, id="503-past-the-retry-limit"),
    ],
)
def test_copilot_conversation_create_faults(
    shell: InteractiveShell,
    server: FaultServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    faults: list[Fault],
    outcome: str,
) -> None:
    """Copilot's first request of a conversation is a plain JSON POST: faults there too."""
    reads_time_out_quickly(faults)
    connect(shell, server, monkeypatch, "copilot")
    server.script.extend(faults)
    result = turn(shell, capsys, "one", "c1")
    assert not server.script
    convo = nbconvo.current()
    check_tree()
    if outcome == RETRIED:
        assert result.success, result.text
        assert convo.path[-1].answer == "echo #1: one"
    else:
        assert not result.success and len(result.text.splitlines()) == 1, result.text
        assert KEYS["copilot"] not in result.text and not convo.turns
        assert server.requests == []  # no message was sent without a conversation
    assert turn(shell, capsys, "two", "c2").success
    assert convo.path[-1].answer == f"echo #{len(convo.path)}: two"
    check_tree()
