"""The XSS corpus live: every payload of tests/support/corpus.py as a streamed model answer
in a real JupyterLab and a real Notebook 7, then in the widget's details of each turn.

One notebook per front end: a setup cell, one `%%turn` cell per payload (the fake provider
streams the payload's pieces ~60 ms apart, so the kernel shows half-written HTML in its
display updates), an ordinary answer, and the widget; Run All, then click every turn in
the widget. Nothing may run (no `window.nbx<i>` flag, no dialog), nothing may load (no
request to the leak server, none to another origin) and no dangerous element or
attribute may ever appear in an output (checked at the end, and by a MutationObserver for
everything a display update showed on the way); every payload still shows its answer and
the ordinary answer renders fully (MathJax, coloured code).

Skips without /usr/bin/chromium unless NBCONVO_REQUIRE_BROWSER=1. Screenshots and the list
of requests the page made go to test-artifacts/.
"""

from __future__ import annotations

import importlib.util
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support import reliability_counts as counts
from tests.support.browser import (
    ARTIFACTS,
    FrontEnd,
    Lab,
    Page,
    jupyter_server,
    open_notebook,
    run_all,
    unavailable,
)
from tests.support.corpus import (
    ORDINARY,
    ORDINARY_EXPECT,
    PAYLOADS,
    instantiate,
    joined,
    pieces,
)
from tests.support.fakes.base import chat_content_text
from tests.support.fakes.openai_server import FakeOpenAI, default_answer
from tests.support.helpers import FAKE_KEY

pytestmark = pytest.mark.browser

PAUSE = 0.06  # seconds between two streamed pieces: the kernel shows each in a display update
RUN_ALL_MS = 900_000  # 350-odd turns on a loaded two-core machine
SETUP = "%load_ext nbconvo\n%convo model openai:gpt-test"
NAMES = {"lab": "jupyterlab", "notebook": "notebook7"}

# Finds what must never be in a model answer's rendering: elements that run, load or
# embed anything, event handlers, loading attributes, links that are not http(s)/mailto,
# styles that load. MathJax's own output (inside mjx-container, which may only sit in the
# math spans the kernel marked) is MathML and custom elements: its attributes are checked,
# not its tag names.
SCAN = r"""
(() => {
  const FORBIDDEN = "script, iframe, frame, frameset, object, embed, applet, img, picture, svg, math, style, link, meta, base, form, input, video, audio, source, track";
  const LOADING = new Set(["src", "srcset", "srcdoc", "poster", "background", "data", "action", "formaction", "ping", "dynsrc", "lowsrc"]);
  const AREAS = ".jp-OutputArea-output, .nbconvo-widget";
  // The widget's own controls, built by its code (never from model text): the text field
  // that names a new branch beside "Fork here".
  const OWN = ".nbconvo-details-bar > .nbconvo-actions > input.nbconvo-fork-name[type=text]";
  const describe = (el) => el.outerHTML.slice(0, 300);
  const element = (el, found) => {
    if (el.nodeType !== 1) return;
    const mathjax = el.closest("mjx-container");
    if (mathjax === null && el.matches(FORBIDDEN) && !el.matches(OWN)) found.push("element: " + describe(el));
    if (el.localName === "mjx-container" && el.parentElement?.closest(".math") == null) {
      found.push("MathJax outside a math span: " + describe(el));
    }
    for (const attr of el.attributes) attribute(el, attr.name, found);
  };
  const attribute = (el, name, found) => {
    const lower = name.toLowerCase();
    const value = el.getAttribute(name) ?? "";
    if (lower.startsWith("on") || LOADING.has(lower)) {
      found.push(`attribute ${name}: ` + describe(el));
    } else if ((lower === "href" || lower === "xlink:href") && !/^(https?:|mailto:)/i.test(value.trim())
               && !(el.matches("a.jp-InternalAnchorLink") && value.startsWith("#"))) {
      found.push(`link ${name}=${JSON.stringify(value)}: ` + describe(el));
    } else if (lower === "style" && /url\s*\(|expression|image-set|@import|behavior|binding/i.test(value)) {
      found.push("loading style: " + describe(el));
    }
  };
  const subtree = (node, found) => {
    if (node.nodeType !== 1) return 0;
    const roots = node.closest(AREAS) ? [node] : [...node.querySelectorAll(AREAS)];
    for (const root of roots) {
      element(root, found);
      for (const el of root.querySelectorAll("*")) element(el, found);
    }
    return roots.length;
  };
  return { subtree, attribute, AREAS };
})()
"""

