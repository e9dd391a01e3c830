"""pyinstrument profiles of the paths whose goals are tight or missed, for RESULTS.md:
``%%turn`` streaming a 10,000-token answer, ``Conversation.ask`` at 1,000 turns of
history, and ``%%turn`` with autosave on at 10 turns (the one goal still short). Writes
bench/out/profile-*.txt.

Run: ``.venv/bin/python bench/profile_misses.py``.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench_turn import Bench, autosave
from common import OUT
from loopback import Loopback
from pyinstrument import Profiler


def profile(name: str, run: Callable[[], object], undo: Callable[[], None], count: int) -> None:
    for _ in range(2):
        run()
        undo()
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for _ in range(count):
        run()
        undo()
    profiler.stop()
    text = profiler.output_text(unicode=True, color=False, show_all=False)
    OUT.mkdir(exist_ok=True)
    (OUT / f"profile-{name}.txt").write_text(text)
    print(f"wrote {OUT / f'profile-{name}.txt'}", file=sys.stderr)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp, Loopback() as server:
        home = Path(tmp)
        bench = Bench(server, home)
        autosave(False, home)
        bench.setup(0, "bench-10000")
        profile("streaming", bench.turn, bench.undo_turn, 4)
        bench.setup(1000, "bench-300")
        profile("ask-1000", bench.ask, bench.undo_ask, 30)
        bench.setup(10, "bench-300")
        autosave(True, home)
        profile("turn-autosave-10", bench.turn, bench.undo_turn, 100)
    return 0


if __name__ == "__main__":
    sys.exit(main())
