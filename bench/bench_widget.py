"""The widget's two costs that grow with a conversation, measured.

1. Bytes the kernel sends to the front end per new turn, at 10 and at 1,000 turns: real
   turns (``Conversation.ask`` against the loopback fake OpenAI server) with the widget's
   comm replaced by one that records every message; bytes of the JSON payloads (custom
   delta + trait sync). Goal: no growth with the tree.
2. First render of a 1,000-turn snapshot in Chromium: the built bundle in a static page
   with a fake anywidget model, timed in the page with performance.now() from the
   snapshot's arrival (JSON.parse included) to the rows laid out. Goal: under 200 ms.

Run: ``.venv/bin/python bench/bench_widget.py`` (after ``make setup``).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

import nbconvo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.support.fakes: the same loopback server the tests use

from comm.base_comm import BaseComm  # noqa: E402

from nbconvo._conversation import Conversation  # noqa: E402
from nbconvo._tree import Turn  # noqa: E402
from nbconvo._widget import STATIC, ConvoWidget  # noqa: E402
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.support.fakes.openai_server import FakeOpenAI  # noqa: E402

KEY = "sk-bench-fake-key-0000000000000000"
PROMPT = "What signals identify at-risk customers in our product? Give three. " * 2
ANSWER = "Usage drops, support tickets, missed renewals and quiet champions. " * 6


class RecordingComm(BaseComm):
    def __init__(self, **kwargs: Any) -> None:
        self.sent: list[dict[str, Any]] = []
        super().__init__(**kwargs)

    def publish_msg(
        self,
        msg_type: str,
        data: Any = None,
        metadata: Any = None,
        buffers: Any = None,
        **keys: Any,
    ) -> None:
        if msg_type == "comm_msg":
            self.sent.append(data)


def payload_bytes(message: dict[str, Any]) -> int:
    return len(json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode())


def build(turns: int, *, fork_every: int = 0) -> Conversation:
    convo = Conversation(name=f"bench-{turns}", model="openai:gpt-bench", window=10_000_000)
    tree = convo.tree
    for i in range(turns):
        if fork_every and i and i % fork_every == 0:  # a branch every few turns: less folding
            tree.fork_at(tree.turns[tree.head or 1].parent, f"b{i}")
        tree.append(Turn(id=tree.new_turn_id(), parent=None, prompt=f"{PROMPT} {i}", answer=ANSWER))
    return convo


def attach(widget: ConvoWidget) -> RecordingComm:
    comm = RecordingComm(target_name="jupyter.widget", comm_id=widget.comm.comm_id)
    widget.comm = comm
    return comm


def delta_bytes(turns: int, samples: int = 20) -> dict[str, float]:
    convo = build(turns)
    widget = nbconvo.widget(convo)
    comm = attach(widget)
    custom, state = [], []
    for i in range(samples):
        comm.sent.clear()
        convo.ask(f"one more question, number {i}")
        custom.append(sum(payload_bytes(m) for m in comm.sent if m["method"] == "custom"))
        state.append(sum(payload_bytes(m) for m in comm.sent if m["method"] == "update"))
    widget.close()
    return {
        "custom": statistics.median(custom),
        "state": statistics.median(state),
        "total": statistics.median(a + b for a, b in zip(custom, state, strict=True)),
        "max": max(a + b for a, b in zip(custom, state, strict=True)),
    }


def snapshot_json(convo: Conversation) -> tuple[str, dict[str, Any]]:
    """The snapshot the kernel sends for ``convo``, and the widget's synced state."""
    widget = nbconvo.widget(convo)
    comm = attach(widget)
    message = {"method": "custom", "content": {"kind": "snapshot-request", "id": "bench"}}
    widget.comm.handle_msg({"content": {"comm_id": comm.comm_id, "data": message}, "buffers": []})
    [snapshot] = [m["content"] for m in comm.sent if m["method"] == "custom"]
    state = {
        key: getattr(widget, key)
        for key in ("name", "head", "branch", "branches", "meter", "goal", "budget", "exchanges")
    }
    widget.close()
    return json.dumps(snapshot), state


