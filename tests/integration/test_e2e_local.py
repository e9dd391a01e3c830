"""End to end on the real local model: memory across turns, forks that forget, reruns
that make versions. Once behind llama-cpp-python's OpenAI-compatible server (a real
HTTP server on 127.0.0.1 that sends no usage), once in-process with ``llama:``."""

from __future__ import annotations

from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

import nbconvo

pytestmark = pytest.mark.model


@pytest.fixture(params=["server", "in-process"])
def model_line(request: pytest.FixtureRequest) -> str:
    if request.param == "server":
        base_url = request.getfixturevalue("llama_server")
        return f"%convo model openai-compatible:qwen-local --base-url {base_url}"
    path: Path = request.getfixturevalue("local_model_path")
    return f"%convo model llama:{path}"


def turn(shell: InteractiveShell, text: str, cell_id: str) -> str:
    result = shell.run_cell(f"%%turn -t 0\n{text}", cell_id=cell_id)
    assert result.success, result.error_in_exec
    head = nbconvo.current().head
    assert head is not None
    return head.answer


def test_memory_fork_and_rerun_on_a_real_model(shell: InteractiveShell, model_line: str) -> None:
    assert shell.run_cell(model_line).success
    assert shell.run_cell("%convo system You are a helpful assistant. Be brief.").success
    turn(shell, "My name is Ada. Reply with OK.", "c1")
    turn(shell, "Name one primary colour.", "c2")
    answer = turn(shell, "What is my name? Answer with one word.", "c3")
    assert "ada" in answer.lower()

    # Fork to before the turn that gave the name: the model cannot know it there.
    assert shell.run_cell("%convo fork 0 --name fresh").success
    forgot = turn(shell, "What is my name? Answer with one word.", "c4")
    assert "ada" not in forgot.lower()

    # Back on main, rerunning the last cell makes version 3.2 and keeps 3.1.
    assert shell.run_cell("%convo switch main").success
    old = nbconvo.current().head
    assert old is not None
    again = turn(shell, "What is my name? Answer with one word.", "c3")
    convo = nbconvo.current()
    assert convo.tree.label(convo.tree.head) == "3.2" and convo.tree.label(old.id) == "3.1"
    assert "ada" in again.lower()
    assert convo.tree.turns[old.id].answer == answer  # the old answer stays in the tree
    footer = shell.display_pub.plain()[-1]
    assert footer.startswith("turn 3.2 · main · ") and "tokens" in footer


def test_name_survives_compaction_on_a_real_model(
    shell: InteractiveShell, local_model_path: Path
) -> None:
    assert shell.run_cell(f"%convo model llama:{local_model_path}").success
    assert shell.run_cell("%convo system You are a helpful assistant. Be brief.").success
    turn(shell, "My name is Ada. Reply with OK.", "c1")
    turn(shell, "Name three fruits that are red, with one sentence about each.", "c2")
    turn(shell, "Name three vegetables that are green, with one sentence about each.", "c3")
    convo = nbconvo.current()
    question = "What is my name? Answer with one word."
    before = convo.meter_at(convo.tree.head, pending=question).used
    assert shell.run_cell("%convo compact --keep 1").success
    assert convo.branch == "compact-1" and convo.path[0].kind == "summary"
    after = convo.meter_at(convo.tree.head, pending=question).used
    assert after < before, (before, after)
    request = convo.request(question)
    assert len(request.messages) == 3  # the kept exchange and the question; turn 1 is summarized
    answer = turn(shell, question, "c4")
    assert "ada" in answer.lower(), (convo.path[0].answer, answer)
