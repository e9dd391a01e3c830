"""Faults injected at the socket under a real %%turn (OpenAI wire format): 429 with each
retry header, 5xx and 529, resets after K bytes, stalls past the read timeout, malformed
SSE, an event split across TCP writes at every byte boundary, in-stream errors, a 10 MB
answer. For each: retried when safe (and then answered), otherwise one line; a partial
answer is kept as an ``error`` turn; the tree's invariants hold; the next turn works.

tests/test_providers_errors.py checks each provider's own error shapes at the provider
level; this file checks what the user is left with, through the magic."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from IPython.core.interactiveshell import InteractiveShell

import nbconvo
from nbconvo.providers._http import SSEStream
from tests import reliability_counts as counts
from tests.fakes.fault_server import Fault, FaultServer, answer_events, echo, text_before
from tests.provider_cases import clean_environment

READ_TIMEOUT = 0.4
KEY = "sk-" + "fault-test-0000000000000000"  # split: no key-shaped literal


def short_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The read timeout nbconvo uses (120 s) made short enough to test a stall."""
    original = SSEStream.__init__

    def init(self: SSEStream, **kwargs: Any) -> None:
        kwargs["timeout"] = httpx.Timeout(connect=2.0, read=READ_TIMEOUT, write=2.0, pool=2.0)
        original(self, **kwargs)

    monkeypatch.setattr(SSEStream, "__init__", init)


@pytest.fixture
def server(shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultServer]:
    clean_environment(monkeypatch)  # retry waits capped at 0.05 s
    short_timeouts(monkeypatch)
    with FaultServer() as fake:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        assert shell.run_cell("%convo model openai:gpt-test").success
        yield fake
        counts.add("faults injected", fake.faults_served)


class Result:
    def __init__(self, success: bool, text: str) -> None:
        self.success = success
        self.text = text


def turn(shell: InteractiveShell, capsys: pytest.CaptureFixture[str], prompt: str, cell: str) -> Result:
    capsys.readouterr()
    result = shell.run_cell(f"%%turn\n{prompt}", cell_id=cell)
    out = capsys.readouterr()
    return Result(result.success, (out.out + out.err).strip())


def first_text_offset(text: str) -> int:
    """Bytes of the stream up to and including the first content event."""
    events = answer_events(text, 4)
    return len(events[0]) + len(events[1])


def http_date(delay: float) -> str:
    return email.utils.formatdate(time.time() + delay, usegmt=True)


RETRIED = "retried"  # the turn succeeds after the faults
ONE_LINE = "one-line"  # a one-line error; nothing recorded
PARTIAL = "partial"  # a one-line error; the partial answer kept as an error turn

EXPECTED_TWO = echo([{"role": "user", "content": p} for p in ("one", "two")])
FIRST = first_text_offset(EXPECTED_TWO)
STREAM_LEN = len(b"".join(answer_events(EXPECTED_TWO, 4)))

