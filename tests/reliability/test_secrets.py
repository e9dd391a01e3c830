"""Secrets canary: a random key per provider in the environment; turns through every
provider's fake (answers, retried errors, errors that echo the key, a stream broken after
text), save, export, a recorded cassette, the widget and `nbconvo run`; then every output,
every file written and every log is searched for the keys: zero occurrences. The logs are
at DEBUG: in this process (caplog), and for `nbconvo run` in both its own process and its
kernel (a ``sitecustomize`` logs each to a file), whose stderr is captured too. Autosave
and cassette files are mode 0600.

Half the canaries are shaped like real keys (``sk-…``), half are not, so the pattern
redaction in ``providers._http.redact`` is not what makes the test pass for those."""

from __future__ import annotations

import logging
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from IPython.core.interactiveshell import InteractiveShell
from nbformat.v4 import new_code_cell, new_notebook

import nbconvo
from tests.support import reliability_counts as counts
from tests.support.fakes import (
    anthropic_server,
    azure_server,
    copilot_server,
    gemini_server,
    openai_server,
)
from tests.support.provider_cases import BY_NAME, clean_environment

ROOT = Path(__file__).resolve().parents[2]
CORE = secrets.token_hex(12)
CANARIES = {
    "openai": f"sk-canary-{CORE}-oa",
    "anthropic": f"sk-canary-{CORE}-an",
    "gemini": f"canaryGemini{CORE}",
    "azure": f"canaryazure{CORE}",
    "copilot": f"canary.copilot.{CORE}",
}
FAKES = {
    "openai": openai_server.FakeOpenAI,
    "anthropic": anthropic_server.FakeAnthropic,
    "gemini": gemini_server.FakeGemini,
    "azure": azure_server.FakeAzure,
    "copilot": copilot_server.FakeCopilot,
}


def leaks(text: str) -> int:
    """Occurrences of any canary (or of its random core) in text."""
    return text.count(CORE)


def scan_tree(folder: Path) -> dict[str, int]:
    found: dict[str, int] = {}
    for path in folder.rglob("*"):
        if path.is_file():
            n = leaks(path.read_bytes().decode("utf-8", "replace"))
            if n:
                found[str(path)] = n
    return found


KERNEL_MARK = "nbconvo-test: the kernel's stderr"
# Imported by every Python process that `nbconvo run` starts (its own and the kernel's):
# the root logger at DEBUG into a file per process, and a mark on the kernel's stderr.
LOG_EVERYTHING = f"""
import logging, os, sys
logging.basicConfig(
    filename=os.path.join(os.environ["NBCONVO_TEST_LOGS"], f"{{os.getpid()}}.log"),
    level=logging.DEBUG,
    format="%(name)s %(levelname)s %(message)s",
)
if "JPY_PARENT_PID" in os.environ:  # set by jupyter_client for the kernels it starts
    print({KERNEL_MARK!r}, file=sys.stderr, flush=True)
"""


def logging_everything(folder: Path) -> dict[str, str]:
    """The environment that makes each Python process log at DEBUG into ``folder``."""
    hook = folder / "hook"
    hook.mkdir(parents=True)
    (hook / "sitecustomize.py").write_text(LOG_EVERYTHING)
    path = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "NBCONVO_TEST_LOGS": str(folder)}


def run(shell: InteractiveShell, source: str, cell_id: str | None = None) -> Any:
    return shell.run_cell(source, cell_id=cell_id)


