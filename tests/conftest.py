"""Shared fixtures: a real IPython shell with nbconvo loaded, and loopback fake servers."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
from IPython.core.interactiveshell import InteractiveShell

from tests.support.fakes.openai_server import FakeOpenAI
from tests.support.helpers import (  # noqa: F401  (used by the fixtures below)
    FAKE_KEY,
    NotebookOutputs,
    die_with,
    free_port,
    one_line_error,
    tail,
    turn,
)


@pytest.fixture(autouse=True, scope="session")
def _autosave_outside_the_checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Kernels and subprocesses a test starts without an autosave setting of its own
    inherit this, so no test writes a session file into the working tree."""
    if "NBCONVO_HOME" in os.environ or "NBCONVO_AUTOSAVE" in os.environ:
        yield
        return
    os.environ["NBCONVO_HOME"] = str(tmp_path_factory.mktemp("nbconvo-home-session"))
    try:
        yield
    finally:
        os.environ.pop("NBCONVO_HOME", None)


@pytest.fixture
def shell(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[InteractiveShell]:
    import nbconvo
    from nbconvo._session import SESSION
    from nbconvo._settings import Settings

    monkeypatch.setenv("NBCONVO_HOME", str(tmp_path_factory.mktemp("nbconvo-home")))
    monkeypatch.delenv("NBCONVO_AUTOSAVE", raising=False)
    monkeypatch.delenv("NBCONVO_CASSETTE", raising=False)

    ip = InteractiveShell.instance()
    publisher = NotebookOutputs(shell=ip)
    saved = ip.display_pub
    ip.display_pub = publisher
    SESSION.conversations.clear()
    SESSION.current_name = "default"
    SESSION.archived.clear()
    SESSION._writer = None  # each test is a new kernel: a new session in the store
    ip.run_line_magic("load_ext", "nbconvo")
    names = set(ip.user_ns)
    try:
        yield ip
    finally:
        for name in set(ip.user_ns) - names:  # a test's variables (its tools) stay its own
            del ip.user_ns[name]
        SESSION.approved_tools.clear()
        nbconvo.unload_ipython_extension(ip)
        ip.extension_manager.loaded.discard("nbconvo")
        ip.config.pop("ConvoMagics", None)  # a test's `%config` is not the next test's
        SESSION.settings = Settings()
        ip.display_pub = saved
        SESSION.conversations.clear()
        SESSION.set_cassette(None)
        if SESSION._writer is not None and SESSION._writer.store is not None:
            SESSION._writer.store.close()
        SESSION._writer = None


@pytest.fixture
def fake_openai(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=FAKE_KEY) as server:
        monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.delenv("NBCONVO_MODEL", raising=False)
        yield server


@pytest.fixture
def convo_shell(shell: InteractiveShell, fake_openai: FakeOpenAI) -> InteractiveShell:
    """A shell whose conversation talks to the loopback OpenAI fake."""
    assert shell.run_cell("%convo model openai:gpt-test").success
    return shell


# -- the local model and a llama.cpp server on it ------------------------------------------

LOCAL_ALIAS = "qwen2.5-coder-0.5b"
SERVER_MODEL_ALIAS = "qwen-local"


def _unavailable(reason: str) -> NoReturn:
    """Skip, unless NBCONVO_REQUIRE_MODEL=1 (as `make test` sets) makes it a failure."""
    if os.environ.get("NBCONVO_REQUIRE_MODEL") == "1":
        pytest.fail(f"{reason} (NBCONVO_REQUIRE_MODEL=1)", pytrace=False)
    pytest.skip(f"{reason}; `make fetch-model` provides it")


@pytest.fixture(scope="session")
def local_model_path() -> Path:
    """The 0.5B GGUF, fetched into the nbconvo cache on first use (a no-op once there)."""
    if importlib.util.find_spec("llama_cpp") is None:
        _unavailable("llama-cpp-python is not installed")
    from nbconvo._localmodel import fetch

    try:
        return fetch(LOCAL_ALIAS, quiet=True)
    except Exception as exc:
        _unavailable(f"could not fetch the local model {LOCAL_ALIAS}: {exc}")


@contextlib.contextmanager
def serving_llama(model: Path, log_path: Path, alias: str, *options: str) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on ``model``, on 127.0.0.1 only, with
    ``options`` (e.g. a chat format); yields its /v1 URL once it answers, stops it after."""
    missing = [
        name
        for name in ("uvicorn", "fastapi", "sse_starlette", "starlette_context")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        _unavailable(f"llama-cpp-python[server] is not installed (missing {', '.join(missing)})")
    port = free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model),
        "--host", "127.0.0.1", "--port", str(port), "--model_alias", alias, *options,
    ]  # fmt: skip
    parent = os.getpid()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=(lambda: die_with(parent)) if sys.platform == "linux" else None,
        )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"llama server exited with {process.returncode}:\n{tail(log_path)}",
                    pytrace=False,
                )
            try:
                if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                pytest.fail(f"llama server not ready after 60 s:\n{tail(log_path)}", pytrace=False)
            time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def llama_server(local_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A llama-cpp-python OpenAI-compatible server on the local model (its GGUF chat
    template); yields its /v1 URL."""
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    with serving_llama(local_model_path, log_path, SERVER_MODEL_ALIAS, "--n_ctx", "8192") as url:
        yield url


# -- reliability counts (tests/support/reliability_counts.py) ---------------------------------------


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from tests.support.reliability_counts import COUNTS

    if COUNTS:
        terminalreporter.section("nbconvo reliability")
        for name, n in sorted(COUNTS.items()):
            terminalreporter.write_line(f"{name}: {n}")
