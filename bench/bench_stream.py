"""Streaming a realistic answer through ``%%turn`` in a real kernel, against the raw read.

The answers are LLM-style Markdown (``tests/support/corpus.py``: headings, lists, code
with ``<`` and ``>``, long code blocks, long tables, math, links, stray HTML) of 1, 10, 50
and 100 KB, streamed by the loopback server one tiktoken token a chunk.

At 2,000 tokens/s (a fast model), in one kernel, round after round in alternating
order: the kernel's CPU time (every thread: ``time.process_time`` from IPython's
pre/post-run hooks) and wall time while a cell reads the stream with plain httpx +
httpx-sse (decoding each event, keeping its text), and while ``%%turn`` streams the
same answer into the cell. Goals: CPU ≤ 1.3× the raw read, wall ≤ the raw read's wall
(the stream's duration) + 0.2 s. nbconvo's providers read a fast stream in 5 ms gulps
(``providers._http._Gathering``), which costs less than reading each token as it comes;
so, for what the turn adds beyond reading, a third side reads the stream with httpx +
httpx-sse gathering the same way, and its ratio is printed beside (no goal).

At 100 tokens/s (a typical model): the four sizes at once, one kernel each (they mostly
wait on the network), ``%%turn``'s kernel CPU as a share of one core over the stream.
Goal ≤ 5%.

In every ``%%turn``: each display update's own cost (thread CPU inside
``StreamingMarkdown._update``, timed by a wrapper installed in the kernel) and the bytes
each update sends to the front end (the display messages' data, measured by the client).
Goals: both at 100 KB ≤ 1.5× at 1 KB.

Run: ``.venv/bin/python bench/bench_stream.py [--quick] [--sizes 1,50]`` (``--quick``: one
round, 1 and 10 KB unless ``--sizes`` names others, in KB; ``--fast-only``: the 2,000
tokens/s part alone, nothing written).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import threading
from typing import Any

from common import stats, write
from loopback import Loopback, markdown_tokens

from tests.support.kernel_client import NotebookKernel

KEY = "sk-bench-fake-key-0000000000000000"
SIZES = [1024, 10 * 1024, 50 * 1024, 100 * 1024]
FAST, TYPICAL = 2000, 100

SETUP = """
import json, time
import httpx, httpx_sse
import nbconvo._display as _display
from IPython import get_ipython

_ip = get_ipython()
_clock = {}
def _pre(*args):
    _clock['cpu'], _clock['wall'] = time.process_time(), time.perf_counter()
def _post(*args):
    _clock['cpu_used'] = time.process_time() - _clock['cpu']
    _clock['wall_used'] = time.perf_counter() - _clock['wall']
_ip.events.register('pre_run_cell', _pre)
_ip.events.register('post_run_cell', _post)

_updates = []
_original_update = _display.StreamingMarkdown._update
def _timed_update(self):
    started = time.thread_time()
    _original_update(self)
    _updates.append(time.thread_time() - started)
_display.StreamingMarkdown._update = _timed_update

_client = httpx.Client(timeout=None)
def _raw_read(model, gathered=False):
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "go"}]}
    headers = {"authorization": "Bearer %(key)s"}
    parts = []
    with _client.stream("POST", "%(url)s/chat/completions", json=body, headers=headers) as r:
        r.raise_for_status()
        if gathered:  # read as nbconvo's providers read: fast streams in 5 ms gulps
            from nbconvo.providers._http import _Gathering
            r.stream = _Gathering(r.stream)
        for event in httpx_sse.EventSource(r).iter_sse():
            if event.data == "[DONE]":
                continue
            for choice in json.loads(event.data).get("choices") or []:
                text = (choice.get("delta") or {}).get("content")
                if text:
                    parts.append(text)
    return "".join(parts)
