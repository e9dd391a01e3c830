"""Counts the reliability suite reports at the end of a run (faults injected, bad inputs,
leaks found, …); tests/conftest.py prints them in pytest's terminal summary."""

from __future__ import annotations

from collections import Counter

COUNTS: Counter[str] = Counter()


def add(name: str, n: int = 1) -> None:
    COUNTS[name] += n
