"""`nbconvo run`: a notebook executed headlessly, cell ids sent as JupyterLab sends them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from tests.support.fakes.openai_server import Canned, FakeOpenAI
from tests.support.helpers import FAKE_KEY

pytestmark = pytest.mark.kernel
ROOT = Path(__file__).resolve().parents[2]


def nbconvo_run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "nbconvo._cli", "run", *args],
        capture_output=True, text=True, timeout=300, env={**os.environ, **env}, cwd=ROOT,
    )


def test_quickstart_regenerates_with_fork_and_versions(tmp_path: Path) -> None:
    with FakeOpenAI(api_key=FAKE_KEY) as fake:
        env = {"OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": fake.base_url}
        out = nbconvo_run("notebooks/quickstart.ipynb", "--model", "openai:gpt-test",
                          "--output", str(tmp_path / "q.ipynb"), "--transcript", str(tmp_path / "q.md"),
                          env=env)
        assert out.returncode == 0, out.stderr
        assert len(fake.requests) == 6
    transcript = (tmp_path / "q.md").read_text()
    assert transcript == out.stdout.rstrip("\n") + "\n" or transcript in out.stdout
    assert "## Branch pricing (current)" in transcript and "## Branch main" in transcript
    assert "### Turn 3.2" in transcript and "### Turn 3.1 (#5)" in transcript
    assert "echo #2: Instead, suggest one pricing change" in transcript  # fork kept turn 1 only
    assert "Write a formal one-line tagline" in transcript
    nb = nbformat.read(tmp_path / "q.ipynb", as_version=4)
    turn_outputs = [c.outputs for c in nb.cells if c.cell_type == "code" and c.source.startswith("%%turn")]
    for outputs in turn_outputs:  # the answer: safe HTML plus its Markdown source, no Markdown
        data = outputs[0]["data"]
        assert data["text/plain"].startswith("echo #") and "text/markdown" not in data
        assert data["text/html"].startswith('<div class="nbconvo-md')
    footer = turn_outputs[0][1]["data"]["text/plain"]
    assert footer.startswith("turn 1 · main · openai:gpt-test · ")


def test_cell_ids_reach_the_kernel(tmp_path: Path) -> None:
    nb = new_notebook(cells=[new_code_cell("%load_ext nbconvo"),
                             new_code_cell("import nbconvo\nprint('CELL', nbconvo._MAGICS.tracker.cell_id)")])
    nb.cells[1].id = "my-cell-id"
    nbformat.write(nb, tmp_path / "ids.ipynb")
    out = nbconvo_run(str(tmp_path / "ids.ipynb"), "--quiet", env={})
    assert out.returncode == 0, out.stderr
    executed = nbformat.read(tmp_path / "ids.out.ipynb", as_version=4)
    assert executed.cells[1].outputs[0]["text"] == "CELL my-cell-id\n"


def test_failing_turn_names_the_cell_keeps_the_turns_before_it_and_exits_nonzero(tmp_path: Path) -> None:
    cells = ["%load_ext nbconvo", "%%turn\nfirst question", "%%turn\nsecond question", "%%turn\nnever sent"]
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells]), tmp_path / "bad.ipynb")
    many = ", ".join(f"choice-{n}" for n in range(40))  # a long error, as a list of choices
    with FakeOpenAI(api_key=FAKE_KEY) as fake:
        fake.script.extend([Canned(), Canned(status=400, body={"error": {
            "message": f"bad request: use one of {many}", "type": "invalid_request_error", "param": None, "code": None}})])
        out = nbconvo_run(str(tmp_path / "bad.ipynb"), "--model", "openai:gpt-test", "--quiet",
                          env={"OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": fake.base_url})
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("nbconvo: cell 3 of bad.ipynb failed: HttpStatusError: openai (400): bad request")
    assert "choice-39" in last  # the whole list, not cut in the middle
    assert last.endswith(f"(partial notebook written to {tmp_path / 'bad.out.ipynb'}, "
                         f"the transcript so far to {tmp_path / 'bad.out.md'})")
    transcript = (tmp_path / "bad.out.md").read_text()
    assert "first question" in transcript and "echo #1: first question" in transcript
    assert "second question" not in transcript and "never sent" not in transcript


def test_missing_notebook_is_one_line(tmp_path: Path) -> None:
    out = nbconvo_run(str(tmp_path / "nope.ipynb"), env={})
    assert out.returncode == 2 and out.stderr.strip() == f"nbconvo: no notebook at {tmp_path / 'nope.ipynb'}"


def _outputs(path: Path) -> list[list[dict]]:  # type: ignore[type-arg]
    nb = nbformat.read(path, as_version=4)
    return [[{k: v for k, v in o.items() if k != "metadata"} for o in c.outputs]
            for c in nb.cells if c.cell_type == "code"]


def test_replay_of_forking_matches_the_recording_twice(tmp_path: Path) -> None:
    env = {"NBCONVO_CACHE": str(tmp_path / "no-model"), "NBCONVO_STREAM": "0",
           "NBCONVO_MODEL": "llama:qwen2.5-coder-1.5b", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
           "OPENAI_API_KEY": ""}
    recorded = _outputs(ROOT / "notebooks" / "forking.ipynb")
    for run in (1, 2):
        out = nbconvo_run("notebooks/forking.ipynb", "--cassette", "notebooks/cassettes/forking.jsonl",
                          "--mode", "replay", "--output", str(tmp_path / f"run{run}.ipynb"), "--quiet",
                          env=env)
        assert out.returncode == 0, out.stderr
        assert _outputs(tmp_path / f"run{run}.ipynb") == recorded


def test_run_runs_tools_only_when_allowed_and_a_replay_runs_none(tmp_path: Path) -> None:
    """`nbconvo run` has no one to ask: without --allow-tools a call is not run and the
    model is told; with it, the call runs; replayed, the recorded result is used and the
    function is not called, whatever the flag."""
    marker = tmp_path / "ran.txt"
    cells = [
        "%load_ext nbconvo",
        "from pathlib import Path\n"
        "def add(a: int, b: int) -> int:\n"
        "    '''Add two integers.'''\n"
        f"    with Path({str(marker)!r}).open('a') as f:\n"
        "        f.write(f'{a}+{b}\\n')\n"
        "    return a + b",
        "%%turn --tools add\nAdd 2 and 3.",
    ]
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells]), tmp_path / "tools.ipynb")
    cassette = tmp_path / "tools.jsonl"
    answers: dict[str, str] = {}
    for label, flags in (("refused", []), ("allowed", ["--allow-tools"])):
        with FakeOpenAI(api_key=FAKE_KEY) as fake:
            fake.script.append(Canned(tool_calls=[("add", '{"a": 2, "b": 3}')]))
            extra = ["--cassette", str(cassette), "--mode", "record"] if label == "allowed" else []
            out = nbconvo_run(str(tmp_path / "tools.ipynb"), "--model", "openai:gpt-test",
                              "--quiet", "--output", str(tmp_path / f"{label}.ipynb"), *flags, *extra,
                              env={"OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": fake.base_url})
            assert out.returncode == 0, out.stderr
        answers[label] = (tmp_path / f"{label}.md").read_text()
        if label == "refused":
            assert not marker.exists()
            assert fake.requests[-1]["messages"][-1]["content"] == "the user did not allow add(a=2, b=3)"
            footer = _outputs(tmp_path / "refused.ipynb")[2][1]["data"]["text/plain"]
            assert "⚠ add(a=2, b=3) was not run: no one could approve it here" in footer
            assert "`nbconvo run` takes --allow-tools" in footer
    assert marker.read_text() == "2+3\n"
    assert "tool said: 5" in answers["allowed"] and "ƒ `add(a=2, b=3)` → `5`" in answers["allowed"]
    # Replayed, even with --allow-tools, the function is not called again.
    out = nbconvo_run(str(tmp_path / "tools.ipynb"), "--quiet", "--allow-tools", "--cassette",
                      str(cassette), "--mode", "replay", "--output", str(tmp_path / "replayed.ipynb"),
                      env={"OPENAI_API_KEY": "", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
                           "NBCONVO_MODEL": "openai:gpt-test"})
    assert out.returncode == 0, out.stderr
    assert marker.read_text() == "2+3\n"
    assert (tmp_path / "replayed.md").read_text() == answers["allowed"]