%%load_ext nbconvo
"""

FIGURES = "print('FIGURES' + json.dumps({**_clock, 'updates': _updates})); _updates.clear()"


def model(size: int, rate: int) -> str:
    return f"md-{size}-{rate}"


class Kernel:
    def __init__(self, server: Loopback, home: str) -> None:
        env = {
            "OPENAI_API_KEY": KEY,
            "OPENAI_BASE_URL": server.base_url,
            "NBCONVO_HOME": home,
            "NBCONVO_LOAD_NOTICE": "0",
        }
        self.kernel = NotebookKernel(env=env)
        setup = SETUP % {"key": KEY, "url": server.base_url}
        out = self.kernel.run(setup, timeout=120)
        assert out.status == "ok", out.error
        self.turns = 0

    def figures(self) -> dict[str, Any]:
        out = self.kernel.run(FIGURES)
        for output in out.outputs:
            if output.get("text", "").startswith("FIGURES"):
                return dict(json.loads(output["text"][7:]))
        raise AssertionError(f"no figures: {out.outputs}")

    def raw(self, name: str) -> dict[str, Any]:
        out = self.kernel.run(f"_text = _raw_read({name!r})", timeout=900)
        assert out.status == "ok", out.error
        return self.figures()

    def gathered(self, name: str) -> dict[str, Any]:
        out = self.kernel.run(f"_text = _raw_read({name!r}, gathered=True)", timeout=900)
        assert out.status == "ok", out.error
        return self.figures()

    def turn(self, name: str) -> dict[str, Any]:
        self.turns += 1
        assert self.kernel.run(f"%convo new c{self.turns}").status == "ok"
        messages: list[tuple[str, int, bool]] = []

        def seen(kind: str, content: dict[str, Any]) -> None:
            if kind in ("display_data", "update_display_data"):
                data = content.get("data") or {}
                footer = "nbconvo-footer" in data.get("text/html", "")
                messages.append((kind, len(json.dumps(data)), footer))

        msg_id = self.kernel.send(f"%%turn -m openai:{name}\nWrite it up.", f"cell-{self.turns}")
        out = self.kernel.collect(msg_id, timeout=900, on_output=seen)
        assert out.status == "ok", out.error
        figures = self.figures()
        answer = [m for m in messages if not m[2]]
        streamed = answer[:-1]  # the last one is the finished answer
        figures["bytes_per_update"] = (
            sum(size for _, size, _ in streamed) / len(streamed) if streamed else 0.0
        )
        figures["messages"] = len(streamed)
        figures["final_bytes"] = answer[-1][1]
        return figures

    def close(self) -> None:
        self.kernel.close()


def fast(server: Loopback, home: str, sizes: list[int], rounds: int) -> dict[str, Any]:
    kernel = Kernel(server, home)
    results: dict[str, Any] = {}
    try:
        kernel.turn(model(40_000, 0))  # warm: imports, every lexer, the first store write
        kernel.raw(model(2000, 0))
        for size in sizes:
            name = model(size, FAST)
            sides = {"raw": kernel.raw, "turn": kernel.turn, "gathered": kernel.gathered}
            runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
            for i in range(rounds):
                order = list(sides)[i % 3 :] + list(sides)[: i % 3]  # each side first in turn
                for side in order:
                    runs[side].append(sides[side](name))
            results[str(size)] = row = summarize(runs["raw"], runs["turn"])
            gathered = stats([r["cpu_used"] for r in runs["gathered"]])
            row["gathered_cpu"] = gathered
            row["cpu_ratio_gathered"] = row["turn_cpu"]["median"] / gathered["median"]
            print(
                f"{size // 1024:>4} KB at {FAST}/s: raw CPU {row['raw_cpu']['median']:.3f} s, "
                f"%%turn CPU {row['turn_cpu']['median']:.3f} s (×{row['cpu_ratio']:.2f}; "
                f"×{row['cpu_ratio_gathered']:.2f} of a raw read that gathers as %%turn "
                f"does, {gathered['median']:.3f} s); "
                f"wall raw {row['raw_wall']['median']:.2f} s, %%turn "
                f"{row['turn_wall']['median']:.2f} s (+{row['wall_extra']:.2f}); "
                f"update {row['update_ms']:.2f} ms, {row['bytes_per_update']:.0f} B",
                flush=True,
            )
    finally:
        kernel.close()
    return results


def summarize(raw: list[dict[str, Any]], turn: list[dict[str, Any]]) -> dict[str, Any]:
    raw_cpu = stats([r["cpu_used"] for r in raw])
    turn_cpu = stats([r["cpu_used"] for r in turn])
    raw_wall = stats([r["wall_used"] for r in raw])
    turn_wall = stats([r["wall_used"] for r in turn])
    updates = [u for r in turn for u in r["updates"]]
    return {
        "raw_cpu": raw_cpu,
        "turn_cpu": turn_cpu,
        "raw_wall": raw_wall,
        "turn_wall": turn_wall,
        "cpu_ratio": turn_cpu["median"] / raw_cpu["median"],
        "wall_extra": turn_wall["median"] - raw_wall["median"],
        "update_ms": statistics.fmean(updates) * 1e3 if updates else 0.0,
        "update_max_ms": max(updates) * 1e3 if updates else 0.0,
        "updates": statistics.fmean(len(r["updates"]) for r in turn),
        "bytes_per_update": statistics.fmean(r["bytes_per_update"] for r in turn),
        "final_bytes": turn[-1]["final_bytes"],
    }


def typical(server: Loopback, home: str, sizes: list[int]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    def one(size: int) -> None:
        try:
            kernel = Kernel(server, os.path.join(home, str(size)))
            try:
                kernel.turn(model(40_000, 0))
                figures = kernel.turn(model(size, TYPICAL))
            finally:
                kernel.close()
            updates = figures["updates"]
            results[str(size)] = {
                "cpu": figures["cpu_used"],
                "wall": figures["wall_used"],
                "cpu_share": figures["cpu_used"] / figures["wall_used"],
                "update_ms": statistics.fmean(updates) * 1e3 if updates else 0.0,
                "update_max_ms": max(updates) * 1e3 if updates else 0.0,
                "updates": len(updates),
                "bytes_per_update": figures["bytes_per_update"],
            }
            row = results[str(size)]
            print(
                f"{size // 1024:>4} KB at {TYPICAL}/s: {row['wall']:.0f} s, kernel CPU "
                f"{row['cpu']:.2f} s = {row['cpu_share']:.1%} of a core; update "
                f"{row['update_ms']:.2f} ms, {row['bytes_per_update']:.0f} B",
                flush=True,
            )
        except BaseException as error:  # reported after the others finish
            errors.append(error)

    threads = [threading.Thread(target=one, args=(size,)) for size in sizes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def main() -> None:
    quick = "--quick" in sys.argv
    sizes = SIZES[:2] if quick else SIZES
    if "--sizes" in sys.argv:  # e.g. --sizes 1,50 (KB): a subset, while tuning
        sizes = [int(kb) * 1024 for kb in sys.argv[sys.argv.index("--sizes") + 1].split(",")]
    tokens = {str(size): len(markdown_tokens(size)) for size in sizes}
    with tempfile.TemporaryDirectory() as home, Loopback(idle=900) as server:
        sizes_text = ", ".join(f"{int(s) // 1024} KB = {n:,} tokens" for s, n in tokens.items())
        print(f"answers: {sizes_text}")
        fast_results = fast(server, home, sizes, rounds=1 if quick else 3)
        if "--fast-only" in sys.argv:  # while tuning: no 100 tokens/s runs, no figures written
            return
        typical_results = typical(server, home, sizes)
    small, large = str(sizes[0]), str(sizes[-1])
    goals = {
        "cpu_ratio": max(row["cpu_ratio"] for row in fast_results.values()),
        "wall_extra": max(row["wall_extra"] for row in fast_results.values()),
        "cpu_share": max(row["cpu_share"] for row in typical_results.values()),
        "update_ratio": typical_results[large]["update_ms"] / typical_results[small]["update_ms"],
        "bytes_ratio": typical_results[large]["bytes_per_update"]
        / typical_results[small]["bytes_per_update"],
    }
    print(
        f"worst: CPU ×{goals['cpu_ratio']:.2f} (goal ≤ 1.3), wall +{goals['wall_extra']:.2f} s "
        f"(≤ 0.2), {goals['cpu_share']:.1%} of a core at {TYPICAL}/s (≤ 5%), update cost "
        f"×{goals['update_ratio']:.2f} and bytes ×{goals['bytes_ratio']:.2f} at "
        f"{int(large) // 1024} KB vs {int(small) // 1024} KB (≤ 1.5)"
    )
    write(
        "stream",
        {"tokens": tokens, "fast": fast_results, "typical": typical_results, "goals": goals},
    )


if __name__ == "__main__":
    main()