def test_no_key_reaches_any_output_or_file(
    shell: InteractiveShell,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    clean_environment(monkeypatch)
    caplog.set_level(logging.DEBUG)  # nbconvo's retry log, httpx's request log
    home = Path(os.environ["NBCONVO_HOME"])
    out = tmp_path / "out"
    out.mkdir()
    texts: list[str] = []
    files_written: list[Path] = []
    for name, fake_class in FAKES.items():
        case = BY_NAME[name]
        with fake_class(api_key=CANARIES[name]) as fake:  # type: ignore[operator]
            for key, value in case.environment(fake).items():
                monkeypatch.setenv(key, value)
            monkeypatch.setenv(case.key_variable, CANARIES[name])
            assert run(shell, f"%convo new {name}").success
            assert run(shell, f"%convo model {case.spec}").success
            assert run(shell, "%%turn\nhello", f"{name}-1").success
            # a retried 503, then the answer
            fake.script.append(case.canned(status=503, body=case.error_body(503, "busy")))
            assert run(shell, "%%turn\nagain", f"{name}-2").success
            # an error that echoes the key back
            fake.script.append(
                case.canned(status=400, body=case.error_body(400, f"bad {CANARIES[name]}"))
            )
            assert not run(shell, "%%turn\nechoed", f"{name}-3").success
            # a stream broken after text: kept as an error turn
            fake.script.append(case.canned(reset_after=2))
            assert not run(shell, "%%turn\nbroken", f"{name}-4").success
            assert nbconvo.current().path[-1].status == "error"
            assert run(shell, "%%turn\nonce more", f"{name}-5").success
            # a cassette recorded through this provider
            cassette = out / f"{name}.jsonl"
            assert run(shell, f"%convo replay {cassette} --mode record").success
            assert run(shell, "%%turn\nrecorded", f"{name}-6").success
            assert run(shell, "%convo replay off").success
            files_written.append(cassette)
            assert stat.S_IMODE(cassette.stat().st_mode) == 0o600
            for fmt in ("md", "json", "openai"):
                target = out / f"{name}.{fmt}.export"
                assert run(shell, f"%convo export {target} --to {fmt}").success
                files_written.append(target)
                assert run(shell, f"%convo export --to {fmt}").success  # shown in the cell
            # the widget's synced state
            try:
                widget = nbconvo.widget()
                state = widget.get_state()
            except Exception:  # the widget module is optional here: nbconvo's own tests cover it
                state = None
            if state is not None:
                texts.append(repr(state))
                counts.add("secrets: widget states searched")
            # the canary really was the key the fake received
            seen = [x.headers for x in fake.seen] if hasattr(fake, "seen") else fake.headers_seen
            assert any(CORE in repr(headers) for headers in seen)
    assert run(shell, f"%convo save {out / 'saved.json'}").success
    files_written.append(out / "saved.json")
    autosaves = list(home.glob("*.nbconvo.db*"))  # the store and its WAL files
    assert any(p.suffix == ".db" for p in autosaves), "no store was written"
    for path in autosaves:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    captured = capsys.readouterr()
    texts += [captured.out, captured.err, caplog.text]
    texts += [repr(o["data"]) for o in shell.display_pub.outputs]
    texts.append(repr(shell.user_ns.get("_")))

    # `nbconvo run` of a small notebook, the keys in the kernel's environment
    with openai_server.FakeOpenAI(api_key=CANARIES["openai"]) as fake:
        nb = new_notebook(
            cells=[
                new_code_cell("%load_ext nbconvo"),
                new_code_cell("%convo model openai:gpt-test"),
                new_code_cell("%%turn\nhello from the notebook"),
                new_code_cell("%%turn\nand again"),
                new_code_cell(f"%convo export {out / 'run.openai.json'} --to openai"),
                new_code_cell("%convo history"),
            ]
        )
        nbformat.write(nb, out / "small.ipynb")
        fake.script.append(openai_server.Canned(status=429, headers={"retry-after": "0"}))
        logs = out / "logs"
        env = {
            **os.environ,
            "OPENAI_BASE_URL": fake.base_url,
            **{BY_NAME[n].key_variable: CANARIES[n] for n in CANARIES},
            **logging_everything(logs),
        }
        command = [sys.executable, "-m", "nbconvo._cli", "run", str(out / "small.ipynb")]
        command += ["--output", str(out / "small.out.ipynb"), "--transcript", str(out / "small.md")]
        command += ["--cassette", str(out / "run.jsonl"), "--mode", "record"]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=240,
            env=env,
            cwd=ROOT,
        )
        assert result.returncode == 0, result.stderr
        assert len(fake.requests) == 3  # the 429, retried, and two turns
    texts += [result.stdout, result.stderr]
    # the kernel's stderr and both processes' DEBUG logs were captured (and are searched
    # below with every file under out/): nbconvo's retry of the 429 is in the kernel's
    assert KERNEL_MARK in result.stderr
    log_texts = [path.read_text(errors="replace") for path in logs.glob("*.log")]
    assert len(log_texts) >= 2, "no log from `nbconvo run` or from its kernel"
    lines = [line for text in log_texts for line in text.splitlines()]
    assert any(line.startswith("nbconvo.") for line in lines), log_texts
    counts.add("secrets: DEBUG logs searched (nbconvo run and its kernel)", len(log_texts))
    assert stat.S_IMODE((out / "run.jsonl").stat().st_mode) == 0o600
    run_autosave = out / "small.out.nbconvo.db"  # `nbconvo run` keeps its store beside the output
    assert stat.S_IMODE(run_autosave.stat().st_mode) == 0o600

    in_texts = sum(leaks(t) for t in texts)
    in_files = {**scan_tree(out), **scan_tree(home)}
    counts.add("secrets: outputs and files searched", len(texts) + sum(1 for _ in out.rglob("*")))
    counts.add("secrets: leaks found", in_texts + sum(in_files.values()))
    assert in_texts == 0, [t for t in texts if leaks(t)]
    assert in_files == {}
    # the search itself works: the canary really was in the environment the kernel got
    assert CANARIES["openai"] in env["OPENAI_API_KEY"]
