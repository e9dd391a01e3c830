"""Meter update cost at 10 vs 1,000 turns (issue: the ratio must stay under 1.5).

One "update" is what happens after each turn: a new turn is appended and the meter is
read (which tokenizes the new turn once). Timed with perf_counter over many
repetitions; prints median and spread."""

from __future__ import annotations

import itertools
import statistics
import sys
import time

from nbconvo._conversation import Conversation
from nbconvo._tree import Turn

PROMPT = "What signals identify at-risk customers in our product? " * 3
ANSWER = "Usage drops, support tickets, missed renewals and quiet champions. " * 8


def build(turns: int) -> Conversation:
    convo = Conversation(model="openai:gpt-test", window=10_000_000, system="Be brief.")
    for i in range(turns):
        add(convo, i)
    _ = convo.meter
    return convo


_unique = itertools.count()


def add(convo: Conversation, i: int) -> None:
    # Unique text every time: the tokenizer's cache must not flatter the measurement.
    tree = convo.tree
    n = next(_unique)
    tree.append(
        Turn(id=tree.new_turn_id(), parent=None, prompt=f"{PROMPT} {n}", answer=f"{ANSWER} {n}")
    )


def update_cost(turns: int, repeats: int = 300) -> list[float]:
    convo = build(turns)
    samples = []
    for i in range(repeats):
        tree = convo.tree
        add(convo, turns + i)
        started = time.perf_counter()
        _ = convo.meter  # the meter after the new turn
        samples.append(time.perf_counter() - started)
        tree.undo()  # stay at the same size: the next sample measures the same length
    return samples


def main() -> int:
    rows = {}
    for turns in (10, 1000):
        runs = [statistics.median(update_cost(turns)) for _ in range(7)]
        rows[turns] = runs
    small, large = statistics.median(rows[10]), statistics.median(rows[1000])
    ratio = large / small
    for turns, runs in rows.items():
        print(
            f"meter update at {turns:>5} turns: median {statistics.median(runs) * 1e6:7.1f} µs "
            f"(runs {min(runs) * 1e6:.1f}–{max(runs) * 1e6:.1f} µs)"
        )
    verdict = "met" if ratio < 1.5 else "MISSED"
    print(f"ratio 1,000 / 10 turns: {ratio:.2f} (goal < 1.5: {verdict})")
    return 0 if ratio < 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
