"""A seeded randomized campaign: conversations of turns, reruns, forks, switches and
undos, with faults drawn at random for each request (statuses, resets and cuts at any
byte, stalls, malformed SSE, in-stream errors, split writes). After every step: zero
broken invariants, zero lost finished turns, zero duplicated text, and every request
carried exactly the active path's history.

`make test` runs NBCONVO_CAMPAIGN_CONVERSATIONS=30 (the default); `make stress` 300.
The seed is fixed (20261129) unless NBCONVO_CAMPAIGN_SEED=N replays run N or =random draws
a new one; a failure names the seed and the conversation."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from nbconvo import Conversation
from nbconvo._document import tree_from_dict, tree_to_dict
from nbconvo._errors import NbconvoError
from nbconvo.providers._http import SSEStream
from tests.support import reliability_counts as counts
from tests.support.fakes.fault_server import Fault, FaultServer, echo
from tests.support.provider_cases import clean_environment

CONVERSATIONS = int(os.environ.get("NBCONVO_CAMPAIGN_CONVERSATIONS", "30"))
SEED = counts.campaign_seed()
READ_TIMEOUT = 0.25


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultServer]:
    clean_environment(monkeypatch)
    monkeypatch.setenv("NBCONVO_RETRY_MAX_WAIT", "0.01")
    monkeypatch.setenv("NBCONVO_AUTOSAVE", "off")
    original = SSEStream.__init__

    def init(self: SSEStream, **kwargs: Any) -> None:
        kwargs["timeout"] = httpx.Timeout(connect=2.0, read=READ_TIMEOUT, write=2.0, pool=2.0)
        original(self, **kwargs)

    monkeypatch.setattr(SSEStream, "__init__", init)
    with FaultServer() as fake:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-" + "campaign-000000000000")
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        yield fake


def random_fault(rng: random.Random) -> Fault:
    kind = rng.choices(
        ["status", "reset", "cut", "stall", "malformed", "stream_error", "no_terminator", "split"],
        weights=[6, 4, 4, 1, 2, 3, 1, 3],
    )[0]
    if kind == "status":
        status = rng.choice([400, 429, 500, 502, 503, 529])
        headers = {"retry-after-ms": "5"} if status == 429 and rng.random() < 0.5 else {}
        return Fault("status", status, headers)
    if kind == "stall":
        return Fault("stall", at=rng.randrange(0, 400), seconds=READ_TIMEOUT * 2.5)
    if kind in ("malformed", "stream_error"):
        error_type = rng.choice(["server_error", "invalid_request_error"])
        return Fault(kind, at=rng.randrange(0, 6), error_type=error_type)
    return Fault(kind, at=rng.randrange(0, 500))


class Campaign:
    def __init__(self, server: FaultServer, rng: random.Random) -> None:
        self.server = server
        self.rng = rng
        self.convo = Conversation(name="campaign", model="openai:gpt-test")
        self.finished: dict[int, tuple[str, str, str]] = {}  # id -> (prompt, answer, status)
        self.cells: list[str] = []
        self.stats: dict[str, int] = {}
        self.last_error: str | None = None

    def bump(self, name: str) -> None:
        self.stats[name] = self.stats.get(name, 0) + 1

    def step(self, n: int) -> None:
        rng, convo = self.rng, self.convo
        action = rng.choices(["turn", "rerun", "fork", "switch", "undo"], weights=[14, 3, 2, 1, 1])[0]
        if action == "fork" and convo.path:
            convo.fork(rng.randrange(0, len(convo.path) + 1))
        elif action == "switch" and len(convo.branches) > 1:
            convo.switch(rng.choice(sorted(convo.branches)))
        elif action == "undo" and convo.path:
            convo.undo()
        else:
            rerun = action == "rerun" and self.cells
            cell = rng.choice(self.cells) if rerun else f"cell-{n}"
            if not rerun:
                self.cells.append(cell)
            self.ask(f"prompt {n} {rng.random():.6f}", cell)
        self.bump(action)
        self.check()

    def ask(self, prompt: str, cell: str, faults: list[Fault] | None = None) -> None:
        if faults is None:
            n = self.rng.choices([0, 1, 2, 3], [4, 4, 2, 1])[0]
            faults = [random_fault(self.rng) for _ in range(n)]
        self.server.script.clear()
        self.server.script.extend(faults)
        before_ids = set(self.convo.tree.turns)
        before_requests = len(self.server.requests)
        try:
            turn = self.convo.ask(prompt, cell_id=cell)
        except NbconvoError as error:
            assert "\n" not in str(error), error
            new = set(self.convo.tree.turns) - before_ids
            if not new:
                self.last_error = str(error)
                self.bump("one-line errors")
                assert len(self.server.requests) > before_requests or "context" in str(error)
                return
            (turn_id,) = new
            turn = self.convo.tree.turns[turn_id]
            assert turn.status == "error", turn
            self.bump("partials kept")
        else:
            self.bump("answers")
        assert set(self.convo.tree.turns) - before_ids == {turn.id}
        sent = self.server.requests[-1]["messages"]
        expected = echo(sent)
        if turn.status == "ok":
            assert turn.answer == expected, (turn.answer, expected)
        else:
            assert turn.answer and expected.startswith(turn.answer), (turn.answer, expected)
        # the request carried exactly the path up to the turn's parent
        history: list[dict[str, str]] = []
        for t in self.convo.tree.ancestry(turn.parent):
            history += [{"role": "user", "content": t.prompt}, {"role": "assistant", "content": t.answer}]
        assert sent == [*history, {"role": "user", "content": prompt}]
        self.finished[turn.id] = (turn.prompt, turn.answer, turn.status)

    def check(self) -> None:
        tree = self.convo.tree
        tree.check_invariants()
        for turn_id, (prompt, answer, status) in self.finished.items():
            turn = tree.turns.get(turn_id)
            assert turn is not None, f"turn #{turn_id} lost"
            assert (turn.prompt, turn.answer, turn.status) == (prompt, answer, status)
        for turn in tree.turns.values():
            half = len(turn.answer) // 2
            assert not (half and turn.answer[:half] == turn.answer[half:]), "duplicated text"

    def finish(self) -> None:
        again = tree_from_dict(tree_to_dict(self.convo.tree))  # a save/load round trip
        again.check_invariants()
        assert tree_to_dict(again) == tree_to_dict(self.convo.tree)


def test_randomized_campaign(server: FaultServer) -> None:
    started = time.monotonic()
    totals: dict[str, int] = {}
    for i in range(CONVERSATIONS):
        rng = random.Random(f"{SEED}-{i}")
        campaign = Campaign(server, rng)
        try:
            for n in range(rng.randrange(4, 12)):
                campaign.step(n)
            # the next turn works after whatever happened
            campaign.last_error = None
            campaign.ask("the last word", f"final-{i}", faults=[])
            assert campaign.last_error is None, campaign.last_error
            assert campaign.convo.path[-1].status == "ok"
            campaign.check()
            campaign.finish()
        except Exception as error:
            raise AssertionError(
                f"campaign failed: NBCONVO_CAMPAIGN_SEED={SEED}, conversation {i}: {error!r}"
            ) from error
        for name, n in campaign.stats.items():
            totals[name] = totals.get(name, 0) + n
    counts.add("campaign: seed (NBCONVO_CAMPAIGN_SEED)", SEED)
    counts.add("campaign: conversations", CONVERSATIONS)
    counts.add("campaign: faults injected", server.faults_served)
    counts.add("faults injected", server.faults_served)
    counts.add("faults injected: openai", server.faults_served)
    for name, n in sorted(totals.items()):
        counts.add(f"campaign: {name}", n)
    counts.add("campaign: broken invariants / lost turns / duplicated text", 0)
    print(f"campaign seed {SEED}: {CONVERSATIONS} conversations in {time.monotonic() - started:.1f} s")