# (id, faults for the turn, outcome, requests the turn sends)
SCENARIOS: list[tuple[str, list[Fault], str, int]] = [
    ("429-retry-after-ms", [Fault("status", 429, {"retry-after-ms": "20"})], RETRIED, 2),
    ("429-retry-after-seconds", [Fault("status", 429, {"retry-after": "0.02"})], RETRIED, 2),
    ("429-retry-after-http-date", [Fault("status", 429, {"retry-after": http_date(0)})], RETRIED, 2),
    ("429-no-header", [Fault("status", 429)], RETRIED, 2),
    ("429-asks-for-an-hour", [Fault("status", 429, {"retry-after": "3600"})], ONE_LINE, 1),
    ("429-x-should-retry-false", [Fault("status", 429, {"x-should-retry": "false"})], ONE_LINE, 1),
    ("500", [Fault("status", 500)], RETRIED, 2),
    ("502", [Fault("status", 502)], RETRIED, 2),
    ("503", [Fault("status", 503)], RETRIED, 2),
    ("529", [Fault("status", 529)], RETRIED, 2),
    ("503-twice", [Fault("status", 503), Fault("status", 503)], RETRIED, 3),
    ("503-past-the-retry-limit", [Fault("status", 503)] * 3, ONE_LINE, 3),
    ("reset-after-0-bytes", [Fault("reset", at=0)], RETRIED, 2),
    ("reset-in-the-role-event", [Fault("reset", at=20)], RETRIED, 2),
    ("reset-1-byte-before-the-first-text", [Fault("reset", at=FIRST - 1)], RETRIED, 2),
    ("reset-right-after-the-first-text", [Fault("reset", at=FIRST)], PARTIAL, 1),
    ("reset-mid-answer", [Fault("reset", at=(FIRST + STREAM_LEN) // 2)], PARTIAL, 1),
    ("reset-before-done", [Fault("reset", at=STREAM_LEN - 20)], PARTIAL, 1),
    ("cut-1-byte-before-the-first-text", [Fault("cut", at=FIRST - 1)], RETRIED, 2),
    ("cut-right-after-the-first-text", [Fault("cut", at=FIRST)], PARTIAL, 1),
    ("cut-mid-answer", [Fault("cut", at=(FIRST + STREAM_LEN) // 2)], PARTIAL, 1),
    ("resets-past-the-retry-limit", [Fault("reset", at=5)] * 3, ONE_LINE, 3),
    ("stall-before-text", [Fault("stall", at=0, seconds=3 * READ_TIMEOUT)], RETRIED, 2),
    ("stall-after-text", [Fault("stall", at=FIRST + 10, seconds=3 * READ_TIMEOUT)], PARTIAL, 1),
    ("stalls-past-the-retry-limit", [Fault("stall", seconds=3 * READ_TIMEOUT)] * 3, ONE_LINE, 3),
    ("broken-json-before-text", [Fault("malformed", at=0)], ONE_LINE, 1),
    ("broken-json-after-text", [Fault("malformed", at=2)], PARTIAL, 1),
    ("no-terminator-after-text", [Fault("no_terminator")], PARTIAL, 1),
    ("no-terminator-no-text", [Fault("no_terminator", answer="")], RETRIED, 2),
    ("stream-error-before-text", [Fault("stream_error", at=0)], RETRIED, 2),
    ("stream-error-after-text", [Fault("stream_error", at=3)], PARTIAL, 1),
    (
        "stream-error-not-transient",
        [Fault("stream_error", at=0, error_type="invalid_request_error")],
        ONE_LINE,
        1,
    ),
]


def check_tree() -> None:
    nbconvo.current().tree.check_invariants()


@pytest.mark.parametrize(
    ("faults", "outcome", "sent"),
    [pytest.param(f, o, s, id=name) for name, f, o, s in SCENARIOS],
)
def test_fault_outcome(
    shell: InteractiveShell,
    server: FaultServer,
    capsys: pytest.CaptureFixture[str],
    faults: list[Fault],
    outcome: str,
    sent: int,
) -> None:
    assert turn(shell, capsys, "one", "c1").success
    convo = nbconvo.current()
    first = convo.path[0]
    before = len(server.requests)
    server.script.extend(faults)
    result = turn(shell, capsys, "two", "c2")
    assert len(server.requests) - before == sent
    check_tree()
    if outcome == RETRIED:
        assert result.success, result.text
        assert convo.path[-1].answer == EXPECTED_TWO and convo.path[-1].status == "ok"
    else:
        assert not result.success
        assert len(result.text.splitlines()) == 1 and "Traceback" not in result.text, result.text
        assert KEY not in result.text
        if outcome == PARTIAL:
            kept = convo.path[-1]
            assert kept.status == "error" and kept.prompt == "two"
            assert kept.answer and EXPECTED_TWO.startswith(kept.answer)  # no duplicated text
            cut = next((f for f in faults if f.kind == "cut"), None)
            if cut is not None:  # every byte sent arrived: the partial is exactly that text
                assert kept.answer == text_before(EXPECTED_TWO, 4, cut.at)
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


def test_event_split_across_tcp_writes_at_every_byte_boundary(server: FaultServer) -> None:
    """A clean answer (with multi-byte characters) written in two TCP writes, split at
    each byte of the stream in turn: every split gives the same answer."""
    answer = "héllo — wörld ✓ ünïcode"
    stream = b"".join(answer_events(answer, 3))
    convo = nbconvo.Conversation(name="split", model="openai:gpt-test")
    for at in range(1, len(stream)):
        server.script.append(Fault("split", at=at, answer=answer, chunk=3))
        turn_ = convo.ask("say it", cell_id="same-cell")  # a rerun: a new version each time
        assert turn_.answer == answer and turn_.status == "ok", at
    convo.tree.check_invariants()
    assert len(convo.turns) == len(stream) - 1


def test_a_10_mb_answer(
    shell: InteractiveShell, server: FaultServer, capsys: pytest.CaptureFixture[str]
) -> None:
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
    size = len(b"".join(answer_events(answer, 4096)))
    server.script.append(Fault("cut", at=size - 5000, answer=answer, chunk=4096))
    result = turn(shell, capsys, "again", "c2")
    assert not result.success and len(result.text.splitlines()) == 1
    kept = convo.path[-1]
    assert kept.status == "error" and kept.answer == text_before(answer, 4096, size - 5000)
    assert len(kept.answer) > 10_000_000
    assert turn(shell, capsys, "short now", "c3").success
    check_tree()
    assert took < 60, f"a 10 MB answer took {took:.1f} s"


# -- the same server on the Anthropic Messages wire format -----------------------------------

ANTHROPIC_SPEC = "anthropic:claude-sonnet-5-5"
A_FIRST = sum(len(e) for e in answer_events(EXPECTED_TWO, 4, "anthropic")[:3])
A_LEN = len(b"".join(answer_events(EXPECTED_TWO, 4, "anthropic")))

ANTHROPIC_SCENARIOS: list[tuple[str, list[Fault], str, int]] = [
    ("529", [Fault("status", 529)], RETRIED, 2),
    ("429-retry-after-ms", [Fault("status", 429, {"retry-after-ms": "20"})], RETRIED, 2),
    ("reset-1-byte-before-the-first-text", [Fault("reset", at=A_FIRST - 1)], RETRIED, 2),
    ("cut-right-after-the-first-text", [Fault("cut", at=A_FIRST)], PARTIAL, 1),
    ("cut-mid-answer", [Fault("cut", at=(A_FIRST + A_LEN) // 2)], PARTIAL, 1),
    ("stall-after-text", [Fault("stall", at=A_FIRST + 10, seconds=3 * READ_TIMEOUT)], PARTIAL, 1),
    ("overloaded-before-text", [Fault("stream_error", at=0, error_type="overloaded_error")], RETRIED, 2),
    ("overloaded-after-text", [Fault("stream_error", at=3, error_type="overloaded_error")], PARTIAL, 1),
    ("no-terminator-after-text", [Fault("no_terminator")], PARTIAL, 1),
    ("broken-json-before-text", [Fault("malformed", at=0)], ONE_LINE, 1),
]


@pytest.fixture
def anthropic_server(
    shell: InteractiveShell, server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> FaultServer:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-" + "ant-fault-test-000000")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.root_url)
    assert shell.run_cell(f"%convo model {ANTHROPIC_SPEC}").success
    return server


@pytest.mark.parametrize(
    ("faults", "outcome", "sent"),
    [pytest.param(f, o, s, id=name) for name, f, o, s in ANTHROPIC_SCENARIOS],
)
def test_anthropic_fault_outcome(
    shell: InteractiveShell,
    anthropic_server: FaultServer,
    capsys: pytest.CaptureFixture[str],
    faults: list[Fault],
    outcome: str,
    sent: int,
) -> None:
    server = anthropic_server
    assert turn(shell, capsys, "one", "c1").success
    convo = nbconvo.current()
    before = len(server.requests)
    server.script.extend(faults)
    result = turn(shell, capsys, "two", "c2")
    assert len(server.requests) - before == sent
    check_tree()
    if outcome == RETRIED:
        assert result.success, result.text
        assert convo.path[-1].answer == EXPECTED_TWO
    else:
        assert not result.success and len(result.text.splitlines()) == 1, result.text
        if outcome == PARTIAL:
            kept = convo.path[-1]
            assert kept.status == "error" and kept.answer and EXPECTED_TWO.startswith(kept.answer)
            cut = next((f for f in faults if f.kind == "cut"), None)
            if cut is not None:
                assert kept.answer == text_before(EXPECTED_TWO, 4, cut.at, "anthropic")
        else:
            assert len(convo.turns) == 1
    n = len(convo.path) + 1
    after = turn(shell, capsys, "three", "c3")
    assert after.success, after.text
    assert convo.path[-1].answer == f"echo #{n}: three"
    check_tree()


def test_anthropic_event_split_at_every_byte_boundary(anthropic_server: FaultServer) -> None:
    answer = "héllo — wörld ✓"
    stream = b"".join(answer_events(answer, 3, "anthropic"))
    convo = nbconvo.Conversation(name="split-anthropic", model=ANTHROPIC_SPEC)
    for at in range(1, len(stream)):
        anthropic_server.script.append(Fault("split", at=at, answer=answer, chunk=3))
        assert convo.ask("say it", cell_id="same-cell").answer == answer, at
    convo.tree.check_invariants()
    assert len(convo.turns) == len(stream) - 1
