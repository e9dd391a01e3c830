"""Per-turn overhead against the physical limit (streaming display: ``bench_stream.py``).

The limit: raw httpx + httpx-sse posting the very body nbconvo sends and reading the same
stream (JSON-decoding each event and keeping its text) from the loopback server, which
streams a fixed 300-chunk answer with zero delay. Against it, one turn through
``Conversation.ask`` and one through ``%%turn`` in an ``InteractiveShell`` (the magic
itself, with the session's default autosave on, and with it off), at 10 and 1,000 turns
of history. The three run in rotating order, round after round, so machine noise lands
on all of them; after each turn the new turn is undone (untimed) so every sample
measures the same history.

Run: ``.venv/bin/python bench/bench_turn.py [--quick]``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import httpx_sse
from common import stats, write
from IPython.core.interactiveshell import InteractiveShell
from loopback import Loopback

from nbconvo._conversation import Conversation
from nbconvo._tree import Turn
from tests.support.helpers import NotebookOutputs

KEY = "sk-bench-fake-key-0000000000000000"
PROMPT = "Which signals identify at-risk customers in our product, and how would you rank them?"
HIST_PROMPT = "What signals identify at-risk customers in our product? " * 3
HIST_ANSWER = "Usage drops, support tickets, missed renewals and quiet champions. " * 8


def fill(convo: Conversation, turns: int) -> None:
    tree = convo.tree
    for i in range(turns):
        tree.append(
            Turn(
                id=tree.new_turn_id(),
                parent=tree.head,
                prompt=f"{HIST_PROMPT} {i}",
                answer=f"{HIST_ANSWER} {i}",
                provider="openai",
                model="bench-300",
            )
        )


def raw_turn(client: httpx.Client, url: str, body: dict[str, Any], headers: dict[str, str]) -> str:
    parts: list[str] = []
    with client.stream("POST", url, json=body, headers=headers) as response:
        response.raise_for_status()
        for event in httpx_sse.EventSource(response).iter_sse():
            if event.data == "[DONE]":
                continue  # read to the end, so the connection is reused (as SDKs do)
            chunk = json.loads(event.data)
            for choice in chunk.get("choices") or []:
                text = (choice.get("delta") or {}).get("content")
                if text:
                    parts.append(text)
    return "".join(parts)


class Bench:
    def __init__(self, server: Loopback, home: Path) -> None:
        os.environ["OPENAI_API_KEY"] = KEY
        os.environ["OPENAI_BASE_URL"] = server.base_url
        os.environ["NBCONVO_HOME"] = str(home)
        os.environ.pop("NBCONVO_AUTOSAVE", None)
        os.environ.pop("NBCONVO_CASSETTE", None)
        self.server = server
        self.shell = InteractiveShell.instance()
        self.publisher = NotebookOutputs(shell=self.shell)
        self.shell.display_pub = self.publisher
        self.shell.run_line_magic("load_ext", "nbconvo")
        from nbconvo._session import SESSION

        self.session = SESSION
        self.client = httpx.Client(timeout=60)
        self.url = f"{server.base_url}/chat/completions"
        self.headers = {
            "Authorization": f"Bearer {KEY}",
            "Accept": "text/event-stream",
            "Cache-Control": "no-store",
        }

    def setup(self, turns: int, model: str) -> None:
        spec = f"openai:{model}"
        self.convo = Conversation(model=spec, system="Be brief.", window=100_000_000)
        fill(self.convo, turns)
        _ = self.convo.meter
        self.session.conversations.clear()
        self.session.current_name = "default"
        live = self.session.current()
        live.model, live.system, live.window = spec, "Be brief.", 100_000_000
        fill(live, turns)
        _ = live.meter
        self.live = live
        provider = self.convo.provider(spec)
        self.body = provider.body(self.convo.request(PROMPT))  # type: ignore[attr-defined]

    # the three sides; each returns the answer, the caller undoes (untimed)
    def raw(self) -> str:
        return raw_turn(self.client, self.url, self.body, self.headers)

    def ask(self) -> str:
        return self.convo.ask(PROMPT).answer

    def turn(self) -> str:
        self.shell.run_cell_magic("turn", "", PROMPT)
        head = self.live.head
        assert head is not None
        return head.answer

    def undo_ask(self) -> None:
        self.convo.undo()

    def undo_turn(self) -> None:
        self.live.undo()
        self.publisher.reset()


def autosave(on: bool, home: Path) -> None:
    if on:
        os.environ.pop("NBCONVO_AUTOSAVE", None)
    else:
        os.environ["NBCONVO_AUTOSAVE"] = "off"


def rounds(
    sides: dict[str, tuple[Callable[[], str], Callable[[], None], Callable[[], None]]],
    count: int,
    warmup: int,
) -> dict[str, list[float]]:
    """Each side: (run, before, after). Rotating order each round."""
    names = list(sides)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(warmup + count):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            run, before, after = sides[name]
            before()
            started = time.perf_counter()
            answer = run()
            elapsed = time.perf_counter() - started
            after()
            if len(answer) < 1000:
                raise RuntimeError(f"{name}: short answer ({len(answer)} chars)")
            if r >= warmup:
                samples[name].append(elapsed)
    return samples


def overhead(bench: Bench, home: Path, history: int, count: int) -> dict[str, Any]:
    bench.setup(history, "bench-300")
    nothing = lambda: None  # noqa: E731
    on, off = (lambda: autosave(True, home)), (lambda: autosave(False, home))
    samples = rounds(
        {
            "raw": (bench.raw, nothing, nothing),
            "ask": (bench.ask, nothing, bench.undo_ask),
            "turn": (bench.turn, off, bench.undo_turn),
            "turn_autosave": (bench.turn, on, bench.undo_turn),
        },
        count,
        warmup=3,
    )
    autosave(True, home)
    out: dict[str, Any] = {"history": history, "body_bytes": len(json.dumps(bench.body))}
    for name, values in samples.items():
        out[name] = stats(values)
    raw = samples["raw"]
    for name in ("ask", "turn", "turn_autosave"):
        paired = [s / r for s, r in zip(samples[name], raw, strict=True)]
        out[f"ratio_{name}"] = out[name]["median"] / out["raw"]["median"]
        out[f"paired_{name}"] = stats(paired)
    return out


def main() -> int:
    quick = "--quick" in sys.argv
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, Loopback() as server:
        home = Path(tmp)
        bench = Bench(server, home)
        for history, count in ((10, 8 if quick else 200), (1000, 5 if quick else 100)):
            res = overhead(bench, home, history, count)
            results[f"overhead_{history}"] = res
            print(
                f"history {history:>5}: raw {res['raw']['median'] * 1e3:.2f} ms · "
                f"ask {res['ask']['median'] * 1e3:.2f} ms ({res['ratio_ask']:.3f}) · "
                f"%%turn {res['turn']['median'] * 1e3:.2f} ms ({res['ratio_turn']:.3f}) · "
                f"%%turn+autosave {res['turn_autosave']['median'] * 1e3:.2f} ms "
                f"({res['ratio_turn_autosave']:.3f})",
                flush=True,
            )
    write("turn", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
