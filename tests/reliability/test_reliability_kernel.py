"""Interrupts and crashes in a real kernel, at random points of a streamed turn.

Interrupts: SIGINT through the kernel manager at a random moment (before the request,
before the first text, mid-stream, after the end); each time the tree's invariants hold,
a kept partial is a prefix of the answer, and the next %%turn works. SIGKILL: the kernel
killed at a random moment, recording a cassette; the store passes SQLite's integrity
check; a new kernel on the same notebook changes its settings and sends a turn, then
`%convo load` brings back every turn that finished before the kill with the tree's
invariants intact; every whole line of the cassette parses, and the cassette opens for
replay and holds each finished turn's answer (and with its last line cut, as a copy of a
file still being written would be, it says what to do in one line).

`make test` runs 10 interrupts and 3 kills (NBCONVO_INTERRUPTS, NBCONVO_KILLS);
`make stress` 50 and 20. The seed is fixed unless NBCONVO_CAMPAIGN_SEED=N or =random.
(tests/integration/test_kernel_rerun.py and tests/integration/test_kernel_restart.py hold the single, detailed cases.)"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbconvo._cassette import Cassette
from nbconvo._errors import PersistenceError
from tests.support import reliability_counts as counts
from tests.support.fakes.openai_server import Canned, FakeOpenAI
from tests.support.helpers import FAKE_KEY
from tests.support.kernel_client import NotebookKernel

pytestmark = pytest.mark.kernel

INTERRUPTS = int(os.environ.get("NBCONVO_INTERRUPTS", "10"))
KILLS = int(os.environ.get("NBCONVO_KILLS", "3"))
SEED = counts.campaign_seed()
PIECES = [f"w{j} " for j in range(40)]
FULL = "".join(PIECES)
DELAY = 0.01  # between pieces: a 0.4 s answer

CHECK = (
    "import json as _j, nbconvo as _n\n"
    "_c = _n.current()\n"
    "_c.tree.check_invariants()\n"
    "print('STATE' + _j.dumps([[t.id, t.prompt, t.answer, t.status] for t in _c.turns]"
    " + [[t.id for t in _c.path]]))"
)


def read_state(kernel: NotebookKernel) -> tuple[list[list[Any]], list[int]]:
    out = kernel.run(CHECK)
    assert out.status == "ok", out.error
    for output in out.outputs:
        text = output.get("text", "")
        if text.startswith("STATE"):
            data = json.loads(text[5:])
            return data[:-1], data[-1]
    raise AssertionError(f"no state printed: {out}")


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=FAKE_KEY) as fake:
        yield fake


def environment(server: FakeOpenAI, **extra: str) -> dict[str, str]:
    return {
        "OPENAI_API_KEY": FAKE_KEY,
        "OPENAI_BASE_URL": server.base_url,
        "NBCONVO_MODEL": "openai:gpt-test",
        "NBCONVO_STREAM": "1",
        **extra,
    }


def test_interrupts_at_random_points(server: FakeOpenAI, tmp_path: Path) -> None:
    rng = random.Random(f"{SEED}-interrupts")
    kernel = NotebookKernel(env=environment(server, NBCONVO_AUTOSAVE=str(tmp_path / "a.nbconvo.db")))
    outcomes: dict[str, int] = {}
    try:
        assert kernel.run("%load_ext nbconvo", "setup").status == "ok"
        assert kernel.run("%%turn\nfirst", "c0").status == "ok"
        for i in range(INTERRUPTS):
            where = f"NBCONVO_CAMPAIGN_SEED={SEED}, interrupt {i}"
            server.script.append(Canned(pieces=list(PIECES), delay=DELAY))
            msg_id = kernel.send(f"%%turn\nlong {i}", f"long-{i}")
            results: list[Any] = []
            started = threading.Event()
            collector = threading.Thread(
                target=_collect, args=(kernel, msg_id, results, started), daemon=True
            )
            collector.start()
            # from the moment the cell runs: ipykernel drops a request interrupted while
            # it is still being dispatched (no reply at all), which is not nbconvo's to test
            assert started.wait(30), where
            early = rng.random() < 0.3  # before the request or the first text
            time.sleep(rng.uniform(0.0, 0.02 if early else len(PIECES) * DELAY * 1.3))
            kernel.km.interrupt_kernel()
            collector.join(30)
            server.script.clear()  # interrupted before its request: the script is unused
            assert not collector.is_alive(), where
            turns, _path = read_state(kernel)
            answer = next((t[2] for t in turns if t[1] == f"long {i}"), None)
            if not results:
                # SIGINT landed outside the cell's code (just before or after it ran):
                # ipykernel logs "KeyboardInterrupt caught in kernel" and sends no reply.
                # The conversation must still be consistent, which the checks below test.
                kind = "outside the cell (no reply from ipykernel)"
            elif results[0].status == "ok":
                kind = "finished"
            elif answer:
                kind = "partial kept"
            elif answer is not None:
                kind = "kept with no text yet"
            else:
                kind = "before the request"
            outcomes[kind] = outcomes.get(kind, 0) + 1
            turns, _path = read_state(kernel)
            for _id, prompt, answer, status in turns:
                assert status in ("ok", "interrupted"), (where, status)
                if prompt.startswith("long") and status == "interrupted":
                    assert FULL.startswith(answer), (where, answer)
                if prompt.startswith("long") and status == "ok":
                    assert answer == FULL, (where, answer)
            # the next turn works and continues from the path
            after = kernel.run(f"%%turn\nnext {i}", f"next-{i}")
            assert after.status == "ok", (where, after.error)
            turns, path = read_state(kernel)
            by_id = {t[0]: t for t in turns}
            last = by_id[path[-1]]
            # a turn interrupted before any text has no answer and is not sent as history
            sent = 1 + sum(1 for turn_id in path[:-1] if by_id[turn_id][2])
            assert last[1] == f"next {i}" and last[2] == f"echo #{sent}: next {i}", where
        db = sqlite3.connect(tmp_path / "a.nbconvo.db")  # every turn saved as it ended
        saved = {r[0] for r in db.execute("SELECT prompt FROM turns")}
        db.close()
        assert saved == {t[1] for t in read_state(kernel)[0]}
    finally:
        kernel.close()
    counts.add("interrupts", INTERRUPTS)
    for kind, n in sorted(outcomes.items()):
        counts.add(f"interrupts: {kind}", n)


def test_sigkill_at_random_points(server: FakeOpenAI, tmp_path: Path) -> None:
    rng = random.Random(f"{SEED}-kills")
    lost = 0
    for i in range(KILLS):
        where = f"NBCONVO_CAMPAIGN_SEED={SEED}, kill {i}"
        store = tmp_path / f"kill-{i}.nbconvo.db"
        cassette = tmp_path / f"kill-{i}.jsonl"
        env = environment(
            server,
            NBCONVO_AUTOSAVE=str(store),
            NBCONVO_CASSETTE=str(cassette),
            NBCONVO_CASSETTE_MODE="record",
        )
        kernel = NotebookKernel(env=env)
        try:
            assert kernel.run("%load_ext nbconvo").status == "ok"
            for n in range(rng.randrange(1, 4)):
                assert kernel.run(f"%%turn\nturn {n}", f"c{n}").status == "ok", where
            if rng.random() < 0.3:
                assert kernel.run("%convo fork 1 --name alt").status == "ok"
            finished, _path = read_state(kernel)
            server.script.append(Canned(pieces=list(PIECES), delay=DELAY))
            msg_id = kernel.send("%%turn\nthe long one", "long")
            drain = threading.Thread(target=_drain, args=(kernel, msg_id), daemon=True)
            drain.start()
            time.sleep(rng.uniform(0.0, len(PIECES) * DELAY * 1.5))
            kernel.km.provisioner.process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
            kernel.km.provisioner.process.wait(10)  # type: ignore[union-attr]
        finally:
            kernel.close()
        db = sqlite3.connect(store)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",), where
        db.close()
        counts.add("kills: cassette lines parsed", whole_json_lines(cassette, where))
        check_cassette(cassette, finished, tmp_path / f"cut-{i}.jsonl", where)
        # A new kernel on the same notebook works first, then restores the killed one.
        server.script.clear()
        after = NotebookKernel(env={**env, "NBCONVO_CASSETTE": ""})
        try:
            assert after.run("%load_ext nbconvo").status == "ok", where
            assert after.run("%convo system A new start.", "s").status == "ok", where
            assert after.run("%%turn\nsomething else first", "n").status == "ok", where
            restore = after.run("%convo load")
            assert restore.status == "ok", (where, restore.error)
            saved_turns, _ = read_state(after)  # checks the tree's invariants too
        finally:
            after.close()
        saved = {t[0]: (t[1], t[2], t[3]) for t in saved_turns}
        for turn_id, prompt, answer, status in finished:
            if saved.get(turn_id) != (prompt, answer, status):
                lost += 1
        extra = set(saved) - {t[0] for t in finished}
        for turn_id in extra:  # the long turn finished (or was cut) before the kill
            prompt, answer, status = saved[turn_id]
            assert prompt == "the long one" and FULL.startswith(answer), where
        assert lost == 0, where
    counts.add("kills", KILLS)
    counts.add("kills: finished turns lost", lost)


def whole_json_lines(path: Path, where: str) -> int:
    """Every line of a JSON Lines file parses, but for a last line a kill may have cut
    (one without its newline). Returns how many parsed."""
    lines = path.read_bytes().split(b"\n")
    for number, line in enumerate(lines[:-1], 1):
        try:
            json.loads(line)
        except ValueError:
            raise AssertionError(f"{where}: line {number} of {path.name} is not JSON") from None
    return len(lines) - 1


def check_cassette(path: Path, finished: list[list[Any]], cut: Path, where: str) -> None:
    """The cassette opens for replay and holds every answer that finished before the kill;
    with its last line cut it is tolerated or refused in one line naming the fix."""
    cassette = Cassette(path, "replay")
    answers = {
        entry["request"]["messages"][-1]["content"]: "".join(
            e.get("text", "") for e in entry["events"] if e.get("kind") == "text"
        )
        for entry in cassette.entries.values()
    }
    for _id, prompt, answer, status in finished:
        if status == "ok":
            assert answers.get(prompt) == answer, (where, prompt)
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) - 1 - len(data.rstrip(b"\n").rsplit(b"\n", 1)[-1]) // 2])
    try:
        tolerated = Cassette(cut, "replay")
    except PersistenceError as error:
        message = str(error)
        assert len(message.splitlines()) == 1 and "--mode record" in message, (where, message)
        counts.add("kills: cut cassette refused in one line naming the fix")
    else:
        assert len(tolerated.entries) == len(cassette.entries) - 1, where
        counts.add("kills: cut cassette tolerated")


def _collect(
    kernel: NotebookKernel, msg_id: str, into: list[Any], started: threading.Event
) -> None:
    def on_output(kind: str, content: Any) -> None:
        if kind == "execute_input":
            started.set()

    with contextlib.suppress(queue.Empty):  # no reply: see the test
        into.append(kernel.collect(msg_id, 10, on_output))


def _drain(kernel: NotebookKernel, msg_id: str) -> None:
    with contextlib.suppress(Exception):  # the kernel was killed: no reply will come
        kernel.collect(msg_id, 30)
