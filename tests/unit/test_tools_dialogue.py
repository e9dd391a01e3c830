"""A dialogue with tools through the loopback fakes, as a user holds it (#17): a notebook
function offered with ``--tools``, a fork before the tool turn, a rerun of it, and a
replay from the cassette in a kernel where the function is gone: the same answers, and
no call made. Then what goes wrong, each in one line with the conversation intact."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

import nbconvo
from tests.support.helpers import one_line_error
from tests.support.provider_cases import BY_NAME, Case

DEFINE_ADD = '''
calls = []
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: the first
        b: the second
    """
    calls.append((a, b))
    return a + b
'''
TOOLS = "--tools add --approve all"


def run(shell: InteractiveShell, source: str, cell_id: str | None = None) -> None:
    result = shell.run_cell(source, cell_id=cell_id)
    assert result.success, result.error_in_exec or result.error_before_exec


def turn(shell: InteractiveShell, text: str, cell_id: str, opts: str = "") -> None:
    run(shell, f"%%turn {opts}\n{text}", cell_id)


def answers(shell: InteractiveShell) -> list[str]:
    """The answers and footers the cells showed (the streaming placeholders left out)."""
    return [p for p in shell.display_pub.plain() if p not in ("…", "")]


def dialogue(shell: InteractiveShell, script: list[Any] | None, canned: Any) -> None:
    """The user's cells, in order; ``script`` gets the fake's answers (None: a replay)."""

    def will_call(*calls: tuple[str, str]) -> None:
        if script is not None:
            script.append(canned(tool_calls=list(calls)))

    turn(shell, "Plan some sums.", "c1")
    will_call(("add", '{"a": 2, "b": 3}'), ("add", '{"a": 10, "b": 20}'))
    turn(shell, "Add 2+3 and 10+20.", "c2", TOOLS)
    run(shell, "%convo fork 1 --name again", "c3")
    will_call(("add", '{"a": 1, "b": 1}'))
    turn(shell, "Add 1+1.", "c4", TOOLS)
    will_call(("add", '{"a": 4, "b": 4}'))
    turn(shell, "Add 4+4 instead.", "c2", TOOLS)  # the tool cell run again: a new version
    turn(shell, "Thanks.", "c5")


@pytest.mark.parametrize("name", ["openai", "anthropic", "gemini", "azure"])
def test_a_dialogue_with_tools_forks_reruns_and_replays_without_calling(
    name: str, shell: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case: Case = BY_NAME[name]
    cassette = tmp_path / "tools.jsonl"
    with case.start() as fake:
        for key, value in case.environment(fake).items():
            monkeypatch.setenv(key, value)
        run(shell, f"%convo model {case.spec}")
        run(shell, f"%convo replay {cassette} --mode record")
        run(shell, DEFINE_ADD)
        shell.display_pub.reset()
        dialogue(shell, fake.script, case.canned)
        recorded = answers(shell)
        sent = len(fake.requests)
    assert shell.user_ns["calls"] == [(2, 3), (10, 20), (1, 1), (4, 4)]
    assert sent == 8  # 1 + 2 (the calls, then their results) + 2 + 2 + 1
    convo = nbconvo.current()
    tool_turns = [t for t in convo.turns if t.answer_parts]
    assert [t.answer for t in tool_turns] == ["tool said: 5; 30", "tool said: 2", "tool said: 8"]
    # The fork was made before the tool turn: its history holds no call.
    assert [t.prompt for t in convo.tree.ancestry(tool_turns[1].id)] == [
        "Plan some sums.",
        "Add 1+1.",
    ]
    # The rerun is a new version on main, and the last turn follows it with its calls.
    assert convo.branch == "main" and [t.prompt for t in convo.path] == [
        "Plan some sums.",
        "Add 4+4 instead.",
        "Thanks.",
    ]
    shown = "\n".join(recorded)
    assert re.search(r"ƒ `add\(a=2, b=3\)` → `5`", shown)
    assert re.search(r"ƒ `add\(a=10, b=20\)` → `30`", shown)
    assert "2 tool calls" in shown  # the footer counts them

    # A kernel where `add` is gone, no server and no key: the replay runs nothing.
    run(shell, "del add; calls.clear()")
    monkeypatch.delenv(case.key_variable)
    run(shell, "%convo reset")
    shell.display_pub.reset()
    run(shell, f"%convo replay {cassette} --mode replay")
    shell.display_pub.reset()
    dialogue(shell, None, case.canned)
    assert answers(shell) == recorded
    assert shell.user_ns["calls"] == [] and "add" not in shell.user_ns
    assert [t.answer_parts for t in nbconvo.current().turns] == [
        t.answer_parts for t in convo.turns
    ]


def test_a_replay_that_needs_a_call_it_never_recorded_is_a_miss(
    shell: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    case = BY_NAME["openai"]
    cassette = tmp_path / "tools.jsonl"
    with case.start() as fake:
        for key, value in case.environment(fake).items():
            monkeypatch.setenv(key, value)
        run(shell, f"%convo model {case.spec}")
        run(shell, f"%convo replay {cassette} --mode record")
        run(shell, DEFINE_ADD)
        fake.script.append(case.canned(tool_calls=[("add", '{"a": 2, "b": 3}')]))
        turn(shell, "Add 2+3.", "c1", TOOLS)
    # Take the result out of the cassette: the answer that made the call is still there.
    lines = cassette.read_text().splitlines()
    entries = [json.loads(line) for line in lines[1:]]
    for entry in entries:
        entry.pop("results", None)
    cassette.write_text("\n".join([lines[0], *map(json.dumps, entries)]) + "\n")
    run(shell, "%convo reset")
    run(shell, f"%convo replay {cassette} --mode replay")
    message = one_line_error(shell, f"%%turn {TOOLS}\nAdd 2+3.", capsys)
    assert message.endswith(
        f"ReplayMiss\x1b[0m: cassette {cassette} has no result for the call add the model made: "
        "record it with `--mode auto` or `--mode record`"
    )
    assert shell.user_ns["calls"] == [(2, 3)]  # only the recording ran it


# -- bad inputs through a real shell: one line each, the conversation intact ------------


@pytest.fixture
def tool_shell(convo_shell: InteractiveShell) -> InteractiveShell:
    run(convo_shell, DEFINE_ADD)
    run(
        convo_shell,
        "import time\ndef nap(seconds: float) -> str:\n    time.sleep(seconds)\n    return 'up'",
    )
    run(convo_shell, "def boom(a: int) -> int:\n    return a // 0")
    run(convo_shell, "def big() -> str:\n    return 'x' * 10_000_000")
    run(convo_shell, "def odd() -> object:\n    return object()")
    return convo_shell


def footer(shell: InteractiveShell) -> str:
    return next(p for p in reversed(shell.display_pub.plain()) if p.startswith("turn "))


@pytest.mark.parametrize(
    ("tools", "calls", "model_got", "notice"),
    [
        ("boom", [("boom", '{"a": 1}')], "boom raised ZeroDivisionError: integer division or modulo by zero",
         "⚠ boom raised ZeroDivisionError"),
        ("nap", [("nap", '{"seconds": 30}')], "nap did not finish within 0.5 s and was stopped",
         "⚠ nap did not finish within 0.5 s"),
        ("odd", [("odd", "{}")], "<object object at", "⚠ odd returned an object, not JSON: the model got it as text"),
        ("big", [("big", "{}")], "xxxxxxxx", "⚠ big returned 10,000,000 characters: the model got the first 20,000"),
        ("add", [("sub", '{"a": 1}')], "there is no tool named 'sub' (the tools are: add)",
         "⚠ there is no tool named 'sub'"),
        ("add", [("add", '{"a": 1, "b": "two"}')], "add: bad arguments: 'b': Input should be a valid integer",
         "⚠ add: bad arguments"),
    ],
    ids=["raises", "timeout", "unserializable", "10MB", "unknown", "malformed"],
)  # fmt: skip
def test_what_a_call_gets_wrong_goes_back_to_the_model_in_one_line(
    tool_shell: InteractiveShell, fake_openai: Any, tools: str, calls: list[tuple[str, str]],
    model_got: str, notice: str,
) -> None:  # fmt: skip
    run(tool_shell, "%config ConvoMagics.tool_timeout = 0.5")
    turn(tool_shell, "first", "c0")
    fake_openai.script.append(fake_openai_canned(calls))
    turn(tool_shell, "go", "c1", f"--tools {tools} --approve all")
    sent = fake_openai.requests[-1]["messages"][-1]
    assert sent["role"] == "tool" and sent["content"].startswith(model_got)
    assert len(sent["content"]) <= 20_100
    assert notice in footer(tool_shell)
    convo = nbconvo.current()
    assert [t.prompt for t in convo.path] == ["first", "go"]
    assert convo.head is not None and convo.head.status == "ok"
    turn(tool_shell, "after", "c2")  # the conversation goes on: the history is accepted
    assert fake_openai.requests[-1]["messages"][-1] == {"role": "user", "content": "after"}


def fake_openai_canned(calls: list[tuple[str, str]]) -> Any:
    from tests.support.fakes.openai_server import Canned

    return Canned(tool_calls=calls)


def test_a_denied_call_is_not_run_and_the_model_is_told(
    tool_shell: InteractiveShell, fake_openai: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    monkeypatch.setattr("builtins.input", lambda q: asked.append(q) or "n")
    fake_openai.script.append(fake_openai_canned([("add", '{"a": 2, "b": 3}')]))
    turn(tool_shell, "go", "c1", "--tools add")
    assert asked == ["nbconvo: the model wants to run add(a=2, b=3) — [y]es / [n]o / [a]lways? "]
    assert tool_shell.user_ns["calls"] == []
    sent = fake_openai.requests[-1]["messages"][-1]
    assert sent["content"] == "the user did not allow add(a=2, b=3)"
    assert nbconvo.current().head.answer == "tool said: the user did not allow add(a=2, b=3)"  # type: ignore[union-attr]


def test_the_step_limit_ends_the_turn_with_a_notice(
    tool_shell: InteractiveShell, fake_openai: Any
) -> None:
    for i in range(3):
        fake_openai.script.append(fake_openai_canned([("add", f'{{"a": {i}, "b": 1}}')]))
    turn(tool_shell, "keep adding", "c1", f"{TOOLS} --max-steps 2")
    assert tool_shell.user_ns["calls"] == [(0, 1), (1, 1)]
    assert "⚠ stopped after 2 tool steps" in footer(tool_shell)
    turn(tool_shell, "go on", "c2")
    roles = [m["role"] for m in fake_openai.requests[-1]["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "assistant", "tool", "user"]


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("%%turn --tools nothere\nhi", "there is no function 'nothere' in the notebook to offer as a tool"),
        ("%%turn --tools calls\nhi", "calls is a list, not a function"),
        ("%%turn --approve add\nhi", "--approve and --max-steps are for tools, and this turn offers none"),
        ("%%turn --tools add --approve sub\nhi", "--approve sub: the turn offers no tool of that name"),
        ("%%turn --tools add --max-steps 0\nhi", "--max-steps must be a positive whole number"),
        ("%%turn --schema Nope\nhi", "--schema Nope: there is no Nope in the notebook"),
        ("%%turn --schema add\nhi", "--schema needs a class (a pydantic model, dataclass or TypedDict), not function"),
        ("%%turn --schema int\nhi", "--schema int: the answer must be a JSON object"),
        ("%convo tools nothere", "there is no function 'nothere' in the notebook"),
    ],
)  # fmt: skip
def test_bad_tool_options_are_one_line_and_send_nothing(
    tool_shell: InteractiveShell, fake_openai: Any, source: str, says: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    before = (len(fake_openai.requests), len(nbconvo.current().tree), nbconvo.current().tools)
    message = one_line_error(tool_shell, source, capsys)
    assert says in message and "\n" not in message
    after = (len(fake_openai.requests), len(nbconvo.current().tree), nbconvo.current().tools)
    assert after == before


def test_convo_tools_sets_what_every_turn_offers(
    tool_shell: InteractiveShell, fake_openai: Any
) -> None:
    run(tool_shell, "%convo tools add boom")
    turn(tool_shell, "hi", "c1")
    assert [t["function"]["name"] for t in fake_openai.requests[-1]["tools"]] == ["add", "boom"]
    run(tool_shell, "%convo tools none")
    turn(tool_shell, "hi again", "c2")
    assert "tools" not in fake_openai.requests[-1]
    run(
        tool_shell,
        "import nbconvo\n@nbconvo.tool\ndef mul(a: int, b: int) -> int:\n    '''Multiply.'''\n    return a * b",
    )
    run(tool_shell, "%convo tools --clear")  # back to every @nbconvo.tool
    turn(tool_shell, "and now", "c3")
    assert [t["function"]["name"] for t in fake_openai.requests[-1]["tools"]] == ["mul"]


def test_a_structured_answer_lands_in_a_variable_or_says_which_field_is_wrong(
    tool_shell: InteractiveShell, fake_openai: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    run(
        tool_shell,
        "from pydantic import BaseModel\nclass City(BaseModel):\n    name: str\n    people: int",
    )
    turn(tool_shell, "A city, please.", "c1", "--schema City -o city")
    city = tool_shell.user_ns["city"]
    assert type(city).__name__ == "City"
    body = fake_openai.requests[-1]
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["name"] == "City"
    from tests.support.fakes.openai_server import Canned

    fake_openai.script.append(Canned(pieces=['{"name": "Oslo"}']))
    message = one_line_error(tool_shell, "%%turn --schema City -o city\nAnother.", capsys)
    assert message.endswith(
        "UsageError\x1b[0m: the answer does not match City: 'people': Field required; it is kept as "
        "text in turn 2 and city was not changed"
    )
    assert tool_shell.user_ns["city"] is city
    assert nbconvo.current().head.answer == '{"name": "Oslo"}'  # type: ignore[union-attr]
