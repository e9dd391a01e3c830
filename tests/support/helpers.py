"""Helpers the tests share: a notebook-like display publisher, running a `%%turn` cell as
JupyterLab would, the one-line error check, and what subprocess-starting tests need
(a free loopback port, a child that dies with its parent, the tail of a log)."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell

FAKE_KEY = "sk-test-fake-key-000000000000"


class NotebookOutputs(DisplayPublisher):
    """Keeps outputs as a notebook front end does: an update replaces the output that
    carries the same display id, and ``clear_output`` clears the running cell's outputs
    (with ``wait``, when its next output comes)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.outputs: list[dict[str, Any]] = []
        self.updated: list[str] = []  # each update's text/plain, in order
        self.clears = 0
        self._cell_start = 0  # index of the running cell's first output
        self._clear_on_next = False
        if self.shell is not None:
            self.shell.events.register("pre_run_cell", self._new_cell)

    def _new_cell(self, *args: Any) -> None:
        self._cell_start = len(self.outputs)
        self._clear_on_next = False

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False):  # type: ignore[no-untyped-def]
        display_id = (transient or {}).get("display_id")
        if update:
            self.updated.append(data.get("text/plain", ""))
            for output in self.outputs:
                if output["display_id"] == display_id:
                    output["data"] = data
            return
        if self._clear_on_next:
            del self.outputs[self._cell_start :]
            self._clear_on_next = False
        self.outputs.append({"data": data, "display_id": display_id})

    def clear_output(self, wait: bool = False) -> None:
        self.clears += 1
        if wait:
            self._clear_on_next = True
        else:
            del self.outputs[self._cell_start :]

    @property
    def updates(self) -> int:
        """How many updates the outputs received."""
        return len(self.updated)

    def plain(self) -> list[str]:
        """Each output's text/plain: the Markdown source of an answer or listing."""
        return [o["data"].get("text/plain", "") for o in self.outputs]

    def html(self) -> list[str]:
        return [o["data"].get("text/html", "") for o in self.outputs]

    def reset(self) -> None:
        self.outputs.clear()
        self.updated.clear()
        self.clears = self._cell_start = 0


@contextmanager
def notebook_outputs() -> Iterator[NotebookOutputs]:
    """The shell's display output kept as a notebook keeps it, for the block's duration."""
    ip = InteractiveShell.instance()
    saved, ip.display_pub = ip.display_pub, NotebookOutputs(shell=ip)
    try:
        yield ip.display_pub
    finally:
        ip.display_pub = saved


def turn(shell: InteractiveShell, text: str, cell_id: str) -> None:
    """Run one %%turn cell with a cell id, as JupyterLab would, and require success."""
    result = shell.run_cell(f"%%turn\n{text}", cell_id=cell_id)
    assert result.success, result.error_in_exec


def one_line_error(shell: InteractiveShell, source: str, capsys: pytest.CaptureFixture[str]) -> str:
    """Run a cell that must fail, and return its error: exactly one line, no traceback."""
    capsys.readouterr()
    assert not shell.run_cell(source).success
    text = capsys.readouterr().out.strip()
    assert len(text.splitlines()) == 1, text
    return text


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def die_with(parent: int) -> None:
    """Runs in the child before exec: ask Linux to SIGTERM it when the tests' process dies,
    so a crashed or killed pytest run leaves no server holding a port and 500 MB."""
    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def kernel_started_with(monkeypatch: pytest.MonkeyPatch, **variables: str | None) -> None:
    """As if the kernel had started with these environment variables (None: unset): set
    them and have the session read the environment again, as loading nbconvo does (it
    reads it once, at load)."""
    from nbconvo._session import SESSION
    from nbconvo._settings import read_environment

    for name, value in variables.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    monkeypatch.setattr(SESSION, "settings", read_environment()[0])
