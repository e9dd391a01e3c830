"""Every output path that shows model or user text renders safely as trusted Markdown or
HTML: the turn itself, the footer, history, show, compare, branches, list, inspect,
export, system/goal and the model line (the widget's own XSS tests live with the widget;
the sanitizer's with tests/unit/test_sanitize.py, whose renderers check these outputs)."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell

from tests.support import reliability_counts as counts
from tests.support.fakes.openai_server import FakeOpenAI
from tests.support.markup import MARKDOWN_TAGS, RENDERERS, dangerous_url, parse

ATTACK = (
    "<img src=x onerror=alert(1)> [x](javascript:alert(2)) <script>alert(3)</script> "
    "<!-- <svg onload=alert(4)> --> ![a](javascript:alert(5)) <a href='javascript:alert(6)'>y</a>"
)

def assert_renders_safely(markdown: str) -> None:
    """As tests/unit/test_sanitize.py checks model text, plus nbconvo's own ``<sub>`` footer."""
    for renderer in RENDERERS:
        rendered = renderer.render(markdown)
        assert "<script" not in rendered.lower(), rendered
        page = parse(rendered)
        assert page.comments == [] and page.others == [], rendered
        for tag, attrs in page.tags:
            assert tag in MARKDOWN_TAGS | {"sub"}, rendered
            for name, value in attrs:
                assert not name.startswith("on"), rendered
                if name in ("href", "src"):
                    assert value is not None and not dangerous_url(value), rendered


COMMANDS = [
    "%convo history",
    "%convo show 1",
    "%convo show #2",
    "%convo compare main alt",
    "%convo branches",
    "%convo list",
    "%convo inspect <img src=x onerror=alert(1)> [x](javascript:alert(2))",
    "%convo export",
    "%convo export --to json",
    "%convo export --to openai",
    "%convo system",
    "%convo goal",
    "%convo model",
    "%convo meter",
    f"%%turn\n{ATTACK} once more",  # the streamed answer and its footer
]


def test_every_output_path_renders_safely(shell: InteractiveShell, fake_openai: FakeOpenAI) -> None:
    pub = shell.display_pub
    assert shell.run_cell("%convo model openai:gpt-test").success
    assert shell.run_cell(f"%convo system {ATTACK}").success
    assert shell.run_cell(f"%convo goal {ATTACK}").success
    assert shell.run_cell(f"%%turn\n{ATTACK}", cell_id="c1").success
    assert shell.run_cell(f"%%turn\n{ATTACK} again", cell_id="c2").success
    assert shell.run_cell("%convo fork 1 --name alt").success
    assert shell.run_cell(f"%%turn\n{ATTACK} on alt", cell_id="c3").success
    checked = 0
    for command in COMMANDS:
        pub.reset()
        assert shell.run_cell(command).success, command
        assert pub.outputs, command
        for output in pub.outputs:
            data = output["data"]
            if "text/markdown" in data:
                assert_renders_safely(data["text/markdown"])
                checked += 1
            if "text/html" in data:
                page = parse(data["text/html"])
                assert "<script" not in data["text/html"].lower(), command
                for _tag, attrs in page.tags:
                    assert not any(name.startswith("on") for name, _ in attrs), command
                    for name, value in attrs:
                        if name in ("href", "src") and value:
                            assert not value.strip().lower().startswith("javascript:"), command
                checked += 1
    counts.add("xss: outputs checked", checked)
    assert checked >= len(COMMANDS)


@pytest.mark.parametrize("name", ["<img src=x onerror=alert(1)>", "a]b(javascript:x)"])
def test_odd_branch_names_are_refused_or_safe(shell: InteractiveShell, fake_openai: FakeOpenAI, name: str) -> None:
    assert shell.run_cell("%convo model openai:gpt-test").success
    assert shell.run_cell("%%turn\nhello", cell_id="c1").success
    shell.run_cell(f'%convo fork 1 --name "{name}"')
    shell.display_pub.reset()
    for command in ("%convo branches", "%convo history", "%%turn\nnext"):
        assert shell.run_cell(command, cell_id="c9").success, command
    for output in shell.display_pub.outputs:
        if "text/markdown" in output["data"]:
            assert_renders_safely(output["data"]["text/markdown"])
