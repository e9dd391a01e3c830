# ruff: noqa: E501  (Markdown table rows and their f-strings read better whole)
"""Writes ``bench/RESULTS.md`` from the figures the benchmarks left in ``bench/out/``.

Run last by ``make bench``; a benchmark that did not run is listed as not measured.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import BENCH, OUT, ROOT

RESULTS = BENCH / "RESULTS.md"


def load(name: str) -> dict[str, Any] | None:
    path = OUT / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def text(name: str) -> str | None:
    path = OUT / f"{name}.txt"
    return path.read_text().strip() if path.exists() else None


def ms(s: dict[str, float], digits: int = 2, scale: float = 1e3, unit: str = "ms") -> str:
    return (
        f"{s['median'] * scale:.{digits}f} {unit} "
        f"(IQR {s['q1'] * scale:.{digits}f}–{s['q3'] * scale:.{digits}f}; "
        f"range {s['min'] * scale:.{digits}f}–{s['max'] * scale:.{digits}f}; n={s['n']})"
    )


def analysis() -> list[str]:
    path = BENCH / "analysis.md"  # the profiles' reading, written by hand
    return path.read_text().strip().splitlines() if path.exists() else []


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def version(python: Path, dist: str) -> str:
    if not python.exists():
        return "not installed"
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return done.stdout.strip() or "?"


def machine() -> list[str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{mem_kb / 1e6:.1f} GB"
    except (OSError, ValueError, IndexError):
        mem = "?"
    main = ROOT / ".venv/bin/python"
    ai = BENCH / ".venv-jupyter-ai/bin/python"
    llm = BENCH / ".venv-llm/bin/python"
    versions = ", ".join(
        f"{d} {version(main, d)}" for d in ("nbconvo", "httpx", "httpx-sse", "ipython", "tiktoken")
    )
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return [
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; commit {commit}",
        f"- Machine: {cpu}, {os.cpu_count()} cores, {mem} RAM, {platform.platform()}; "
        f"load average when the report was written {os.getloadavg()[0]:.2f} "
        "(the cores are shared with other work: hence alternating runs and spreads)",
        f"- Python {platform.python_version()}; {versions}",
        f"- Peers: jupyter-ai-magics {version(ai, 'jupyter-ai-magics')} with langchain-openai "
        f"{version(ai, 'langchain-openai')} (bench/.venv-jupyter-ai); llm {version(llm, 'llm')} "
        "(bench/.venv-llm)",
    ]


def main() -> int:
    lines = [
        "# nbconvo benchmarks",
        "",
        "Written by `make bench` (`bench/report.py` from `bench/out/*.json`). Each figure is a",
        "median with its spread (interquartile range, full range, number of samples) over",
        "repeated runs; comparisons alternate their sides run by run on the same loopback",
        "server (`bench/loopback.py`: 127.0.0.1, its own process, zero delay), so noise from",
        "the shared machine lands on both sides.",
        "",
        *machine(),
        "- Figures written (UTC; a benchmark not rerun keeps its last figures): "
        + ", ".join(
            f"{path.stem} {time.strftime('%Y-%m-%d %H:%M', time.gmtime(path.stat().st_mtime))}"
            for path in sorted(OUT.glob("*.json"))
        ),
        "",
    ]
    headline: list[tuple[str, str, str]] = []

    # 2. per-turn overhead
    lines += ["## Per-turn overhead vs the physical limit (item 2)", ""]
    lines += [
        "One turn of a 300-chunk answer. *raw* is httpx + httpx-sse posting the very body",
        "nbconvo sends and JSON-decoding every event (the limit); *ask* is",
        "`Conversation.ask`; *%%turn* is the cell magic in an `InteractiveShell` (display",
        "updates included) with the default autosave on (one SQLite transaction a turn, see",
        "`_store.StoreWriter`), and with autosave off. The ratio is median / median of raw;",
        "*paired* is the median of the per-round ratios. The goal is checked on `ask` and on",
        "`%%turn` as users run it (autosave on).",
        "",
        "| history | raw | ask | %%turn, autosave off | %%turn | ratio ask | ratio %%turn, autosave off | ratio %%turn | goal |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    turn = load("turn")
    if turn:
        for history, goal in ((10, 1.10), (1000, 1.15)):
            r = turn[f"overhead_{history}"]
            ask_ok, turn_ok = r["ratio_ask"] <= goal, r["ratio_turn_autosave"] <= goal
            ok = ask_ok and turn_ok
            lines.append(
                f"| {history:,} turns ({r['body_bytes'] / 1e3:,.0f} kB body) | {ms(r['raw'])} | "
                f"{ms(r['ask'])} | {ms(r['turn'])} | {ms(r['turn_autosave'])} | "
                f"{r['ratio_ask']:.3f} (paired {r['paired_ask']['median']:.3f}) | "
                f"{r['ratio_turn']:.3f} (paired {r['paired_turn']['median']:.3f}) | "
                f"{r['ratio_turn_autosave']:.3f} (paired {r['paired_turn_autosave']['median']:.3f}) | "
                f"≤ {goal:.2f}: {verdict(ok)} |"
            )
            headline.append(
                (
                    f"one turn / raw httpx, {history:,} turns of history",
                    f"ask {r['ratio_ask']:.2f}, %%turn {r['ratio_turn_autosave']:.2f} "
                    f"(autosave off: {r['ratio_turn']:.2f})",
                    f"≤ {goal:.2f}: ask {verdict(ask_ok)}, %%turn {verdict(turn_ok)}",
                )
            )
    else:
        lines.append("| not measured | | | | | | | | |")
    lines.append("")

    # 1. load
    lines += ["## Load time (item 1)", ""]
    ld = load("load")
    if ld:
        lines += [
            "A fresh process: create an `InteractiveShell`, then load. *load* is the load",
            "itself (what the extension adds); *process* is the whole process, start to exit.",
            "",
            "| | load | process |",
            "|---|---|---|",
        ]
        for name in ("bare IPython", "nbconvo", "jupyter-ai-magics", "llm"):
            if name in ld:
                what = (
                    "`import llm`"
                    if name == "llm"
                    else (
                        "—" if name == "bare IPython" else f"`%load_ext {name.replace('-', '_')}`"
                    )
                )
                lines.append(
                    f"| {name} ({what}) | {ms(ld[name]['load'], 1)} | {ms(ld[name]['process'], 0)} |"
                )
        for name in ld.get("missing", []):
            lines.append(f"| {name} | not measured: its environment is missing | |")
        if "ratio_nbconvo_to_jupyter_ai" in ld:
            ratio = ld["ratio_nbconvo_to_jupyter_ai"]
            lines += [
                "",
                f"nbconvo adds {ratio:.3f}× what jupyter-ai-magics adds (goal < 0.1: {verdict(ratio < 0.1)}).",
            ]
            headline.append(
                (
                    "load: nbconvo / jupyter-ai-magics",
                    f"{ratio:.3f}",
                    f"< 0.1: {verdict(ratio < 0.1)}",
                )
            )
    else:
        lines.append("Not measured.")
    lines.append("")

    # 3. peers
    lines += ["## Against the peers on the same server (item 3)", ""]
    pr = load("peers")
    if pr:
        lines += [
            f"The same {pr['turns']}-turn dialogue (300-token answers), each tool in its own",
            "environment and a fresh process, loaded before the clock starts; rounds in",
            "rotating order. *first* is the first turn (lazy loading), *then* the median of",
            "turns 2–20. *Sent* is what the server received: messages and ≈tokens (4",
            "characters a token) in the last request, and over the whole dialogue.",
            "",
            "| | 20 turns | ratio to nbconvo | first turn | then, per turn | ratio | last request | sent in all |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name in ("nbconvo", "jupyter-ai", "llm"):
            if name in pr:
                r = pr[name]
                lines.append(
                    f"| {name} | {ms(r['total'], 0)} | {r['ratio_total']:.2f} | {ms(r['first'], 0)} | "
                    f"{ms(r['steady'], 1)} | {r['ratio_steady']:.2f} | {r['last_messages']} messages, "
                    f"≈{r['last_tokens']:,} tokens | ≈{r['sum_tokens']:,} tokens |"
                )
                if name != "nbconvo":
                    headline.append(
                        (
                            f"20-turn dialogue: {name} / nbconvo",
                            f"{r['ratio_total']:.2f} (per turn after the first: {r['ratio_steady']:.2f})",
                            "no goal",
                        )
                    )
        for name in pr.get("missing", []):
            lines.append(f"| {name} | not measured: its environment is missing | | | | | | |")
        lines += [
            "",
            "jupyter-ai-magics sends only the last exchanges (`AiMagics.max_history`, 2 by",
            "default), so its requests stay small and its model loses the earlier",
            "conversation; nbconvo and llm send the whole history. `%%ai` does not stream:",
            "it asks for the whole answer in one JSON body, which is why its turns after the",
            "first are cheaper than a 300-event stream. llm streams through the OpenAI SDK;",
            "its ≈50 ms a turn is CPU time in its own process (≈47 ms of CPU a turn, ≈150 µs",
            "an event, measured with `time.process_time`), not waiting on the server; it was",
            "not profiled further. Each tool's first turn includes its",
            "lazy loading (nbconvo's: httpx and the provider; the tokenizer is not loaded",
            "when the server reports usage).",
        ]
    else:
        lines.append("Not measured.")
    lines.append("")

    # 4. streaming display
    lines += ["## Streaming display: realistic answers (item 4, issue #15)", ""]
    sd = load("stream")
    if sd:
        g = sd["goals"]
        lines += [
            "LLM-style Markdown (`tests/support/corpus.py`: headings, lists, code with `<` and `>`,",
            "a 145-line code block, a 60-row table, math, links, stray HTML) streamed one tiktoken",
            "token a chunk into `%%turn` in a real kernel. *raw* is a cell reading the same stream",
            "with plain httpx + httpx-sse (decoding each event). CPU is the kernel's, every thread",
            "(`time.process_time` between IPython's pre- and post-run hooks), so the display's own",
            "work, its messages included, is counted. *update* is the mean thread CPU of one",
            "display update; *bytes* what one update sends to the front end (its data, measured",
            "by the client), the final answer left out. nbconvo reads a fast stream in 5 ms",
            "gulps (`providers/_http.py`, `_Gathering`), cheaper than a token a read: *gathered*",
            "is the raw read gathering the same way, and *÷ gathered* what the turn costs over it",
            "(no goal: what the display and the turn add beyond reading).",
            "",
            f"At {2000:,} tokens/s (a fast model), medians of alternating rounds:",
            "",
            "| answer | tokens | raw CPU | %%turn CPU | ratio (≤ 1.3) | gathered | ÷ gathered | raw wall | %%turn wall | extra (≤ 0.2 s) | updates | update | bytes |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for size, row in sd["fast"].items():
            gathered = row.get("gathered_cpu", {}).get("median")
            lines.append(
                f"| {int(size) // 1024} KB | {sd['tokens'][size]:,} | {row['raw_cpu']['median']:.3f} s | "
                f"{row['turn_cpu']['median']:.3f} s | {row['cpu_ratio']:.2f}: {verdict(row['cpu_ratio'] <= 1.3)} | "
                + (
                    f"{gathered:.3f} s | {row['cpu_ratio_gathered']:.2f} | "
                    if gathered is not None
                    else "— | — | "
                )
                + f"{row['raw_wall']['median']:.2f} s | {row['turn_wall']['median']:.2f} s | "
                f"{row['wall_extra']:+.2f} s: {verdict(row['wall_extra'] <= 0.2)} | {row['updates']:.0f} | "
                f"{row['update_ms']:.2f} ms | {row['bytes_per_update']:,.0f} B |"
            )
        lines += [
            "",
            f"At {100} tokens/s (a typical model), the four sizes at once, one kernel each:",
            "",
            "| answer | stream | kernel CPU | share of a core (≤ 5%) | updates | update | bytes |",
            "|---|---|---|---|---|---|---|",
        ]
        for size, row in sd["typical"].items():
            lines.append(
                f"| {int(size) // 1024} KB | {row['wall']:.0f} s | {row['cpu']:.2f} s | "
                f"{row['cpu_share']:.1%}: {verdict(row['cpu_share'] <= 0.05)} | {row['updates']} | "
                f"{row['update_ms']:.2f} ms | {row['bytes_per_update']:,.0f} B |"
            )
        lines += [
            "",
            f"- One update at the largest answer vs the smallest (100 tokens/s): cost "
            f"×{g['update_ratio']:.2f}, bytes ×{g['bytes_ratio']:.2f} (goal ≤ 1.5: "
            f"{verdict(g['update_ratio'] <= 1.5)}, {verdict(g['bytes_ratio'] <= 1.5)})",
        ]
        headline += [
            (
                "streaming at 2,000 tokens/s: %%turn CPU / raw read, worst size",
                f"{g['cpu_ratio']:.2f}",
                f"≤ 1.3: {verdict(g['cpu_ratio'] <= 1.3)}",
            ),
            (
                "streaming at 2,000 tokens/s: %%turn wall − stream, worst size",
                f"{g['wall_extra']:+.2f} s",
                f"≤ 0.2 s: {verdict(g['wall_extra'] <= 0.2)}",
            ),
            (
                "streaming at 100 tokens/s: kernel CPU, worst size",
                f"{g['cpu_share']:.1%} of a core",
                f"≤ 5%: {verdict(g['cpu_share'] <= 0.05)}",
            ),
            (
                "streaming: one update's cost / bytes, 100 KB vs 1 KB",
                f"×{g['update_ratio']:.2f} / ×{g['bytes_ratio']:.2f}",
                f"≤ 1.5: {verdict(max(g['update_ratio'], g['bytes_ratio']) <= 1.5)}",
            ),
        ]
    else:
        lines.append("Not measured.")
    lines.append("")

    # 5. scale
    lines += ["## Scale (item 5)", ""]
    sc = load("scale")
    if sc:
        lines += [
            f"{sc['turns']:,} turns in {sc['branches']} branches (prompt ≈170 and answer ≈550 characters each).",
            "",
            f"- Memory: {sc['memory_mb']:.1f} MB for the conversation (tracemalloc), of which "
            f"{sc['text_mb']:.1f} MB is the text itself",
            f"- Meter update after a new turn: {ms(sc['meter_10000'], 1, 1e6, 'µs')} at 10,000 turns vs "
            f"{ms(sc['meter_10'], 1, 1e6, 'µs')} at 10",
            f"- Widget update after a new turn: {ms(sc['widget_10000'], 1, 1e6, 'µs')} at 10,000 turns vs "
            f"{ms(sc['widget_10'], 1, 1e6, 'µs')} at 10",
            f"- Portable file (`%convo save`: JSON, fsync, rename): {ms(sc['save'], 0)}; "
            f"`%convo load FILE`: {ms(sc['load'], 0)}; file {sc['file_mb']:.1f} MB",
        ]
        headline.append(
            (
                "10,000 turns / 50 branches: `%convo save FILE`, `load FILE`",
                f"{sc['save']['median'] * 1e3:.0f} ms, {sc['load']['median'] * 1e3:.0f} ms",
                "no goal",
            )
        )
    else:
        lines.append("Not measured.")
    lines.append("")

    # the session store (issue #12)
    lines += ["## The session store (issue #12)", ""]
    so = load("store")
    if so:
        ratio_ok = so["save_ratio"] <= 1.2
        each_ok = max(so["save_10"]["median"], so["save_10000"]["median"]) <= 1e-3
        load_ok = so["load_10000"]["median"] <= 0.2
        lines += [
            "`bench/bench_store.py`: the save a finished turn triggers (one transaction on the",
            "notebook's SQLite store: the turn's row, its branch pointer, the session's time),",
            f"with {so['history_turns']['10']} and {so['history_turns']['10000']:,} turns of history (50 branches, "
            "answers of ≈1.5 kB Markdown), alternating; and a new kernel restoring the",
            "10,000-turn session (`Session.restore`, what bare `%convo load` does).",
            "",
            f"- One turn's save: {ms(so['save_10'], 3)} at 10 turns, {ms(so['save_10000'], 3)} at "
            f"{so['history_turns']['10000']:,}: ratio {so['save_ratio']:.2f} (goal ≤ 1.2 and each ≤ 1 ms: "
            f"{verdict(ratio_ok and each_ok)})",
            f"- Restore of the 10,000-turn session: {ms(so['load_10000'], 0)} (goal ≤ 200 ms: {verdict(load_ok)})",
        ]
        headline.append(
            (
                "store: one turn's save at 10 · 10,000 turns",
                f"{so['save_10']['median'] * 1e3:.3f} · {so['save_10000']['median'] * 1e3:.3f} ms (ratio {so['save_ratio']:.2f})",
                f"≤ 1 ms, ratio ≤ 1.2: {verdict(ratio_ok and each_ok)}",
            )
        )
        headline.append(
            (
                "store: restore a 10,000-turn session",
                f"{so['load_10000']['median'] * 1e3:.0f} ms",
                f"≤ 200 ms: {verdict(load_ok)}",
            )
        )
    else:
        lines.append("Not measured.")
    turn_figures = load("turn")
    if turn_figures:
        for history in (10, 1000):
            r = turn_figures[f"overhead_{history}"]
            on_off = r["turn_autosave"]["median"] / r["turn"]["median"]
            lines.append(
                f"- `%%turn` with the store on vs off (NBCONVO_AUTOSAVE=off), loopback server, "
                f"{history:,} turns of history: {on_off:.3f} (goal ≤ 1.05: {verdict(on_off <= 1.05)})"
            )
            headline.append(
                (
                    f"store: `%%turn` autosave on / off, {history:,} turns",
                    f"{on_off:.3f}",
                    f"≤ 1.05: {verdict(on_off <= 1.05)}",
                )
            )
    lines.append("")

    # 6. regeneration
    lines += ["## Regeneration (item 6)", ""]
    rn = load("run")
    if rn:
        ok = rn["ratio"] <= 1.5
        lines += [
            f"`nbconvo run` of a notebook of `%load_ext nbconvo` and {rn['turns_count']} `%%turn` cells",
            "replayed from a cassette, vs the same notebook with the turns replaced by `x = i`",
            "cells (kernel start and nbclient being the floor); alternating runs.",
            "",
            f"- Turns from the cassette: {ms(rn['turns'], 2, 1, 's')}",
            f"- Trivial cells: {ms(rn['trivial'], 2, 1, 's')}",
            f"- Ratio {rn['ratio']:.2f} (goal ≤ 1.5: {verdict(ok)}); recording the cassette against "
            f"the loopback server took {rn['record']:.2f} s",
        ]
        headline.append(
            (
                "`nbconvo run`, 50 turns from a cassette / trivial cells",
                f"{rn['ratio']:.2f}",
                f"≤ 1.5: {verdict(ok)}",
            )
        )
    else:
        lines.append("Not measured.")
    lines.append("")

    # profiles
    profiles = sorted(OUT.glob("profile-*.txt"))
    if profiles:
        lines += [
            "## Profiles (pyinstrument, `bench/profile_misses.py`)",
            "",
            "Of the paths with tight or missed goals; the first 45 lines of each.",
            "",
        ]
        for path in profiles:
            head = path.read_text().strip().splitlines()[:45]
            lines += [
                f"<details><summary>{path.stem}</summary>",
                "",
                "```",
                *head,
                "```",
                "",
                "</details>",
                "",
            ]

    # earlier benchmarks
    lines += [
        "## Meter, widget, notebook values, prompt caches and the local model's states",
        "",
        "(run by `make bench` too)",
        "",
    ]
    for name, title in (
        ("meter", "bench/bench_meter.py"),
        ("widget", "bench/bench_widget.py"),
        ("values", "bench/bench_values.py"),
        ("cache", "bench/bench_cache.py (issue #18)"),
        ("local_cache", "bench/bench_local_cache.py (issue #19)"),
    ):
        body = text(name)
        lines += [f"`{title}`:", "", "```", body or "not run", "```", ""]

    lines[
        lines.index("## Per-turn overhead vs the physical limit (item 2)") : lines.index(
            "## Per-turn overhead vs the physical limit (item 2)"
        )
    ] = [
        "## Headline",
        "",
        "| measure | result | goal |",
        "|---|---|---|",
        *(f"| {a} | {b} | {c} |" for a, b, c in headline),
        "",
        *analysis(),
        "",
    ]
    RESULTS.write_text("\n".join(lines).rstrip() + "\n")
    print(f"wrote {RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