# Installed before the page's own scripts: records every dangerous thing that appears in
# an output or the widget at any moment (a display update replaced a moment later too).
WATCH = f"""
window.__xssScan = {SCAN};
window.__xssSeen = [];
window.__xssWatched = 0;  // outputs and widget parts the observer scanned as they appeared
new MutationObserver((records) => {{
  const scan = window.__xssScan;
  for (const record of records) {{
    if (record.type === "childList") {{
      for (const node of record.addedNodes) window.__xssWatched += scan.subtree(node, window.__xssSeen);
    }} else if (record.target.closest?.(scan.AREAS)) {{
      const name = record.attributeName;
      if (record.target.hasAttribute(name)) scan.attribute(record.target, name, window.__xssSeen);
    }}
  }}
}}).observe(document, {{ childList: true, subtree: true, attributes: true }});
"""

SELF_TEST = """() => {
  const html = '<div class="jp-OutputArea-output"><p>ok <a href="https://example.org">a</a></p>'
    + '<img alt=x><b onclick="x">b</b><a href="javascript:x">c</a><span style="background: url(x)">d</span>'
    + '<span><svg></svg></span><video poster=x></video></div>'
    + '<div class="jp-OutputArea-prompt"><svg></svg></div>';
  const inert = new DOMParser().parseFromString(html, "text/html");
  const found = [];
  window.__xssScan.subtree(inert.body, found);
  return found;
}"""

FLAGS = "() => Object.keys(window).filter((key) => /^nbx\\d+$/.test(key))"


