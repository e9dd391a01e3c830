"""The documentation notebooks run under nbval against their committed cassettes: the
outputs a reader sees in notebooks/ are what nbconvo produces, with no model and no key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ["quickstart", "forking", "long-conversations", "providers", "data", "tools"]
pytestmark = pytest.mark.kernel


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_replays_under_nbval(name: str, tmp_path: Path) -> None:
    cassette = ROOT / "notebooks" / "cassettes" / f"{name}.jsonl"
    assert cassette.is_file(), "missing cassette: run `make record-notebooks`"
    before = cassette.read_bytes()
    env = {
        **os.environ,
        "NBCONVO_CASSETTE": str(cassette),
        "NBCONVO_CASSETTE_MODE": "replay",
        "NBCONVO_MODEL": "llama:qwen2.5-coder-1.5b",
        "NBCONVO_NOTEBOOK": f"{name}.ipynb",
        "NBCONVO_STREAM": "0",  # nbval ignores display updates: show each answer once
        "NBCONVO_AUTOSAVE": "off",
        "NBCONVO_CACHE": str(tmp_path),  # no model here: every answer must come from the cassette
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
    }
    env.pop("OPENAI_API_KEY", None)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval", "-p", "no:cacheprovider", "-q",
         "--nbval-sanitize-with", "notebooks/nbval-sanitize.cfg",
         "-o", "addopts=", "-o", "filterwarnings=", f"notebooks/{name}.ipynb"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert " passed" in out.stdout
    assert cassette.read_bytes() == before
