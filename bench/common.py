"""Shared by the benchmarks: statistics, and where each one leaves its figures.

Each benchmark writes ``bench/out/NAME.json``; ``bench/report.py`` turns them into
``bench/RESULTS.md``.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def stats(samples: list[float]) -> dict[str, float]:
    """Median, quartiles, min and max, and the count."""
    ordered = sorted(samples)
    if len(ordered) >= 4:
        q1, _, q3 = statistics.quantiles(ordered, n=4)
    else:
        q1, q3 = ordered[0], ordered[-1]
    return {
        "median": statistics.median(ordered),
        "q1": q1,
        "q3": q3,
        "min": ordered[0],
        "max": ordered[-1],
        "n": len(ordered),
    }


def fmt_ms(s: dict[str, float], scale: float = 1e3, unit: str = "ms", digits: int = 2) -> str:
    return (
        f"{s['median'] * scale:.{digits}f} {unit} "
        f"(IQR {s['q1'] * scale:.{digits}f}–{s['q3'] * scale:.{digits}f}, n={s['n']})"
    )


def write(name: str, data: dict[str, Any]) -> Path:
    OUT.mkdir(exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(data, indent=1))
    return path
