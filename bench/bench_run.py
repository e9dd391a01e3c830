"""Regeneration: ``nbconvo run`` of a 50-turn notebook replayed from a cassette, vs the
same notebook with its turns replaced by trivial Python cells (kernel start and nbclient
overhead being the floor). The cassette is recorded first against the loopback server
(300-token answers); then the two notebooks run in alternating order.

Run: ``.venv/bin/python bench/bench_run.py [--quick]``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat
from common import stats, write
from loopback import Loopback

from nbconvo._cli import run_notebook

TURNS = 50
MODEL = "openai:bench-300"
KEY = "sk-bench-fake-key-0000000000000000"


def notebooks(folder: Path) -> tuple[Path, Path]:
    first = nbformat.v4.new_code_cell("%load_ext nbconvo")
    turns = nbformat.v4.new_notebook()
    turns.cells = [first] + [
        nbformat.v4.new_code_cell(f"%%turn\nQuestion {i}: what would you check next, and why?")
        for i in range(TURNS)
    ]
    trivial = nbformat.v4.new_notebook()
    trivial.cells = [nbformat.v4.new_code_cell("%load_ext nbconvo")] + [
        nbformat.v4.new_code_cell(f"x = {i}") for i in range(TURNS)
    ]
    paths = folder / "turns.ipynb", folder / "trivial.ipynb"
    for path, nb in zip(paths, (turns, trivial), strict=True):
        nbformat.write(nb, path)
    return paths


def run(path: Path, folder: Path, cassette: Path | None, mode: str = "replay") -> float:
    started = time.perf_counter()
    run_notebook(
        path,
        output=folder / f"{path.stem}.out.ipynb",
        transcript=folder / f"{path.stem}.out.md",
        model=MODEL,
        cassette=cassette,
        mode=mode,
        progress=False,
    )
    return time.perf_counter() - started


def main() -> int:
    rounds = 1 if "--quick" in sys.argv else 5
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        turns, trivial = notebooks(folder)
        cassette = folder / "turns.jsonl"
        os.environ["NBCONVO_HOME"] = str(folder)
        with Loopback() as server:
            os.environ["OPENAI_API_KEY"] = KEY
            os.environ["OPENAI_BASE_URL"] = server.base_url
            record = run(turns, folder, cassette, mode="record")
        # Replay needs no server: point the kernel at a closed port to prove it.
        os.environ["OPENAI_BASE_URL"] = "http://127.0.0.1:9/v1"
        samples: dict[str, list[float]] = {"turns": [], "trivial": []}
        for r in range(rounds):
            order = ("turns", "trivial") if r % 2 == 0 else ("trivial", "turns")
            for name in order:
                if name == "turns":
                    samples[name].append(run(turns, folder, cassette))
                else:
                    samples[name].append(run(trivial, folder, None))
    out: dict[str, Any] = {"record": record, "turns_count": TURNS}
    for name, values in samples.items():
        out[name] = stats(values)
    out["ratio"] = out["turns"]["median"] / out["trivial"]["median"]
    print(
        f"nbconvo run, {TURNS} turns from a cassette: {out['turns']['median']:.2f} s · "
        f"trivial cells {out['trivial']['median']:.2f} s · ratio {out['ratio']:.2f} "
        f"(recording against the loopback server: {record:.2f} s)",
        flush=True,
    )
    write("run", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
