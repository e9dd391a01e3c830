"""Against the peers on the same loopback server: the same 20-turn dialogue through
nbconvo's ``%%turn``, jupyter-ai-magics' ``%%ai`` (its OpenAI general interface with the
server as base URL) and llm's Python conversation API, each in its own environment and
a fresh process, rounds in rotating order. Reports each one's wall time, its ratio to
nbconvo, and what each sent: messages and ≈tokens (4 characters a token) of the last
request, and the total over the dialogue, as the server saw them.

Run: ``.venv/bin/python bench/bench_peers.py [--quick]``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from typing import Any

from common import BENCH, ROOT, stats, write
from loopback import Loopback

TURNS = 20
TOOLS = {
    "nbconvo": ROOT / ".venv/bin/python",
    "jupyter-ai": BENCH / ".venv-jupyter-ai/bin/python",
    "llm": BENCH / ".venv-llm/bin/python",
}


def dialogue(python: str, tool: str, server: Loopback) -> tuple[list[float], list[dict[str, Any]]]:
    server.reset_stats()
    done = subprocess.run(
        [python, str(BENCH / "peer_dialogue.py"), tool, server.base_url, str(TURNS)],
        capture_output=True,
        text=True,
        cwd=str(BENCH),
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{tool} failed:\n{done.stderr[-2000:]}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    if min(data["lengths"]) < 1000:
        raise RuntimeError(f"{tool}: short answers {data['lengths']}")
    return data["times"], server.stats()


def main() -> int:
    rounds = 1 if "--quick" in sys.argv else 5
    tools = {name: str(p) for name, p in TOOLS.items() if p.exists()}
    missing = sorted(set(TOOLS) - set(tools))
    totals: dict[str, list[float]] = {n: [] for n in tools}
    steady: dict[str, list[float]] = {n: [] for n in tools}
    first: dict[str, list[float]] = {n: [] for n in tools}
    sent: dict[str, list[dict[str, Any]]] = {}
    names = list(tools)
    with Loopback() as server:
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                times, requests = dialogue(tools[name], name, server)
                totals[name].append(sum(times))
                first[name].append(times[0])
                steady[name].append(statistics.median(times[1:]))
                sent[name] = requests
    out: dict[str, Any] = {"turns": TURNS, "missing": missing}
    for name in tools:
        requests = sent[name]
        out[name] = {
            "total": stats(totals[name]),
            "first": stats(first[name]),
            "steady": stats(steady[name]),
            "requests": len(requests),
            "last_messages": requests[-1]["messages"],
            "last_tokens": requests[-1]["tokens"],
            "sum_tokens": sum(q["tokens"] for q in requests),
        }
    for name in tools:
        row = out[name]
        row["ratio_total"] = row["total"]["median"] / out["nbconvo"]["total"]["median"]
        row["ratio_steady"] = row["steady"]["median"] / out["nbconvo"]["steady"]["median"]
        print(
            f"{name:>10}: 20 turns {row['total']['median'] * 1e3:7.0f} ms "
            f"(×{row['ratio_total']:.2f}) · first {row['first']['median'] * 1e3:6.0f} ms · "
            f"then {row['steady']['median'] * 1e3:6.1f} ms/turn (×{row['ratio_steady']:.2f}) · "
            f"last request {row['last_messages']} messages ≈{row['last_tokens']} tokens",
            flush=True,
        )
    for name in missing:
        print(f"{name}: environment missing, not measured (`make bench` creates it)")
    write("peers", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
