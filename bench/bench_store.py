"""The session store (issue #12): what one turn's save costs at 10 and at 10,000 turns
of history, and how long a 10,000-turn session takes to restore.

The turns are realistic in size (a paragraph of prompt, a Markdown answer of ≈1.5 kB
with a list, a table and code), the histories branch (50 branches of 200 turns for the
10,000), and the save is the one a finished `%%turn` triggers: the session's writer
committing one new turn, its branch pointer and the session's time, in one transaction
on a WAL database. Sides alternate round by round. The `%%turn` with autosave on vs off
is measured by bench_turn.py on the loopback server; the report puts the three together.

Run: ``.venv/bin/python bench/bench_store.py [--quick]``.
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import stats, write

from nbconvo._conversation import Conversation
from nbconvo._events import TurnAdded
from nbconvo._session import Session
from nbconvo._tree import Turn

PROMPT = (
    "Let's focus on proactive outreach. Which signals identify at-risk customers in our "
    "product, and how would you rank them by how early they warn us? "
)
ANSWER = """## Early signals, ranked

1. **Usage drops**: weekly active seats fall by a third over two weeks.
2. **Support friction**: two or more tickets about the same feature.
3. **Quiet champions**: the admin who bought it stops logging in.

| signal | lead time | precision |
| --- | --- | --- |
| usage drop | 6–8 weeks | high |
| tickets | 3–4 weeks | medium |

```python
def at_risk(account) -> bool:
    return account.seats_active < 0.66 * account.seats_bought and account.tickets_30d >= 2
```

A $p < 0.05$ lift in renewals is what the pilot should show. <b>Stray HTML</b> stays text.
"""


def populate(session: Session, branches: int, per_branch: int) -> Conversation:
    """A conversation of branches × per_branch turns, each branch forked from the middle
    of the previous one, saved turn by turn as a live kernel would."""
    convo = session.current()
    convo.model = "openai:gpt-4o"
    tree = convo.tree
    for b in range(branches):
        if b:
            convo.fork(max(1, len(convo.path) // 2), f"b{b}")
        for i in range(per_branch):
            turn = tree.append(
                Turn(
                    id=tree.new_turn_id(), parent=tree.head, prompt=f"{PROMPT} ({b}.{i})",
                    answer=ANSWER, cell_id=f"cell-{b}-{i}", provider="openai", model="gpt-4o",
                    input_tokens=1000 + i, output_tokens=300, usage_exact=True,
                    started_at=time.time(), finished_at=time.time(),
                )
            )
            convo._changed(TurnAdded(turn.id))
    return convo


def one_turn_saves(session: Session, count: int) -> list[float]:
    """Append a turn and time the save it triggers, ``count`` times."""
    convo = session.current()
    tree = convo.tree
    samples = []
    for i in range(count):
        tree.append(
            Turn(id=tree.new_turn_id(), parent=tree.head, prompt=f"{PROMPT} (more {i})",
                 answer=ANSWER, cell_id=f"more-{i}", provider="openai", model="gpt-4o")
        )
        started = time.perf_counter()
        session.save_now()
        samples.append(time.perf_counter() - started)
        if session.autosave_error:
            raise RuntimeError(session.autosave_error)
    return samples


def main() -> int:
    quick = "--quick" in sys.argv
    out: dict[str, Any] = {}
    rounds = 10 if quick else 40
    per_round = 10
    with tempfile.TemporaryDirectory() as folder:
        small_path, big_path = Path(folder) / "small.nbconvo.db", Path(folder) / "big.nbconvo.db"
        small = Session(locate_store=lambda: small_path)
        big = Session(locate_store=lambda: big_path)
        populate(small, 1, 10)
        populate(big, 50, 200)
        out["history_turns"] = {"10": len(small.current().tree), "10000": len(big.current().tree)}
        saves: dict[str, list[float]] = {"10": [], "10000": []}
        gc.collect()
        for r in range(rounds + 2):  # 2 warm-up rounds
            for name, session in (("10", small), ("10000", big))[:: 1 if r % 2 else -1]:
                samples = one_turn_saves(session, per_round)
                if r >= 2:
                    saves[name] += samples
        for name in saves:
            out[f"save_{name}"] = stats(saves[name])
        out["save_ratio"] = out["save_10000"]["median"] / out["save_10"]["median"]
        out["db_mb"] = big_path.stat().st_size / 1e6
        print(
            f"one turn's save: {out['save_10']['median'] * 1e3:.3f} ms at 10 turns, "
            f"{out['save_10000']['median'] * 1e3:.3f} ms at "
            f"{out['history_turns']['10000']:,} turns (ratio {out['save_ratio']:.2f})",
            flush=True,
        )
        for store in (small.writer().store, big.writer().store):
            if store is not None:
                store.close()
        # Restoring: a new kernel's session reads the 10,000-turn one back.
        loads = []
        for _ in range(3 if quick else 10):
            fresh = Session(locate_store=lambda: big_path)
            started = time.perf_counter()
            chosen = fresh.restore()
            loads.append(time.perf_counter() - started)
            assert chosen.turns >= 10_000 and len(fresh.current().tree) == chosen.turns
            fresh.writer().store.close()  # type: ignore[union-attr]
        out["load_10000"] = stats(loads)
        print(f"restore of a 10,000-turn session: {out['load_10000']['median'] * 1e3:.0f} ms")
    write("store", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