HARNESS = """<!doctype html>
<html><head><meta charset="utf-8"><link rel="stylesheet" href="widget.css"></head>
<body><div id="host" style="width: 900px"></div>
<script type="module">
import { mount } from "./widget.js";
window.measure = async (snapshotText, state) => {
  const handlers = new Map();
  const model = {
    get: (key) => state[key],
    on: (event, fn) => {
      if (!handlers.has(event)) handlers.set(event, new Set());
      handlers.get(event).add(fn);
    },
    off: (event, fn) => handlers.get(event)?.delete(fn),
    send: (msg) => { model.lastRequest = msg; },
  };
  const host = document.getElementById("host");
  host.replaceChildren();
  const { view, cleanup } = mount(model, host);
  const id = model.lastRequest.id;
  await new Promise((r) => requestAnimationFrame(() => r()));
  const started = performance.now();
  const snapshot = JSON.parse(snapshotText);           // arrives as text over the websocket
  snapshot.id = id;
  for (const fn of handlers.get("msg:custom")) fn(snapshot);
  view.render();
  host.getBoundingClientRect();                         // style and layout, now
  const rendered = performance.now();
  await new Promise((r) => requestAnimationFrame(() => r()));
  const framed = performance.now();
  const rows = view.rowCount;
  const dom = host.querySelectorAll(".nbconvo-row").length;
  // One more turn on the big tree: delta applied and rows re-rendered.
  const last = snapshot.nodes[snapshot.nodes.length - 1];
  const nextId = last.id + 1;
  const deltaStart = performance.now();
  for (const fn of handlers.get("msg:custom")) {
    const node = { ...last, id: nextId, parent: state.head };
    fn({ kind: "nodes", seq: snapshot.seq + 1, nodes: [node] });
  }
  state.head = nextId;
  for (const fn of handlers.get("change:head") ?? []) fn();
  view.render();
  host.getBoundingClientRect();
  const deltaDone = performance.now();
  const result = {
    render: rendered - started,
    frame: framed - started,
    delta: deltaDone - deltaStart,
    rows,
    dom,
  };
  cleanup();
  return result;
};
window.ready = true;
</script></body></html>
"""


def render_times(
    cases: dict[str, Conversation], repeats: int = 7
) -> dict[str, list[dict[str, float]]]:
    from playwright.sync_api import Route, sync_playwright

    base = "http://127.0.0.1:9/"  # never contacted: every request is answered by route()
    files = {
        "harness.html": (HARNESS.encode(), "text/html"),
        "widget.js": ((STATIC / "widget.js").read_bytes(), "text/javascript"),
        "widget.css": ((STATIC / "widget.css").read_bytes(), "text/css"),
    }

    def serve(route: Route) -> None:
        name = route.request.url.removeprefix(base).split("?")[0]
        if name in files:
            body, content_type = files[name]
            route.fulfill(status=200, body=body, content_type=content_type)
        else:
            route.fulfill(status=404, body=b"")

    inputs = {name: snapshot_json(convo) for name, convo in cases.items()}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            for _ in range(repeats):
                for name, (text, state) in inputs.items():
                    page = browser.new_page(viewport={"width": 1100, "height": 900})
                    page.route(f"{base}**", serve)
                    page.goto(f"{base}harness.html")
                    page.wait_for_function("window.ready === true")
                    results[name].append(page.evaluate("([t, s]) => measure(t, s)", [text, state]))
                    page.close()
        finally:
            browser.close()
    return results


def main() -> int:
    with FakeOpenAI(api_key=KEY, chunk_size=16) as server:
        os.environ["OPENAI_API_KEY"] = KEY
        os.environ["OPENAI_BASE_URL"] = server.base_url
        sizes = {turns: delta_bytes(turns) for turns in (10, 1000)}
    for turns, size in sizes.items():
        print(
            f"bytes sent per turn at {turns:>5} turns: {size['total']:.0f} "
            f"(delta message {size['custom']:.0f} + state sync {size['state']:.0f}; "
            f"max {size['max']:.0f})"
        )
    growth = sizes[1000]["total"] - sizes[10]["total"]
    print(f"growth 10 → 1,000 turns: {growth:+.0f} bytes per turn (goal: none but digits)")

    linear = build(1000)
    branchy = build(1000, fork_every=10)
    snapshot_kb = len(snapshot_json(linear)[0].encode()) / 1024
    print(f"snapshot of 1,000 turns (sent once per display): {snapshot_kb:.0f} KiB")
    if not CHROMIUM.exists():
        print(f"first render: skipped ({CHROMIUM} is missing; apt-get install chromium)")
        return 0
    cases = {"1,000 turns, linear": linear, "1,000 turns, a branch every 10": branchy}
    times = render_times(cases)
    worst = 0.0
    for name, runs in times.items():
        render = statistics.median(r["render"] for r in runs)
        frame = statistics.median(r["frame"] for r in runs)
        delta = statistics.median(r["delta"] for r in runs)
        worst = max(worst, max(r["frame"] for r in runs))
        print(
            f"first render, {name}: {render:.1f} ms to rows laid out, {frame:.1f} ms to the "
            f"next frame (median of {len(runs)}; {runs[0]['rows']:.0f} rows, "
            f"{runs[0]['dom']:.0f} in the DOM); one more turn: {delta:.1f} ms"
        )
    verdict = "met" if worst < 200 else "MISSED"
    print(f"slowest first render to the next frame: {worst:.1f} ms (goal < 200 ms: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
