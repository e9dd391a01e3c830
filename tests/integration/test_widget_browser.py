"""The widget as a person sees it: a real JupyterLab on 127.0.0.1 with a token, driven by
Debian's Chromium through Playwright, talking to a loopback fake OpenAI server.

Skips when /usr/bin/chromium is absent, unless NBCONVO_REQUIRE_BROWSER=1 (as `.ci/run`
sets), which makes that a failure. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import (
    ARTIFACTS,
    TIMEOUT_MS,
    Lab,
    Page,
    jupyter_server,
    open_notebook,
    run_cell,
)
from tests.support.fakes.openai_server import Canned, FakeOpenAI, default_answer
from tests.support.helpers import FAKE_KEY

pytestmark = pytest.mark.browser

# Each payload would set window.__xss, change the title or open a dialog if it ran.
XSS_ANSWER = """Here are the samples.

<script>window.__xss = "script"; document.title = "pwned"</script>

<img src=x onerror="window.__xss = 'img'; document.title = 'pwned'; alert('img')">

[click me](javascript:window.__xss='link';document.title='pwned';alert('link'))

<svg onload="window.__xss = 'svg'; document.title = 'pwned'; alert('svg')"><circle r="4"/></svg>

End of samples."""


# A long answer of the kind the product is for: headings, lists, code with < and >, a
# table, math, a link and stray HTML: ≈38 KB (before issue #15, ≈30 KB stalled the
# kernel for minutes: every display update re-rendered the whole answer).
SECTION = """## Step {n}: signals of churn

1. **Usage drops**: weekly active seats fall by a third.
2. *Support friction*: two or more tickets about one feature.

```python
def at_risk(account) -> bool:
    return account.seats_active < 0.66 * account.seats_bought and account.tickets > 1
```

| signal | lead time | precision |
| --- | --- | --- |
| usage drop | 6–8 weeks | high |
| tickets | 3–4 weeks | medium |