class LeakServer:
    """A loopback HTTP server that answers every request with 200 and records it: the
    address every LEAK in the corpus points to."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        log = self.requests

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                log.append(f"{self.command} {self.path} from {self.headers.get('referer')}")
                body = b"/* recorded */"
                self.send_response(200)
                self.send_header("content-type", "text/plain")
                self.send_header("access-control-allow-origin", "*")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_HEAD = do_OPTIONS = do_PUT = _answer

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> LeakServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _ordinary_pieces() -> list[str]:
    """The ordinary answer in pieces of four lines: it streams like the payloads do."""
    lines = ORDINARY.splitlines(keepends=True)
    return ["".join(lines[i : i + 4]) for i in range(0, len(lines), 4)]


@pytest.fixture(scope="module")
def leak() -> Iterator[LeakServer]:
    with LeakServer() as server:
        yield server


@pytest.fixture(scope="module")
def fake_provider(leak: LeakServer) -> Iterator[FakeOpenAI]:
    def answer(messages: list[dict[str, Any]]) -> str | list[str]:
        last = chat_content_text(
            [m for m in messages if m["role"] == "user"][-1]["content"]
        ).strip()
        if match := re.fullmatch(r"PAYLOAD (\d+)", last):
            index = int(match[1])
            return pieces(instantiate(PAYLOADS[index], index, leak.url))
        if last == "ORDINARY":
            return _ordinary_pieces()
        return default_answer(messages)

    with FakeOpenAI(api_key=FAKE_KEY, answer=answer, delay=PAUSE) as server:
        yield server


@pytest.fixture(params=["lab", "notebook"], ids=["jupyterlab", "notebook7"])
def server(
    request: pytest.FixtureRequest,
    chromium_path: Path,
    fake_provider: FakeOpenAI,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Lab]:
    front_end: FrontEnd = request.param
    module = {"lab": "jupyterlab", "notebook": "notebook"}[front_end]
    if importlib.util.find_spec(module) is None:
        unavailable(f"{module} is not installed (pip install -e '.[test]')")
    env = {
        "OPENAI_API_KEY": FAKE_KEY,  # kernels inherit the server's environment
        "OPENAI_BASE_URL": fake_provider.base_url,
        "NBCONVO_AUTOSAVE": "off",
    }
    with jupyter_server(tmp_path_factory.mktemp(front_end), env, front_end) as running:
        yield running


def _scan(page: Any, selector: str) -> list[str]:
    return page.evaluate(
        """(selector) => {
          const found = [];
          for (const node of document.querySelectorAll(selector)) window.__xssScan.subtree(node, found);
          return found;
        }""",
        selector,
    )


def _nothing_ran_or_loaded(page: Page, requests: list[str], leak: LeakServer, lab: Lab) -> None:
    p = page.page
    assert p.evaluate(FLAGS) == [], "a payload ran"
    assert page.dialogs == [], "a payload opened a dialog"
    assert [url for url in requests if "/leak/" in url] == [], "the page requested a leak URL"
    assert leak.requests == [], "the leak server was reached"
    elsewhere = [u for u in requests if not u.startswith((lab.url + "/", "data:", "blob:"))]
    assert elsewhere == [], "the page loaded something from another origin"
    seen = p.evaluate("() => window.__xssSeen")
    assert seen == [], f"{len(seen)} dangerous things appeared at some moment: {seen[:10]}"


@pytest.mark.timeout(1500)
def test_the_xss_corpus_never_runs_in_cell_outputs_or_the_widget(
    server: Lab, page: Page, leak: LeakServer
) -> None:
    from playwright.sync_api import expect

    name = NAMES[server.front_end]
    p = page.page
    p.set_viewport_size({"width": 1280, "height": 1800})  # the ordinary answer in one view
    requests: list[str] = []
    p.on("request", lambda request: requests.append(request.url))
    p.add_init_script(WATCH)

    payload_cells = [f"%%turn\nPAYLOAD {index}" for index in range(len(PAYLOADS))]
    cells = [SETUP, *payload_cells, "%%turn\nORDINARY", "%convo"]
    open_notebook(p, server.notebook("xss-corpus.ipynb", cells), server.front_end)
    # The scan finds what it looks for (in an inert document, where nothing runs or loads).
    assert len(p.evaluate(SELF_TEST)) == 7, p.evaluate(SELF_TEST)
    cell = p.locator(".jp-Notebook .jp-Cell")
    expect(cell).to_have_count(len(cells))  # every cell is in the page (no windowing)

    started = time.monotonic()
    run_all(p)
    # Done when the last cell has its execution count and no cell is waiting or running.
    p.wait_for_function(
        r"""(n) => {
          const prompts = [...document.querySelectorAll(".jp-Notebook .jp-Cell .jp-InputArea-prompt")];
          return prompts.length === n && prompts.every((el) => /^\[\d+\]:$/.test(el.textContent.trim()));
        }""",
        arg=len(cells),
        polling=500,
        timeout=RUN_ALL_MS,
    )
    run_seconds = time.monotonic() - started
    print(f"{name}: Run All of {len(cells)} cells took {run_seconds:.0f} s")

    errors = p.locator(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'],"
        " .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']"
    )
    assert errors.count() == 0, errors.all_inner_texts()[:5]

    # The ordinary answer: fully rendered, its math typeset, its code coloured.
    ordinary = cell.nth(len(cells) - 2).locator(".jp-OutputArea")
    answer = ordinary.locator(".nbconvo-md").first
    expect(answer.locator("mjx-container")).to_have_count(2)  # $p < 0.05$ and the $$ sum
    for selector, at_least in ORDINARY_EXPECT:
        found = answer.locator(selector).count()
        assert found >= at_least, f"{selector}: {found} < {at_least} in the ordinary answer"
    assert answer.locator("pre code span[style]").count() > 0, "the code is not coloured"
    # Every math span has been typeset (payloads put math in answers too) before the scan.
    p.wait_for_function(
        """() => [...document.querySelectorAll('.jp-OutputArea .nbconvo-md .math')]
                .every((el) => el.querySelector('mjx-container') !== null)""",
        polling=500,
    )

    # Every payload shows its answer: the sentences around it, rendered as text.
    texts: list[str] = p.evaluate(
        """() => [...document.querySelectorAll('.jp-Notebook .jp-Cell')].map((cell) =>
             [...cell.querySelectorAll('.jp-OutputArea-output')].map((o) => o.textContent).join('\\n'))"""
    )
    shown, missing = 0, []
    for index, payload in enumerate(PAYLOADS):
        text = texts[index + 1]
        lines = joined(instantiate(payload, index, leak.url)).strip().split("\n")
        if text.strip():
            shown += 1
        if lines[0] not in text or lines[-1] not in text:
            missing.append(f"{index} {payload.name}: {text[:200]!r}")
    assert shown == len(PAYLOADS), f"{len(PAYLOADS) - shown} payload cells show no output"
    assert missing == [], f"{len(missing)} answers are not shown whole: {missing[:10]}"
    counts.add("xss: payloads shown in browsers", shown)

    ARTIFACTS.mkdir(exist_ok=True)
    ordinary.screenshot(path=str(ARTIFACTS / f"ordinary-{name}.png"))
    split = next(i for i, payload in enumerate(PAYLOADS) if payload.category == "split-stream")
    cell.nth(split + 1).evaluate("(el) => el.scrollIntoView({ block: 'start' })")
    p.screenshot(path=str(ARTIFACTS / f"xss-{name}.png"))

    # The observer saw every display update arrive (so its empty record means something).
    watched = p.evaluate("() => window.__xssWatched")
    assert watched > len(cells), f"the observer scanned only {watched} additions"

    assert _scan(p, ".jp-OutputArea") == []
    _nothing_ran_or_loaded(page, requests, leak, server)

    # The widget: open every turn's details, one after another.
    widget = p.locator(".nbconvo-widget")
    expect(widget).to_have_count(1)
    widget.scroll_into_view_if_needed()
    expect(widget.locator(".nbconvo-head")).to_have_attribute("data-turn", str(len(PAYLOADS) + 1))
    last = len(PAYLOADS) + 1  # the ordinary answer; the payloads are turns 1 to 352
    folded = widget.locator(".nbconvo-run")
    if folded.count():
        folded.first.click()  # unfold the long run of turns
    expect(folded).to_have_count(0)
    tree = widget.locator(".nbconvo-tree")
    note = widget.locator(".nbconvo-details .nbconvo-details-title .nbconvo-note")
    widget_texts: dict[int, str] = {}
    widget_found: list[str] = []
    for turn in range(1, last + 1):
        # Rows are virtualized: scroll the tree so that this turn's row is drawn.
        tree.evaluate("(el, top) => { el.scrollTop = top; }", max(0, (turn - 3) * 24))
        widget.locator(f".nbconvo-row[data-turn='{turn}']").click()
        expect(note).to_contain_text(f"#{turn} ·")
        result = p.evaluate(
            """() => {
              const found = [];
              window.__xssScan.subtree(document.querySelector('.nbconvo-widget'), found);
              const answer = document.querySelector('.nbconvo-widget .nbconvo-answer');
              return { found, text: answer ? answer.textContent : '' };
            }"""
        )
        widget_found += [f"turn {turn}: {item}" for item in result["found"]]
        widget_texts[turn] = result["text"]

    details = widget.locator(".nbconvo-details .nbconvo-answer")
    for selector, at_least in ORDINARY_EXPECT:
        found = details.locator(selector).count()
        assert found >= at_least, f"{selector}: {found} < {at_least} in the widget's details"
    widget.screenshot(path=str(ARTIFACTS / f"xss-widget-{name}.png"))
    # The whole ordinary answer for the record: the details body scrolls at 320 px.
    body = widget.locator(".nbconvo-details-body")
    body.evaluate("(el) => { el.style.maxHeight = 'none'; el.scrollIntoView({ block: 'start' }); }")
    body.screenshot(path=str(ARTIFACTS / f"ordinary-widget-{name}.png"))
    (ARTIFACTS / f"xss-requests-{name}.json").write_text(
        json.dumps(sorted(set(requests)), indent=1)
    )

    assert widget_found == [], widget_found[:10]
    shown_in_widget = 0
    for index, payload in enumerate(PAYLOADS):
        text = widget_texts[index + 1]
        lines = joined(instantiate(payload, index, leak.url)).strip().split("\n")
        if lines[0] in text and lines[-1] in text:
            shown_in_widget += 1
    assert shown_in_widget == len(PAYLOADS), f"{len(PAYLOADS) - shown_in_widget} not shown"
    counts.add("xss: payloads shown in the widget", shown_in_widget)
    _nothing_ran_or_loaded(page, requests, leak, server)
