"""Scale: a conversation of 10,000 turns in 50 branches (200 turns each; 49 forks from
spread-out turns of earlier branches). Memory of the tree (tracemalloc), the cost of one
meter update and one widget update after a new turn (at 10,000 turns vs at 10), and the
time to write the session to a portable file (`%convo save`) and to load it back (the
store's figures: bench_store.py).

Run: ``.venv/bin/python bench/bench_scale.py [--quick]``.
"""

from __future__ import annotations

import gc
import itertools
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench_widget import attach
from common import stats, write

from nbconvo._conversation import Conversation
from nbconvo._document import save_session
from nbconvo._session import Session
from nbconvo._tree import Turn
from nbconvo._widget import ConvoWidget

PROMPT = "What signals identify at-risk customers in our product? " * 3
ANSWER = "Usage drops, support tickets, missed renewals and quiet champions. " * 8


def build(branches: int, per_branch: int) -> Conversation:
    convo = Conversation(model="openai:gpt-4o", window=10_000_000_000, system="Be brief.")
    tree = convo.tree
    n = 0
    tips: list[int] = []
    for b in range(branches):
        if b:
            base = tips[b - 1] - per_branch // 2  # the middle of the previous branch
            convo.fork_at(base, f"branch-{b}")
        for _ in range(per_branch):
            n += 1
            turn = tree.append(
                Turn(
                    id=tree.new_turn_id(),
                    parent=None,
                    prompt=f"{PROMPT} {n}",
                    answer=f"{ANSWER} {n}",
                )
            )
        tips.append(turn.id)
    return convo


_unique = itertools.count()


def add(convo: Conversation) -> None:
    # Unique text every time: the tokenizer's cache must not flatter the measurement.
    tree = convo.tree
    n = next(_unique)
    tree.append(
        Turn(id=tree.new_turn_id(), parent=None, prompt=f"{PROMPT} x{n}", answer=f"{ANSWER} x{n}")
    )


def update_costs(convo: Conversation, repeats: int) -> tuple[list[float], list[float]]:
    """Meter after a new turn; widget refresh after a new turn (its comm records)."""
    _ = convo.meter
    widget = ConvoWidget.for_conversation(convo)
    attach(widget)
    widget.refresh()
    meter, refresh = [], []
    for _ in range(repeats):
        add(convo)
        t0 = time.perf_counter()
        _ = convo.meter
        t1 = time.perf_counter()
        widget.refresh()
        t2 = time.perf_counter()
        meter.append(t1 - t0)
        refresh.append(t2 - t1)
        convo.tree.undo()
    widget.close()
    return meter, refresh


def main() -> int:
    quick = "--quick" in sys.argv
    out: dict[str, Any] = {}
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    big = build(50, 200)
    _ = big.meter  # the ledger's token counts are part of what a conversation holds
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    text_bytes = sum(len(t.prompt) + len(t.answer) for t in big.tree.turns.values())
    out["turns"] = len(big.tree)
    out["branches"] = len(big.tree.branches)
    out["memory_mb"] = (after - before) / 1e6
    out["text_mb"] = text_bytes / 1e6
    print(
        f"{out['turns']} turns, {out['branches']} branches: {out['memory_mb']:.1f} MB "
        f"(of which text {out['text_mb']:.1f} MB)",
        flush=True,
    )
    small = build(1, 10)
    repeats = 50 if quick else 200
    for name, convo in (("10", small), ("10000", big)):
        meter, refresh = update_costs(convo, repeats)
        out[f"meter_{name}"], out[f"widget_{name}"] = stats(meter), stats(refresh)
        print(
            f"at {name:>5} turns: meter update {out[f'meter_{name}']['median'] * 1e6:.0f} µs · "
            f"widget update {out[f'widget_{name}']['median'] * 1e6:.0f} µs",
            flush=True,
        )
    session = Session()
    session.conversations = {"default": big}
    saves, loads = [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.nbconvo.json"
        for _ in range(2 if quick else 5):
            t0 = time.perf_counter()
            save_session(session, path)
            t1 = time.perf_counter()
            Session().load(path)
            t2 = time.perf_counter()
            saves.append(t1 - t0)
            loads.append(t2 - t1)
        out["file_mb"] = path.stat().st_size / 1e6
    out["save"], out["load"] = stats(saves), stats(loads)
    print(
        f"save {out['save']['median'] * 1e3:.0f} ms · load {out['load']['median'] * 1e3:.0f} ms "
        f"({out['file_mb']:.1f} MB file)",
        flush=True,
    )
    write("scale", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
