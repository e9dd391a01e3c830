"""Fixtures of the browser tests: Debian's Chromium through Playwright and a fresh page.
The servers and the steps in the page are in tests/support/browser.py; a fixture here
starts nothing until a test asks for it."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, Page, unavailable


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
    """llama-cpp-python's server with the ``chatml-function-calling`` chat format (its
    tool calls come back as ``tool_calls``); yields its /v1 URL, stops after the module."""
    from tests.conftest import serving_llama

    log_path = tmp_path_factory.mktemp("llama-tools-server") / "server.log"
    options = ("--chat_format", "chatml-function-calling", "--n_ctx", "4096")
    with serving_llama(local_model_path, log_path, TOOLS_SERVER_ALIAS, *options) as url:
        yield url
