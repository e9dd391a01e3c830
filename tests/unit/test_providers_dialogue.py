"""A multi-turn dialogue with a fork, a rerun and a switch, through each cloud provider's
fake via ``%%turn`` in a real IPython shell: each request carries the history of its own
branch (for Copilot, whose history lives on the server: each server conversation holds it).
Also through the shell: one-line errors, a mid-stream failure kept as an error turn, and
the providers' notes in the footer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

import nbconvo
from tests.support.fakes.base import Canned
from tests.support.provider_cases import CASES, Case


def turn(shell: InteractiveShell, text: str, cell_id: str, opts: str = "") -> Any:
    return shell.run_cell(f"%%turn {opts}\n{text}", cell_id=cell_id)


def history(case: Case, fake: Any) -> list[str]:
    """The conversation the service saw for its latest answer, as texts, without the
    system prompt and without that answer."""
    body = fake.requests[-1]
    if case.name in ("openai", "azure"):
        return [m["content"] for m in body["messages"] if m["role"] != "system"]
    if case.name == "anthropic":
        return [m["content"] for m in body["messages"]]
    if case.name == "gemini":
        return [c["parts"][0]["text"] for c in body["contents"]]
    if case.name == "openai-responses":
        return [item["content"] for item in body["input"]]
    conversation = fake.conversations[fake.seen[-1].path.split("/")[-2]]
    texts = [
        c["text"].split(": ", 1)[1]
        for c in conversation.context
        if c["text"].startswith(("User: ", "Assistant: "))
    ]
    for prompt, answer in zip(conversation.prompts, conversation.answers, strict=True):
        texts += [prompt, answer]
    return texts[:-1]


def system_seen(case: Case, fake: Any) -> str:
    body = fake.requests[-1]
    if case.name in ("openai", "azure"):
        return str(body["messages"][0]["content"])
    if case.name == "anthropic":
        return str(body["system"])
    if case.name == "gemini":
        return str(body["systemInstruction"]["parts"][0]["text"])
    if case.name == "openai-responses":
        return str(body["instructions"])
    conversation = fake.conversations[fake.seen[-1].path.split("/")[-2]]
    return str(conversation.context[0]["text"])


@pytest.fixture(params=CASES, ids=str)
def live(
    request: pytest.FixtureRequest, shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Case, Any, InteractiveShell]]:
    case: Case = request.param
    with case.running(monkeypatch) as fake:
        assert shell.run_cell(f"%convo model {case.spec}").success
        yield case, fake, shell


def test_dialogue_with_fork_rerun_and_switch(live: tuple[Case, Any, InteractiveShell]) -> None:
    case, fake, shell = live
    assert shell.run_cell("%convo system Be terse.").success
    assert turn(shell, "one", "c1").success
    assert system_seen(case, fake).startswith("Be terse.")
    assert turn(shell, "two", "c2").success
    assert turn(shell, "three", "c3").success
    assert history(case, fake) == ["one", "echo #1: one", "two", "echo #2: two", "three"]
    assert nbconvo.current().head.answer == "echo #3: three"  # type: ignore[union-attr]

    assert shell.run_cell("%convo fork 1 --name pricing").success
    assert turn(shell, "pricing?", "c4").success
    assert history(case, fake) == ["one", "echo #1: one", "pricing?"]
    assert nbconvo.current().head.answer == "echo #2: pricing?"  # type: ignore[union-attr]

    assert turn(shell, "pricing again?", "c4").success  # a rerun: version 2.3 on this branch
    assert history(case, fake) == ["one", "echo #1: one", "pricing again?"]

    assert shell.run_cell("%convo switch main").success
    assert turn(shell, "four", "c5").success
    assert history(case, fake) == [
        "one",
        "echo #1: one",
        "two",
        "echo #2: two",
        "three",
        "echo #3: three",
        "four",
    ]
    convo = nbconvo.current()
    assert [t.answer for t in convo.path][-1] == "echo #4: four"
    assert [t.prompt for t in convo.path] == ["one", "two", "three", "four"]
    if case.name == "copilot":
        # main's server conversation was continued; the fork and the rerun got their own
        assert len(fake.conversations) == 3
        main = [c for c in fake.conversations.values() if len(c.prompts) == 4]
        assert len(main) == 1 and main[0].context == [
            {"text": "Be terse.", "description": "instructions for this conversation"}
        ]


def test_midstream_failure_is_kept_as_an_error_turn(
    live: tuple[Case, Any, InteractiveShell], capsys: pytest.CaptureFixture[str]
) -> None:
    case, fake, shell = live
    fake.script.append(case.canned(reset_after=2))
    capsys.readouterr()
    assert not turn(shell, "hello", "c1").success
    out = capsys.readouterr().out.strip()
    assert "the partial answer is kept as turn 1 (error)" in out and len(out.splitlines()) == 1
    head = nbconvo.current().head
    assert head is not None and head.status == "error" and head.answer == "echo #1:"
    assert turn(shell, "next", "c2").success
    assert history(case, fake)[-3:] == ["hello", "echo #1:", "next"]


def test_missing_key_is_one_line_and_nothing_is_sent(
    live: tuple[Case, Any, InteractiveShell],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    case, _fake, shell = live
    monkeypatch.delenv(case.key_variable)
    capsys.readouterr()
    assert not turn(shell, "hello", "c1").success
    out = capsys.readouterr().out.strip()
    assert f"set the environment variable {case.key_variable}" in out
    assert len(out.splitlines()) == 1 and nbconvo.current().turns == []


def test_wrong_key_never_reaches_the_output(
    live: tuple[Case, Any, InteractiveShell],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    case, _fake, shell = live
    wrong = "AIzaWrongKey1234567890" if case.name == "gemini" else "sk-wrong-key-1234567890abcdef"
    monkeypatch.setenv(case.key_variable, wrong)
    shell.display_pub.reset()
    capsys.readouterr()
    assert not turn(shell, "hello", "c1").success
    out = capsys.readouterr()
    shown = out.out + out.err + repr(shell.display_pub.outputs)
    assert "rejected the" in shown and wrong not in shown


def test_notes_appear_in_the_footer(live: tuple[Case, Any, InteractiveShell]) -> None:
    case, _fake, shell = live
    shell.display_pub.reset()
    assert turn(shell, "hello", "c1", "-t 0.4 --max-tokens 2").success
    footer = shell.display_pub.plain()[-1]
    if case.name == "anthropic":
        assert "temperature 0.4 not sent" in footer and "answer cut at 2 tokens" in footer
    elif case.name == "copilot":
        assert "Copilot chooses its own model" in footer
    else:
        assert "answer cut at 2 tokens" in footer


def test_window_override_refuses_before_sending(
    live: tuple[Case, Any, InteractiveShell], capsys: pytest.CaptureFixture[str]
) -> None:
    _case, fake, shell = live
    assert shell.run_cell("%convo window 20").success
    capsys.readouterr()
    assert not turn(shell, "word " * 100, "c1").success
    assert "`%convo compact`" in capsys.readouterr().out
    assert fake.requests == []


def test_finish_notice_shown_for_a_filtered_answer(
    live: tuple[Case, Any, InteractiveShell],
) -> None:
    case, fake, shell = live
    scenario = {
        "openai": lambda: case.canned(finish_reason="content_filter"),
        "openai-responses": lambda: Canned(finish="content_filter"),
        "azure": lambda: Canned(finish="content_filter"),
        "anthropic": lambda: Canned(finish="refusal"),
        "gemini": lambda: Canned(finish="SAFETY"),
        "copilot": lambda: Canned(options={"disengage": True}),
    }[case.name]
    fake.script.append(scenario())
    shell.display_pub.reset()
    assert turn(shell, "hello", "c1").success
    footer = shell.display_pub.plain()[-1]
    assert any(word in footer for word in ("content filter", "refused", "SAFETY", "responsible"))


def test_a_typed_key_is_used_and_kept_out_of_outputs(
    live: tuple[Case, Any, InteractiveShell],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    case, fake, shell = live
    key = case.environment(fake)[case.key_variable]
    monkeypatch.delenv(case.key_variable)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": key)
    shell.display_pub.reset()
    assert shell.run_cell(f"%convo key {case.name}").success
    assert turn(shell, "hello", "c1").success
    assert nbconvo.current().head.answer == "echo #1: hello"  # type: ignore[union-attr]
    out = capsys.readouterr()
    assert key not in out.out + out.err + repr(shell.display_pub.outputs)
    assert key not in repr(nbconvo.current().tree)
