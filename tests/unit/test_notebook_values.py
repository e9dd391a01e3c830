"""The notebook in the conversation (issue #16), through a real shell and the loopback
OpenAI fake: values become data parts frozen into their turn, typos are named in the
footer, the last error can be sent, and the meter counts what was sent."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell

import nbconvo
from nbconvo._parts import DataPart
from nbconvo._session import SESSION
from nbconvo._tokens import count_text
from tests.support.fakes.openai_server import FakeOpenAI
from tests.support.helpers import one_line_error


def sales(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(rows)
    return pd.DataFrame(
        {"region": rng.choice(["north", "south"], rows), "units": rng.integers(0, 500, rows)}
    )


def sent(fake: FakeOpenAI, index: int = -1) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = fake.requests[index]["messages"]
    return messages


def footer(shell: InteractiveShell) -> str:
    return str(shell.display_pub.plain()[-1])


def run(shell: InteractiveShell, source: str, cell_id: str) -> None:
    result = shell.run_cell(source, cell_id=cell_id)
    assert result.success, result.error_in_exec


def test_a_dataframe_goes_as_a_table_and_its_turn_keeps_it(
    convo_shell: InteractiveShell, fake_openai: FakeOpenAI
) -> None:
    convo_shell.user_ns["df"] = sales(1_000)
    run(convo_shell, "%%turn\nSummarize {df} in one line.", "c1")
    content = sent(fake_openai)[-1]["content"]
    assert content.startswith("Summarize\n\n`df`: pandas DataFrame, 1,000 rows × 2 columns\n\n")
    assert "| region | str | 0 |" in content and "Last rows:" in content
    assert content.endswith("Left out: rows 6–995.\n\nin one line.")
    turn = nbconvo.current().head
    assert turn is not None and turn.prompt == "Summarize {df} in one line."
    data = [p for p in turn.prompt_parts if isinstance(p, DataPart)]
    assert len(data) == 1 and data[0].expression == "df" and data[0].text in content
    tokens = count_text(data[0].text)
    assert f" · df: pandas DataFrame, 1,000 × 2 → {tokens:,} tokens (rows 6–995 left out)" in footer(convo_shell)


def test_what_was_sent_is_frozen_whatever_the_variable_holds_later(
    convo_shell: InteractiveShell, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    convo_shell.user_ns["df"] = sales(1_000)
    run(convo_shell, "%%turn\nDescribe {df}", "c1")
    first = sent(fake_openai)[-1]["content"]
    convo_shell.user_ns["df"] = sales(10)  # the variable changes
    run(convo_shell, "%%turn\nWhat stands out?", "c2")
    assert sent(fake_openai)[-1]["content"] == "What stands out?"
    assert sent(fake_openai)[0]["content"] == first  # turn 1 as it was sent: 1,000 rows
    # a fork from turn 1 sends turn 1 as stored too
    run(convo_shell, "%convo fork 1", "c3")
    run(convo_shell, "%%turn\nAnother angle?", "c4")
    assert sent(fake_openai)[0]["content"] == first
    # and so does the conversation loaded from a saved file in a new kernel
    saved = tmp_path / "talk.json"
    run(convo_shell, f"%convo save {saved}", "c5")
    SESSION.conversations.clear()
    run(convo_shell, f"%convo load {saved}", "c6")
    run(convo_shell, "%%turn\nAnd after a restart?", "c7")
    assert sent(fake_openai)[0]["content"] == first


def test_a_misspelled_name_is_sent_as_written_and_named_in_the_footer(
    convo_shell: InteractiveShell, fake_openai: FakeOpenAI
) -> None:
    convo_shell.user_ns["product_name"] = "Widget"
    run(convo_shell, "%%turn\nName {product_name} and {prodct_name}", "c1")
    assert sent(fake_openai)[-1]["content"] == "Name Widget and {prodct_name}"
    assert footer(convo_shell).endswith(
        " · ⚠ sent `{prodct_name}` as written: no variable of that name"
    )
    run(convo_shell, "%%turn\nAll {product_name}, {{literal}}", "c2")
    assert "⚠" not in footer(convo_shell)


def test_a_value_over_its_budget_says_so_and_full_lifts_the_budget(
    convo_shell: InteractiveShell, fake_openai: FakeOpenAI
) -> None:
    convo_shell.user_ns["notes"] = "All work and no play. " * 2_000  # ≈ 12,000 tokens
    run(convo_shell, "%config ConvoMagics.value_tokens = 200", "c0")
    run(convo_shell, "%%turn\n{notes}", "c1")
    cut = sent(fake_openai)[-1]["content"]
    assert count_text(cut) <= 200 and cut.endswith("of 44,000 characters left out]")
    assert "notes: str of 44,000 characters → " in footer(convo_shell)
    run(convo_shell, "%%turn\n{notes!full}", "c2")
    assert sent(fake_openai)[-1]["content"] == "All work and no play. " * 2_000
    assert "notes:" not in footer(convo_shell)  # whole: nothing to say


def test_notebook_references_out_and_underscore(
    convo_shell: InteractiveShell, fake_openai: FakeOpenAI
) -> None:
    result = convo_shell.run_cell("6 * 7", store_history=True)
    number = convo_shell.execution_count - 1
    assert result.result == 42
    run(convo_shell, f"%%turn\nOut: {{Out[{number}]}}, last: {{_}}", "c1")
    assert sent(fake_openai)[-1]["content"] == "Out: 42, last: 42"


def test_the_last_error_goes_with_its_cell(
    convo_shell: InteractiveShell, fake_openai: FakeOpenAI
) -> None:
    failing = "def ratio(a, b):\n    return a / b\n\nratio(1, 0)"
    assert not convo_shell.run_cell(failing, store_history=True).success
    run(convo_shell, "%%turn --error\nWhy does this fail?", "c1")
    content = sent(fake_openai)[-1]["content"]
    assert content.startswith("Why does this fail?\n\nThe last error in the notebook (ZeroDivisionError):")
    assert f"The cell that failed:\n\n```python\n{failing}\n```" in content
    assert "  The failing cell, line 4, in <module>\n    ratio(1, 0)\n" in content
    assert "  The failing cell, line 2, in ratio\n    return a / b\nZeroDivisionError: division by zero\n```" in content
    assert "In[" not in content  # no execution count: the same error, the same text, any run
    assert "\x1b" not in content and "interactiveshell.py" not in content
    assert "last error: ZeroDivisionError in a cell → " in footer(convo_shell)


def test_error_with_no_error_yet_is_one_line_and_sends_nothing(
    convo_shell: InteractiveShell,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delattr(sys, "last_value", raising=False)
    before = len(fake_openai.requests)
    text = one_line_error(convo_shell, "%%turn --error\nwhy?", capsys)
    assert "there is no error in this kernel yet" in text
    assert len(fake_openai.requests) == before and nbconvo.current().turns == []


def test_the_meter_counts_the_data_that_was_sent(
    convo_shell: InteractiveShell, fake_openai: FakeOpenAI
) -> None:
    convo_shell.user_ns["df"] = sales(1_000)
    run(convo_shell, "%%turn\n{df}", "c1")
    convo = nbconvo.current()
    turn = convo.head
    assert turn is not None
    data = next(p for p in turn.prompt_parts if isinstance(p, DataPart))
    assert convo._ledger.own_tokens(turn) >= count_text(data.text)


def test_the_last_error_names_library_files_by_package_not_by_install_path(
    convo_shell: InteractiveShell, fake_openai: FakeOpenAI
) -> None:
    convo_shell.user_ns["df"] = sales(3)
    assert not convo_shell.run_cell('df["South"]', store_history=True).success
    run(convo_shell, "%%turn --error\nwhy?", "c1")
    content = sent(fake_openai)[-1]["content"]
    assert 'File "pandas/core/' in content and "KeyError: 'South'" in content
    assert sys.prefix not in content and "site-packages" not in content  # the same on any machine
