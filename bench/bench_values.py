"""Rendering a notebook value for the model (issue #16: a DataFrame of 1,000,000 rows ×
20 columns in under 100 ms, within its token budget).

The frame is what a user has after loading a real table: floats with missing values,
integers, two text columns and a timestamp. Each render is timed with perf_counter; the
first one (tokenizer warm, pandas' lazy imports done by the frame's construction) and
the median of the next seven are printed, for pandas and for polars, with the tokens
of the text against the budget."""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np
import pandas as pd
import polars as pl

from nbconvo._tokens import count_text
from nbconvo._values import DEFAULT_VALUE_TOKENS, render_value

ROWS = 1_000_000
GOAL_MS = 100.0


def columns() -> dict[str, object]:
    rng = np.random.default_rng(16)
    columns: dict[str, object] = {f"reading_{i}": rng.normal(size=ROWS) for i in range(14)}
    columns["missing"] = np.where(rng.random(ROWS) < 0.1, np.nan, rng.normal(size=ROWS))
    columns["units"] = rng.integers(0, 1_000, ROWS)
    columns["store"] = rng.integers(0, 50, ROWS)
    columns["region"] = rng.choice(["north", "south", "east", "west"], ROWS)
    columns["product"] = rng.choice([f"sku-{i:04d}" for i in range(500)], ROWS)
    columns["at"] = pd.date_range("2020-01-01", periods=ROWS, freq="min").to_numpy()
    return columns


def measure(name: str, value: object) -> bool:
    started = time.perf_counter()
    rendered = render_value("df", value)
    first = (time.perf_counter() - started) * 1000
    times = []
    for _ in range(7):
        started = time.perf_counter()
        rendered = render_value("df", value)
        times.append((time.perf_counter() - started) * 1000)
    median = statistics.median(times)
    tokens = count_text(rendered.text)
    ok = median < GOAL_MS and tokens <= DEFAULT_VALUE_TOKENS
    print(
        f"{name:<8} first {first:6.1f} ms · median of 7 {median:6.1f} ms "
        f"(min {min(times):.1f}, max {max(times):.1f}) · {tokens:,} of "
        f"{DEFAULT_VALUE_TOKENS:,} tokens · goal < {GOAL_MS:.0f} ms: {'met' if ok else 'MISSED'}"
    )
    return ok


def main() -> int:
    count_text("warm the tokenizer")
    data = columns()
    print(f"values: a DataFrame of {ROWS:,} rows × {len(data)} columns rendered for the model")
    results = [measure("pandas", pd.DataFrame(data)), measure("polars", pl.DataFrame(data))]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
