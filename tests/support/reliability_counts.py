"""Counts the reliability suite reports at the end of a run (faults injected, bad inputs,
leaks found, …); tests/conftest.py prints them in pytest's terminal summary."""

from __future__ import annotations

from collections import Counter

COUNTS: Counter[str] = Counter()


def add(name: str, n: int = 1) -> None:
    COUNTS[name] += n


def campaign_seed() -> int:
    """The seed of the randomized campaigns: fixed by default, so `make test` draws the
    same faults every run; NBCONVO_CAMPAIGN_SEED=N replays run N, =random draws a new one
    (printed with the counts, so a failure can be replayed)."""
    import os
    import random

    chosen = os.environ.get("NBCONVO_CAMPAIGN_SEED", "").strip()
    if chosen == "random":
        return random.SystemRandom().randrange(1, 10**9)
    return int(chosen) if chosen else 20261129
