"""A real Jupyter front end driven by Debian's Chromium through Playwright: a JupyterLab or
Notebook 7 server on 127.0.0.1 with a token (``jupyter_server``), and the steps a person
takes in it (``open_notebook``, ``run_cell``, ``run_all``). The fixtures that launch the
browser and open a page are in tests/integration/conftest.py.

Without /usr/bin/chromium the browser tests skip, unless NBCONVO_REQUIRE_BROWSER=1 (as
`.ci/run` sets), which makes that a failure. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn

import httpx
import nbformat
import pytest

from tests.support.helpers import die_with, free_port, tail

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TIMEOUT_MS = 90_000

FrontEnd = Literal["lab", "notebook"]
# The Python module that serves each front end (`python -m <module>`).
_MODULES: dict[FrontEnd, str] = {"lab": "jupyterlab", "notebook": "notebook"}
_NAMES: dict[FrontEnd, str] = {"lab": "JupyterLab", "notebook": "Notebook 7"}


def unavailable(reason: str) -> NoReturn:
    """Skip, or fail under NBCONVO_REQUIRE_BROWSER=1: what a missing browser part means."""
    if os.environ.get("NBCONVO_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (NBCONVO_REQUIRE_BROWSER=1)", pytrace=False)
    pytest.skip(f"{reason}: the browser tests need Debian's chromium (apt-get install chromium)")


@dataclass
class Lab:
    """A running Jupyter server (JupyterLab or Notebook 7) and the folder it serves."""

    url: str
    token: str
    root: Path
    front_end: FrontEnd = "lab"

    def notebook(self, name: str, cells: list[str]) -> str:
        """Write a notebook of code cells; returns the address that opens it."""
        notebook = nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_code_cell(source) for source in cells],
            metadata={
                "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
            },
        )
        nbformat.write(notebook, self.root / name)
        if self.front_end == "notebook":
            return f"{self.url}/notebooks/{name}?token={self.token}"
        # ?reset: a fresh workspace, not the tabs an earlier test left open
        return f"{self.url}/lab/tree/{name}?reset&token={self.token}"


def _lab_config(home: Path, front_end: FrontEnd = "lab") -> list[str]:
    """Settings that keep the front end off the network and free of pop-ups, as the
    command-line arguments that apply them."""
    settings = home / "user-settings" / "@jupyterlab"
    for plugin, values in {
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        "notebook-extension/tracker": {"windowingMode": "none"},
    }.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    if front_end == "notebook":
        # Notebook 7 checks no news or updates. Its page reads settings through the
        # JupyterLab server extension's /lab/api/settings: LabApp's directories count.
        return [
            f"--LabApp.user_settings_dir={home / 'user-settings'}",
            f"--LabApp.workspaces_dir={home / 'workspaces'}",
        ]
    config = home / "lab_config.py"
    config.write_text(
        "c.LabApp.news_url = None\n"
        'c.LabApp.check_for_updates_class = "jupyterlab.handlers.announcements.NeverCheckForUpdate"\n'
        'c.LabApp.extension_manager = "readonly"\n'
        f"c.LabApp.user_settings_dir = {str(home / 'user-settings')!r}\n"
        f"c.LabApp.workspaces_dir = {str(home / 'workspaces')!r}\n"
    )
    return [f"--config={config}"]


@contextmanager
def jupyter_server(
    home: Path, env: Mapping[str, str], front_end: FrontEnd = "lab"
) -> Iterator[Lab]:
    """A JupyterLab (or Notebook 7) server on 127.0.0.1 with a token, serving
    ``home/notebooks``; ``env`` is added to its environment (kernels inherit it)."""
    name = _NAMES[front_end]
    root = home / "notebooks"
    root.mkdir()
    port, token = free_port(), secrets.token_hex(16)
    environment = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "IPYTHONDIR": str(home / "ipython"),
        **env,
    }
    environment.pop("NBCONVO_MODEL", None)
    command = [
        sys.executable,
        "-m",
        _MODULES[front_end],
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",  # ServerApp.token, by its current name
        "--ServerApp.allow_root=True",  # CI runs as root in a container
        "--ServerApp.terminals_enabled=False",
        f"--ServerApp.root_dir={root}",
        *_lab_config(home, front_end),
    ]
    log_path = home / f"{front_end}.log"
    parent = os.getpid()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=(lambda: die_with(parent)) if sys.platform == "linux" else None,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode}:\n{tail(log_path)}")
            try:
                status = httpx.get(
                    f"{url}/api/status", headers={"Authorization": f"token {token}"}, timeout=2
                )
                if status.status_code == 200:
                    break
            except httpx.TransportError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                pytest.fail(f"{name} not ready after 90 s:\n{tail(log_path)}")
            time.sleep(0.3)
        yield Lab(url=url, token=token, root=root, front_end=front_end)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass
class Page:
    page: Any
    dialogs: list[str]


# The notebook's kernel is idle. JupyterLab's status bar says "Python 3 (ipykernel) | Idle".
# Notebook 7 has no status bar: its toolbar's execution indicator says idle, but also for a
# moment before the kernel starts, while the toolbar's kernel name still says "No Kernel".
_NOTEBOOK_IDLE = """() => {
  const status = document.querySelector(".jp-Notebook-ExecutionIndicator")?.dataset.status;
  const kernel = document.querySelector(".jp-Toolbar-kernelName")?.textContent.trim();
  return status === "idle" && !!kernel && kernel !== "No Kernel";
}"""


def wait_until_idle(page: Any, front_end: FrontEnd = "lab", timeout: float = TIMEOUT_MS) -> None:
    if front_end == "notebook":
        page.wait_for_function(_NOTEBOOK_IDLE, timeout=timeout)
    else:
        page.locator(".jp-StatusBar-Widget").get_by_text(re.compile(r"\| Idle$")).wait_for(
            timeout=timeout
        )


def open_notebook(page: Any, url: str, front_end: FrontEnd = "lab") -> None:
    page.goto(url)
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    wait_until_idle(page, front_end)


def run_cell(page: Any, index: int) -> Any:
    """Run one cell the way a person does (click, Shift+Enter) and wait for it to finish."""
    from playwright.sync_api import expect

    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    prompt = cell.locator(".jp-InputArea-prompt")
    try:
        for _attempt in range(5):
            cell.locator(".jp-InputArea-editor").click(timeout=30_000)
            page.keyboard.press("Shift+Enter")
            # "[*]:" as soon as the request is sent; a key pressed while the kernel was
            # still connecting is dropped and the prompt stays "[ ]:" — press it again.
            try:
                expect(prompt).not_to_have_text("[ ]:", timeout=5_000)
                break
            except AssertionError:
                continue
        expect(prompt).to_have_text(re.compile(r"^\[\d+\]:$"), timeout=TIMEOUT_MS)
    except Exception:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"failed-cell-{index}.png"), full_page=True)
        raise
    errors = cell.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    assert errors.count() == 0, f"cell {index} failed: {cell.inner_text()}"
    return cell


def run_all(page: Any) -> None:
    """Run ▸ Run All Cells, from the menu bar (the same in JupyterLab and Notebook 7);
    returns once the command is sent, not when the cells have finished."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).first.click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