A lift with $p < 0.05$ is the bar; see [the playbook](https://example.org/playbook).
<b>stray HTML</b> and a <div>block</div> stay text.

"""
SECTIONS = 50
LONG_ANSWER = "".join(SECTION.format(n=n) for n in range(1, SECTIONS + 1))


def _answer(messages: list[dict[str, Any]]) -> str:
    last = [m["content"] for m in messages if m["role"] == "user"][-1]
    if "XSS" in last:
        return XSS_ANSWER
    return LONG_ANSWER if "LONG" in last else default_answer(messages)


@pytest.fixture(scope="module")
def fake_provider() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=FAKE_KEY, answer=_answer) as server:
        yield server


@pytest.fixture(scope="module")
def lab(
    chromium_path: Path, fake_provider: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lab]:
    env = {
        "OPENAI_API_KEY": FAKE_KEY,  # kernels inherit the server's environment
        "OPENAI_BASE_URL": fake_provider.base_url,
        "NBCONVO_AUTOSAVE": "off",
    }
    with jupyter_server(tmp_path_factory.mktemp("lab"), env) as server:
        yield server


SETUP = "%load_ext nbconvo\n%convo model openai:gpt-test\n%convo window 16000"


def open_and_run(lab: Lab, page: Page, name: str, cells: list[str]) -> Any:
    """A new notebook of ``cells``, opened and run cell by cell as a person does."""
    url = lab.notebook(name, cells)
    p = page.page
    open_notebook(p, url)
    for index in range(len(cells)):
        run_cell(p, index)
    return p


def test_widget_shows_the_tree_and_fork_here_moves_the_head(lab: Lab, page: Page) -> None:
    from playwright.sync_api import expect

    url = lab.notebook(
        "widget.ipynb",
        [
            SETUP,
            "%%turn\nWhat are the main strategies for improving customer retention?",
            "%%turn\nLet's focus on proactive outreach. Which signals matter?",
            "%%turn\nDraft the first email.",
            "%convo fork 2 --name pricing",
            "%convo",
            "%convo",
            "import nbconvo\n_c = nbconvo.current()\n"
            "print('HEAD', _c.tree.label(_c.tree.head), '#' + str(_c.tree.head), _c.branch)",
        ],
    )
    p = page.page
    open_notebook(p, url)
    for index in range(7):
        run_cell(p, index)

    widgets = p.locator(".nbconvo-widget")
    expect(widgets).to_have_count(2)
    widget = widgets.first
    expect(widget.locator(".nbconvo-row[data-turn]")).to_have_count(3)
    labels = widget.locator(".nbconvo-row .nbconvo-label").all_inner_texts()
    assert labels == ["○", "1", "2", "3.1"], labels  # main's turn 3 beside the head: `%convo switch 3.1`
    expect(widget.locator(".nbconvo-row[data-turn='2'] .nbconvo-badge")).to_have_text("pricing")
    expect(widget.locator(".nbconvo-row[data-turn='3'] .nbconvo-badge")).to_have_text("main")
    expect(widget.locator(".nbconvo-head")).to_have_attribute("data-turn", "2")
    expect(widget.locator(".nbconvo-header .nbconvo-current")).to_have_text("pricing")
    expect(widget.locator(".nbconvo-meter-text")).to_have_text(
        re.compile(r"^≈?[\d,]+ of 16,000 tokens \(\d+%\) · cost unknown$")  # no price set
    )
    expect(widget.locator(".nbconvo-row[data-turn='1'] .nbconvo-preview")).to_have_text(
        "What are the main strategies for improving customer retention?"
    )

    # Keyboard: Home, down to turn 1, Enter opens its details; the notebook's own arrow and
    # Enter shortcuts stay out of it (the active cell does not move, no editor opens).
    widget.locator(".nbconvo-tree").click(position={"x": 400, "y": 5})
    active = p.locator(".jp-Notebook .jp-Cell.jp-mod-active .jp-InputArea-prompt").inner_text()
    p.keyboard.press("Home")
    p.keyboard.press("ArrowDown")
    p.keyboard.press("Enter")
    details = widget.locator(".nbconvo-details")
    expect(details.locator(".nbconvo-details-title strong")).to_have_text("Turn 1")
    expect(p.locator(".jp-Notebook .jp-Cell.jp-mod-active .jp-InputArea-prompt")).to_have_text(
        active
    )
    expect(p.locator(".jp-Notebook.jp-mod-editMode")).to_have_count(0)
    expect(details.locator(".nbconvo-answer")).to_contain_text(
        "echo #1: What are the main strategies"
    )
    p.keyboard.press("Escape")
    expect(details).to_be_hidden()

    # Click turn 1, then "Fork here": the kernel forks and every display follows.
    widget.locator(".nbconvo-row[data-turn='1']").click()
    expect(details.locator(".nbconvo-prompt")).to_contain_text("main strategies")
    details.get_by_role("button", name="Fork here").click()
    expect(details.locator(".nbconvo-status-line")).to_have_text("forked: now on branch fork-1")
    for display in (widget, widgets.nth(1)):
        expect(display.locator(".nbconvo-head")).to_have_attribute("data-turn", "1")
        expect(display.locator(".nbconvo-header .nbconvo-current")).to_have_text("fork-1")
    ARTIFACTS.mkdir(exist_ok=True)
    widget.screenshot(path=str(ARTIFACTS / "widget.png"))
    p.screenshot(path=str(ARTIFACTS / "widget-jupyterlab.png"), full_page=True)

    # The kernel's head moved: a following cell says so.
    cell = run_cell(p, 7)
    expect(cell.locator(".jp-OutputArea-output")).to_have_text(
        re.compile(r"HEAD 1 #1 fork-1"), timeout=TIMEOUT_MS
    )
    assert page.dialogs == []


def test_a_dataframe_and_a_figure_in_a_turn_as_a_user_sees_them(lab: Lab, page: Page) -> None:
    """Issue #16 in JupyterLab: a DataFrame and a matplotlib figure go in one turn; the
    footer says what each became, and the widget's details show the table (collapsed)
    and the kernel's thumbnail of the figure."""
    from playwright.sync_api import expect

    p = open_and_run(
        lab,
        page,
        "data.ipynb",
        [
            SETUP,
            "import numpy as np, pandas as pd\n"
            "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
            "sales = pd.DataFrame({'month': range(1, 101), 'units': np.arange(100) * 3 % 41})\n"
            "fig, ax = plt.subplots(figsize=(5, 3)); ax.plot(sales['units']); plt.close(fig)",
            "%%turn\nWhat stands out in {sales} and in this chart? {fig}",
            "%convo",
        ],
    )
    footer = p.locator(".nbconvo-footer").last
    expect(footer).to_contain_text(
        re.compile(r"sales: pandas DataFrame, 100 × 2 → [\d,]+ tokens \(rows 6–95 left out\)")
    )
    expect(footer).to_contain_text("fig: image 500 × 300 px")
    widget = p.locator(".nbconvo-widget").first
    widget.locator(".nbconvo-row[data-turn='1']").click()
    details = widget.locator(".nbconvo-details")
    expect(details.locator(".nbconvo-prompt")).to_have_text(
        "What stands out in {sales} and in this chart? {fig}"
    )
    value = details.locator("details.nbconvo-value")
    expect(value.locator("summary")).to_have_text("sales: pandas DataFrame, 100 × 2")
    ARTIFACTS.mkdir(exist_ok=True)
    widget.screenshot(path=str(ARTIFACTS / "widget-data-turn.png"))
    value.locator("summary").click()
    expect(value.locator("table").first).to_be_visible()
    thumbnail = details.locator(".nbconvo-thumbnail img")
    expect(thumbnail).to_have_attribute("src", re.compile(r"^data:image/png;base64,"))
    size = thumbnail.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert size == [160, 96], size
    widget.screenshot(path=str(ARTIFACTS / "widget-data-turn-open.png"))
    p.screenshot(path=str(ARTIFACTS / "data-turn-jupyterlab.png"), full_page=True)
    assert page.dialogs == []


def test_a_saved_notebook_reopened_without_its_kernel_shows_the_static_tree(
    lab: Lab, page: Page
) -> None:
    """Issue #14: `%convo` leaves a picture of the tree beside the live widget. Live, the
    picture is hidden; saved, closed and reopened in a new kernel (the widget's model
    gone), the picture shows the tree where the widget cannot."""
    from playwright.sync_api import expect

    p = open_and_run(
        lab,
        page,
        "saved.ipynb",
        [
            SETUP,
            "%%turn\nWhat are the main strategies for improving customer retention?",
            "%convo fork 1 --name pricing",
            "%%turn\nInstead: what if we changed the pricing tiers?",
            "%convo",
        ],
    )
    cell = p.locator(".jp-Notebook .jp-Cell").nth(4)
    expect(cell.locator(".nbconvo-widget")).to_have_count(1)
    picture = cell.locator(".nbconvo-static")
    expect(picture).to_have_count(1)
    expect(picture).to_be_hidden()  # the live widget shows instead
    p.keyboard.press("Control+s")
    expect(p.locator(".jp-mod-dirty")).to_have_count(0)
    p.locator(".lm-MenuBar-itemLabel", has_text="Kernel").click()
    p.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Shut Down Kernel$")).click()
    p.reload()
    p.locator(".jp-Notebook .jp-Cell").first.wait_for()
    cell = p.locator(".jp-Notebook .jp-Cell").nth(4)
    picture = cell.locator(".nbconvo-static")
    expect(picture).to_be_visible()
    expect(picture).to_contain_text("default · branch pricing · 2 exchanges · 2 turns in the tree")
    expect(picture.locator("tr")).to_have_count(2)
    expect(picture.locator("tr").nth(0)).to_contain_text("What are the main strategies")
    expect(picture.locator("tr").nth(1)).to_contain_text("Instead: what if we changed the pricing tiers?")
    expect(picture.locator("tr").nth(1)).to_contain_text("pricing")
    ARTIFACTS.mkdir(exist_ok=True)
    cell.screenshot(path=str(ARTIFACTS / "reopened-static-tree.png"))
    assert page.dialogs == []


def test_model_html_never_runs_in_the_widget_or_the_cell_output(lab: Lab, page: Page) -> None:
    from playwright.sync_api import expect

    url = lab.notebook("xss.ipynb", [SETUP, "%%turn\nShow me the XSS samples, please.", "%convo"])
    p = page.page
    open_notebook(p, url)
    run_cell(p, 0)
    output = run_cell(p, 1).locator(".jp-OutputArea")
    widget = run_cell(p, 2).locator(".nbconvo-widget")

    # The widget: the answer as sanitized Markdown in the node's details.
    widget.locator(".nbconvo-row[data-turn='1']").click()
    answer = widget.locator(".nbconvo-answer")
    expect(answer).to_contain_text("End of samples.")
    answer.get_by_text("click me").click()

    # The cell output: the markup shows as text, the link lost its destination.
    rendered = output.locator(".nbconvo-md").first
    expect(rendered).to_contain_text("End of samples.")
    expect(rendered).to_contain_text("onerror=")
    expect(rendered).to_contain_text("<script>")
    rendered.get_by_text("click me").click()
    p.wait_for_timeout(1000)  # give anything that was going to run the time to run

    ARTIFACTS.mkdir(exist_ok=True)
    p.screenshot(path=str(ARTIFACTS / "widget-xss.png"), full_page=True)
    assert p.evaluate("() => window.__xss") is None
    assert "pwned" not in p.title()
    assert page.dialogs == []
    for area in (answer, rendered):
        hostile = area.locator(
            "script, svg, iframe, [onerror], [onload], [onclick], a[href^='javascript' i]"
        )
        assert hostile.count() == 0, hostile.evaluate_all("nodes => nodes.map(n => n.outerHTML)")


def test_a_restart_in_jupyterlab_loses_nothing(lab: Lab, page: Page) -> None:
    """What a user does in JupyterLab: turns and a fork, Kernel ▸ Restart, run the first
    cell again (its one-line notice says what the last session had), set the model, send
    a turn, then `%convo load`: the widget shows the earlier tree again."""
    from playwright.sync_api import expect

    url = lab.notebook(
        "restart.ipynb",
        [
            # this module's server runs kernels with autosave off; this notebook wants it
            "import os\nos.environ.pop('NBCONVO_AUTOSAVE', None)\n%load_ext nbconvo",
            "%convo model openai:gpt-test",
            "%%turn\nWhat are the main strategies for improving customer retention?",
            "%%turn\nLet's focus on proactive outreach. Which signals matter?",
            "%convo fork 1 --name pricing",
            "%%turn\nInstead: what if we changed the pricing tiers?",
            "%%turn\nA new question after the restart",
            "%convo load",
            "%convo",
        ],
    )
    p = page.page
    open_notebook(p, url)
    for index in range(6):
        run_cell(p, index)
    # Kernel ▸ Restart Kernel…, and confirm, as a person does.
    p.locator(".lm-MenuBar-itemLabel", has_text="Kernel").click()
    p.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Restart Kernel…$")).click()
    p.locator(".jp-Dialog-button.jp-mod-accept", has_text="Restart").click()
    p.locator(".jp-StatusBar-Widget").get_by_text(re.compile(r"\| Idle$")).wait_for()
    first = run_cell(p, 0)
    notice = first.locator(".jp-OutputArea-output").last
    expect(notice).to_contain_text(re.compile(r"nbconvo: earlier session, \d\d:\d\d today: 3 turns, 2 branches"))
    expect(notice).to_contain_text("`%convo load` restores it")
    ARTIFACTS.mkdir(exist_ok=True)
    first.screenshot(path=str(ARTIFACTS / "restart-notice.png"))
    run_cell(p, 1)
    run_cell(p, 6)  # the new kernel works before it restores
    load = run_cell(p, 7)
    expect(load.locator(".jp-OutputArea-output")).to_contain_text("restored 1 conversation(s) from session 1")
    shown = run_cell(p, 8)
    widget = shown.locator(".nbconvo-widget")
    expect(widget.locator(".nbconvo-row[data-turn]")).to_have_count(3)
    expect(widget.locator(".nbconvo-header .nbconvo-current")).to_have_text("pricing")
    expect(widget.locator(".nbconvo-row[data-turn='2'] .nbconvo-badge")).to_have_text("main")
    p.screenshot(path=str(ARTIFACTS / "restart-restored.png"), full_page=True)
    assert not page.dialogs


def test_long_answer_restart_run_all_and_a_rerun_in_the_middle(lab: Lab, page: Page) -> None:
    """As a user works: a long Markdown answer, Run All twice on the live kernel, Kernel ▸
    Restart, Run All again (the notice of the earlier session shows; the dialogue is
    rebuilt), then a rerun of the middle turn, which becomes a new version on main while
    the cells below keep their output and their footers say they left the active path."""
    from playwright.sync_api import expect

    cells = [
        "import os\nos.environ.pop('NBCONVO_AUTOSAVE', None)\n%load_ext nbconvo",
        "%convo model openai:gpt-test",
        "%%turn\nLONG: a churn playbook, step by step, with code and a table",
        "%%turn\nWhich of these signals comes first?",
        "%convo fork 1 --name alt",
        "%%turn\nInstead: what would pricing change?",
        "%convo",
    ]
    url = lab.notebook("long-restart.ipynb", cells)
    p = page.page
    open_notebook(p, url)

    def run_all() -> None:
        p.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        p.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        prompts = p.locator(".jp-Notebook .jp-Cell .jp-InputArea-prompt")
        for index in range(len(cells)):
            expect(prompts.nth(index)).to_have_text(re.compile(r"^\[\d+\]:$"), timeout=TIMEOUT_MS)
        p.locator(".jp-StatusBar-Widget").get_by_text(re.compile(r"\| Idle$")).wait_for()

    run_all()
    run_all()  # Run All again on the live kernel: the tour regenerates, no error
    long = p.locator(".jp-Notebook .jp-Cell").nth(2)
    # the whole answer rendered, in one output: every table, code blocks, no raw tag
    expect(long.locator(".jp-OutputArea-output .nbconvo-md")).to_have_count(1)
    expect(long.locator(".jp-OutputArea-output table")).to_have_count(SECTIONS)
    expect(long.locator(".jp-OutputArea-output pre").first).to_contain_text("seats_active < 0.66")
    assert long.locator(".jp-OutputArea-output b").count() == 0  # stray HTML shown as text
    ARTIFACTS.mkdir(exist_ok=True)
    long.screenshot(path=str(ARTIFACTS / "long-answer.png"))
    long.locator(".jp-OutputArea-output table").first.scroll_into_view_if_needed()
    p.screenshot(path=str(ARTIFACTS / "long-answer-viewport.png"))  # what a reader sees

    p.locator(".lm-MenuBar-itemLabel", has_text="Kernel").click()
    p.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Restart Kernel…$")).click()
    p.locator(".jp-Dialog-button.jp-mod-accept", has_text="Restart").click()
    p.locator(".jp-StatusBar-Widget").get_by_text(re.compile(r"\| Idle$")).wait_for()
    run_all()
    first = p.locator(".jp-Notebook .jp-Cell").nth(0)
    expect(first.locator(".jp-OutputArea-output")).to_contain_text(
        re.compile(r"nbconvo: earlier session, \d\d:\d\d today: 6 turns, 4 branches")
    )
    widget = p.locator(".nbconvo-widget").first
    expect(widget.locator(".nbconvo-header .nbconvo-current")).to_have_text("alt")
    p.screenshot(path=str(ARTIFACTS / "restart-run-all.png"), full_page=True)
    widget.scroll_into_view_if_needed()
    widget.screenshot(path=str(ARTIFACTS / "widget-graph-before-rerun.png"))

    middle = run_cell(p, 3)  # rerun "Which of these signals comes first?": the 3rd version
    # of position 2 (2.2 is the alt turn, also a child of turn 1)
    expect(middle.locator(".jp-OutputArea-output").last).to_contain_text("turn 2.3 · main")
    # the alt turn below is off the active path now: its own footer says so, in place
    below = p.locator(".jp-Notebook .jp-Cell").nth(5).locator(".nbconvo-footer")
    expect(below).to_have_count(1)
    expect(below).to_contain_text("⟲ now on alt — not the active path of main;")
    errors = p.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    assert errors.count() == 0
    p.screenshot(path=str(ARTIFACTS / "rerun-middle.png"), full_page=True)
    widget.scroll_into_view_if_needed()
    expect(widget.locator(".nbconvo-header .nbconvo-current")).to_have_text("main")
    rails = widget.locator(".nbconvo-row .nbconvo-rail, .nbconvo-row .nbconvo-elbow")
    assert rails.count() > 0  # the graph's lines are drawn
    widget.screenshot(path=str(ARTIFACTS / "widget-graph-after-rerun.png"))
    assert not page.dialogs


def test_a_tool_call_is_approved_at_the_prompt_in_jupyterlab(
    lab: Lab, page: Page, fake_provider: FakeOpenAI
) -> None:
    """Issue #17 as a user meets it: the model asks to run a notebook function; JupyterLab
    shows nbconvo's one-line question in its input box; "y" runs it; the answer shows
    the call and its result, and the widget's details show them too."""
    from playwright.sync_api import expect

    cells = [
        SETUP + "\n%convo price openai:gpt-test 2.5 10",
        'def add(a: int, b: int) -> int:\n    """Add two integers."""\n    return a + b',
        "%%turn --tools add\nWhat is 1234 + 5678?",
        "%convo",
    ]
    url = lab.notebook("tools.ipynb", cells)
    p = page.page
    open_notebook(p, url)
    run_cell(p, 0)
    run_cell(p, 1)
    fake_provider.script.append(Canned(tool_calls=[("add", '{"a": 1234, "b": 5678}')]))
    cell = p.locator(".jp-Notebook .jp-Cell").nth(2)
    cell.locator(".jp-InputArea-editor").click()
    p.keyboard.press("Shift+Enter")
    stdin = cell.locator(".jp-Stdin")
    expect(stdin).to_contain_text(
        "nbconvo: the model wants to run add(a=1234, b=5678) — [y]es / [n]o / [a]lways?"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    cell.screenshot(path=str(ARTIFACTS / "tool-approval-prompt.png"))
    stdin.locator("input").fill("y")
    stdin.locator("input").press("Enter")
    expect(cell.locator(".jp-InputArea-prompt")).to_have_text(re.compile(r"^\[\d+\]:$"))
    answer = cell.locator(".nbconvo-md").first
    expect(answer).to_contain_text("ƒ add(a=1234, b=5678) → 6912")
    expect(answer).to_contain_text("tool said: 6912")
    expect(cell.locator(".nbconvo-footer")).to_contain_text("1 tool call")
    expect(cell.locator(".nbconvo-footer")).to_contain_text("<$0.0001")  # its cost (#18)
    cell.screenshot(path=str(ARTIFACTS / "tool-turn-jupyterlab.png"))
    run_cell(p, 3)
    widget = p.locator(".nbconvo-widget").last
    expect(widget.locator(".nbconvo-meter-text")).to_contain_text(
        re.compile(r"· branch <?\$[\d.]+.* · tree <?\$[\d.]+")
    )
    widget.locator(".nbconvo-row[data-turn='1']").click()
    details = widget.locator(".nbconvo-details")
    expect(details).to_contain_text("add(a=1234, b=5678) → 6912")
    widget.screenshot(path=str(ARTIFACTS / "widget-tool-turn.png"))
    assert page.dialogs == []
