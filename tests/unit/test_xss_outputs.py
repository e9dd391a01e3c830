"""Every output path that shows model or user text is safe HTML (never Markdown for a
front end to parse): the turn itself, the footer, history, show, compare, branches,
list, inspect, export, system/goal and the model line. The renderer's own corpus tests
live in tests/unit/test_html.py, the widget's in js/test, the browsers' in
tests/integration/test_xss_browser.py."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell

from tests.support import reliability_counts as counts
from tests.support.fakes.openai_server import FakeOpenAI
from tests.support.markup import safety_problems

ATTACK = (
    "<img src=x onerror=alert(1)> [x](javascript:alert(2)) <script>alert(3)</script> "
    "<!-- <svg onload=alert(4)> --> ![a](javascript:alert(5)) <a href='javascript:alert(6)'>y</a>"
)

def assert_safe_output(data: dict[str, str], where: str) -> None:
    assert "text/markdown" not in data, where  # front ends run HTML inside live Markdown
    assert "text/html" in data and "text/plain" in data, where
    assert safety_problems(data["text/html"]) == [], (where, data["text/html"])


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
            assert_safe_output(output["data"], command)
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
    assert shell.display_pub.outputs
    for output in shell.display_pub.outputs:
        assert_safe_output(output["data"], name)
