"""Fixtures of the browser tests: Debian's Chromium through Playwright and a fresh page.
The servers and the steps in the page are in tests/support/browser.py; a fixture here
starts nothing until a test asks for it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, Page, unavailable
from tests.support.helpers import die_with, free_port, tail


@pytest.fixture(scope="module")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing")
    for module in ("playwright", "jupyterlab"):
        if importlib.util.find_spec(module) is None:
            unavailable(f"{module} is not installed (pip install -e '.[test]')")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium_path: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium_path), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Page]:
    from playwright.sync_api import expect

    expect.set_options(timeout=30_000)  # kernel round trips, on a loaded two-core machine
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    failed_before = request.session.testsfailed
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    try:
        yield Page(page, dialogs)
        if request.session.testsfailed > failed_before:  # what the page showed at the failure
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"failed-{request.node.name}.png"))
    finally:
        context.close()


# -- a llama.cpp server that calls tools ----------------------------------------------------

TOOLS_SERVER_ALIAS = "qwen-tools"


@pytest.fixture(scope="module")
def llama_tools_server(
    local_model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on the local model with the
    ``chatml-function-calling`` chat format (its tool calls come back as ``tool_calls``),
    on 127.0.0.1 only; yields its /v1 URL and stops it after the module."""
    missing = [
        name
        for name in ("uvicorn", "fastapi", "sse_starlette", "starlette_context")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        reason = f"llama-cpp-python[server] is not installed (missing {', '.join(missing)})"
        if os.environ.get("NBCONVO_REQUIRE_MODEL") == "1":  # as tests/conftest.py does
            pytest.fail(f"{reason} (NBCONVO_REQUIRE_MODEL=1)", pytrace=False)
        pytest.skip(reason)
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama-tools-server") / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(local_model_path),
        "--chat_format", "chatml-function-calling",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--model_alias", TOOLS_SERVER_ALIAS,
        "--n_ctx", "4096",
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
