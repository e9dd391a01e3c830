"""The rerun contract (DESIGN §3) through a real kernel receiving execute requests with
cell ids, as JupyterLab sends them, and interrupts during streaming."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.fakes.openai_server import Canned, FakeOpenAI
from tests.support.helpers import FAKE_KEY
from tests.support.kernel_client import NotebookKernel

pytestmark = pytest.mark.kernel

CELLS = [("c1", "one"), ("c2", "two"), ("c3", "three"), ("c4", "four")]


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=FAKE_KEY) as fake:
        yield fake


@pytest.fixture
def kernel(server: FakeOpenAI) -> Iterator[NotebookKernel]:
    k = NotebookKernel(
        env={
            "OPENAI_API_KEY": FAKE_KEY,
            "OPENAI_BASE_URL": server.base_url,
            "NBCONVO_MODEL": "openai:gpt-test",
        }
    )
    try:
        assert k.run("%load_ext nbconvo", "setup").status == "ok"
        yield k
    finally:
        k.close()


def run_turn(kernel: NotebookKernel, cell_id: str, prompt: str) -> None:
    result = kernel.run(f"%%turn\n{prompt}", cell_id)
    assert result.status == "ok", result.error


def test_rerun_last_cell_makes_a_new_version(kernel: NotebookKernel) -> None:
    for cell_id, prompt in CELLS[:3]:
        run_turn(kernel, cell_id, prompt)
    run_turn(kernel, "c3", "three, rephrased")
    state = kernel.state()
    assert [row[0] for row in state["path"]] == ["1", "2", "3.2"]
    assert [row[1] for row in state["path"]] == ["one", "two", "three, rephrased"]
    assert state["turns"] == 4  # the old answer stays in the tree


def test_edit_turn_2_of_4_then_run_cells_below(kernel: NotebookKernel, server: FakeOpenAI) -> None:
    for cell_id, prompt in CELLS:
        run_turn(kernel, cell_id, prompt)
    run_turn(kernel, "c2", "two, edited")
    run_turn(kernel, "c3", "three")
    run_turn(kernel, "c4", "four")
    state = kernel.state()
    assert [row[0] for row in state["path"]] == ["1", "2.2", "3", "4"]
    assert [row[1] for row in state["path"]] == ["one", "two, edited", "three", "four"]
    # cell 3 continued from 2.2: its request carried the edited turn, not the old one
    contents = [m["content"] for m in server.requests[-2]["messages"]]
    assert contents == ["one", "echo #1: one", "two, edited", "echo #2: two, edited", "three"]
    assert state["turns"] == 7 and "main@1" in state["branches"]


def test_run_all_on_a_live_kernel_regenerates_a_new_path(kernel: NotebookKernel) -> None:
    for cell_id, prompt in CELLS:
        run_turn(kernel, cell_id, prompt)
    for cell_id, prompt in CELLS:  # Run All: the same cells, in order, same ids
        run_turn(kernel, cell_id, prompt)
    state = kernel.state()
    assert [row[0] for row in state["path"]] == ["1.2", "2", "3", "4"]
    assert state["turns"] == 8
    assert state["branches"] == ["main", "main@1"]  # the old path is kept as a branch
    kept = kernel.run(
        "import nbconvo\nc = nbconvo.current()\n"
        "print([t.prompt for t in c.tree.ancestry(c.branches['main@1'])])"
    )
    assert "['one', 'two', 'three', 'four']" in kept.text()


def test_code_cell_ask_follows_the_same_contract(kernel: NotebookKernel) -> None:
    code = "import nbconvo\nnbconvo.current().ask('from code')"
    assert kernel.run(code, "k1").status == "ok"
    assert kernel.run(code, "k1").status == "ok"
    state = kernel.state()
    assert [row[0] for row in state["path"]] == ["1.2"]


def test_interrupt_keeps_partial_answer_and_next_turn_works(
    kernel: NotebookKernel, server: FakeOpenAI
) -> None:
    run_turn(kernel, "c1", "one")
    server.script.append(Canned(pieces=[f"word{i} " for i in range(200)], delay=0.05))
    seen = threading.Event()

    def on_output(kind: str, content: dict) -> None:  # type: ignore[type-arg]
        if kind == "update_display_data" and "word3" in content["data"].get("text/plain", ""):
            seen.set()

    msg_id = kernel.send("%%turn\ntell me a long story", "c2")
    results: list = []  # type: ignore[type-arg]
    collector = threading.Thread(
        target=lambda: results.append(kernel.collect(msg_id, 60, on_output))
    )
    collector.start()
    assert seen.wait(30), "no streamed text arrived"
    kernel.km.interrupt_kernel()
    collector.join(60)
    result = results[0]
    assert result.status == "error"
    assert "TurnInterrupted" in result.error and "kept as turn 2 (interrupted)" in result.error
    state = kernel.state()
    label, prompt, answer, status = state["path"][-1]
    assert (label, prompt, status) == ("2", "tell me a long story", "interrupted")
    assert answer.startswith("word0 word1 word2 word3") and "word199" not in answer
    started = time.monotonic()
    run_turn(kernel, "c3", "and now?")
    assert time.monotonic() - started < 30
    state = kernel.state()
    assert [row[0] for row in state["path"]] == ["1", "2", "3"]
    assert state["path"][-1][2].startswith("echo #3: and now?")


# The README's tour: two turns, a named fork at turn 1, a turn on the fork.
TOUR = [
    ("c1", "%%turn\nWhat are the main strategies for improving customer retention?"),
    ("c2", "%%turn\nLet's focus on proactive outreach."),
    ("c3", "%convo fork 1 --name alt"),
    ("c4", "%%turn\nInstead: what if we changed the pricing tiers?"),
]


def notebook_env(server: FakeOpenAI, home: object, notebook: str) -> dict[str, str]:
    """A kernel as JupyterLab starts one for ``notebook``, talking to the fake."""
    return {"OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": server.base_url,
            "NBCONVO_MODEL": "openai:gpt-test", "NBCONVO_HOME": str(home),
            "JPY_SESSION_NAME": notebook}


def run_all(
    kernel: NotebookKernel, server: FakeOpenAI, cells: list[tuple[str, str]] = TOUR
) -> list[list[tuple[str, str]]]:
    """Run ``cells`` in order, as Run All does; the requests' message structure (role and
    user text of each message) of each request sent."""
    before = len(server.requests)
    for cell_id, code in cells:
        result = kernel.run(code, cell_id)
        assert result.status == "ok", (cell_id, result.error)
    return [
        [(m["role"], m["content"] if m["role"] == "user" else "…") for m in body["messages"]]
        for body in server.requests[before:]
    ]


def test_run_all_reproduces_the_tour_each_time(server: FakeOpenAI, tmp_path: object) -> None:
    """Issue #14's tour: Run All three times on a live kernel, then once after a restart
    and `%convo load`. Each run sends what the first sent (the fork's turn never sees the
    turn it forked away from), and every generation stays: alt@1, alt@2, main@1, …"""
    env = notebook_env(server, tmp_path, "tour.ipynb")
    kernel = NotebookKernel(env=env)
    try:
        assert kernel.run("%load_ext nbconvo", "setup").status == "ok"
        first = run_all(kernel, server)
        assert first[2] == [("user", TOUR[0][1].split("\n", 1)[1]), ("assistant", "…"),
                            ("user", TOUR[3][1].split("\n", 1)[1])]
        for generation in (1, 2):
            assert run_all(kernel, server) == first, f"run {generation + 1}"
            state = kernel.state()
            assert state["branch"] == "alt"
            assert f"alt@{generation}" in state["branches"] and f"main@{generation}" in state["branches"]
            assert [row[1].split()[0] for row in state["path"]] == ["What", "Instead:"]
        assert kernel.state()["turns"] == 9  # three generations of three turns
    finally:
        kernel.close()
    again = NotebookKernel(env=env)
    try:
        assert again.run("%load_ext nbconvo", "setup").status == "ok"
        assert again.run("%convo load", "load").status == "ok"
        assert run_all(again, server) == first, "after a restart and %convo load"
        state = again.state()
        assert state["turns"] == 12 and "alt@3" in state["branches"]
    finally:
        again.close()


# Two named forks, a switch back, a compact and a compare: every kind of cell that shapes
# the conversation, run again and again as Run All does.
SHAPES = [
    ("s1", "%%turn\nWhat are the main strategies for improving customer retention?"),
    ("s2", "%%turn\nLet's focus on proactive outreach."),
    ("s3", "%convo fork 1 --name alt"),
    ("s4", "%%turn\nInstead: what if we changed the pricing tiers?"),
    ("s5", "%convo fork 1 --name onboarding"),
    ("s6", "%%turn\nOr: a better first week for new customers?"),
    ("s7", "%convo switch main"),
    ("s8", "%%turn\nWhich outreach signal comes first?"),
    ("s9", "%convo compact --keep 1"),
    ("s10", "%%turn\nDraft the first outreach email."),
    ("s11", "%convo compare alt onboarding"),
]


def test_run_all_reproduces_forks_a_switch_a_compact_and_a_compare(
    server: FakeOpenAI, tmp_path: object
) -> None:
    env = notebook_env(server, tmp_path, "shapes.ipynb")
    kernel = NotebookKernel(env=env)
    try:
        assert kernel.run("%load_ext nbconvo", "setup").status == "ok"
        first = run_all(kernel, server, SHAPES)
        assert len(first) == 7  # six turns and the compaction's summary request
        final = kernel.state()
        for generation in (1, 2):
            assert run_all(kernel, server, SHAPES) == first, f"run {generation + 1}"
            state = kernel.state()
            assert state["branch"] == final["branch"]
            for name in ("alt", "onboarding", "main"):
                assert f"{name}@{generation}" in state["branches"], (name, state["branches"])
            assert [row[1] for row in state["path"]] == [row[1] for row in final["path"]]
    finally:
        kernel.close()
    again = NotebookKernel(env=env)
    try:
        assert again.run("%load_ext nbconvo", "setup").status == "ok"
        assert again.run("%convo load", "load").status == "ok"
        assert run_all(again, server, SHAPES) == first, "after a restart and %convo load"
        assert "alt@3" in again.state()["branches"]
    finally:
        again.close()
