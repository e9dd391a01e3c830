"""Which notebook this kernel serves, followed across renames.

JupyterLab tells a kernel its notebook's path once, at start (``JPY_SESSION_NAME``, seen
as ``__session__``). A rename later only changes the Jupyter server's session record, so
the path is read from there: the server's ``/api/sessions`` on loopback, found through
the runtime folder's ``jpserver-*.json`` files and matched by this kernel's id. The
answer is kept for a few seconds, so a busy cell asks at most once per interval.
``nbconvo run`` names the notebook in ``NBCONVO_NOTEBOOK`` (the notebook setting).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

REFRESH_S = 2.0  # how long an answer from the server is trusted
_ASK_TIMEOUT_S = 1.0


class NotebookLocator:
    """The notebook's current path (or its name, where only that is known)."""

    def __init__(self, user_ns: dict[str, Any] | None = None, named: str | None = None) -> None:
        self.user_ns = user_ns if user_ns is not None else {}
        self.named = named  # the notebook setting (NBCONVO_NOTEBOOK): it wins
        self._asked_at = -REFRESH_S
        self._from_server: str | None = None
        self._servers_seen = True  # until a look finds no server for this kernel

    def path(self) -> str | None:
        if self.named:
            return self.named
        now = time.monotonic()
        if self._servers_seen and now - self._asked_at >= REFRESH_S:
            self._asked_at = now
            found = _ask_jupyter_server()
            if found is None:
                self._servers_seen = _kernel_id() is not None and bool(_server_files())
            self._from_server = found or self._from_server
        if self._from_server:
            return self._from_server
        started = self.user_ns.get("__session__") or os.environ.get("JPY_SESSION_NAME")
        return str(started) if started else None


def _kernel_id() -> str | None:
    """This kernel's id, from its connection file's name (``kernel-ID.json``)."""
    if "ipykernel" not in sys.modules:
        return None
    try:
        from ipykernel.kernelapp import IPKernelApp
    except ImportError:
        return None
    if not IPKernelApp.initialized():
        return None
    name = Path(IPKernelApp.instance().connection_file or "").name
    if not (name.startswith("kernel-") and name.endswith(".json")):
        return None
    return name[len("kernel-") : -len(".json")]


def _server_files() -> list[Path]:
    try:
        from jupyter_core.paths import jupyter_runtime_dir
    except ImportError:
        return []
    folder = Path(jupyter_runtime_dir())
    return sorted(folder.glob("jpserver-*.json"), key=lambda p: -p.stat().st_mtime)


def _on_loopback(url: str) -> str:
    """The server's base URL by way of 127.0.0.1: it runs on this machine, and a server
    listening on every interface (``--ip=0.0.0.0``) answers there too."""
    parts = urllib.parse.urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urllib.parse.urlunsplit((parts.scheme or "http", f"127.0.0.1{port}", path, "", ""))


def _ask_jupyter_server() -> str | None:
    """The notebook path the Jupyter server records for this kernel's session, if any."""
    kernel = _kernel_id()
    if kernel is None:
        return None
    for info_file in _server_files():
        try:
            info = json.loads(info_file.read_text(encoding="utf-8"))
            url = _on_loopback(str(info["url"])) + "api/sessions"
            request = urllib.request.Request(
                url, headers={"Authorization": f"token {info.get('token', '')}"}
            )
            with urllib.request.urlopen(request, timeout=_ASK_TIMEOUT_S) as reply:
                sessions = json.loads(reply.read())
        except (OSError, ValueError, KeyError, TypeError):
            continue
        for record in sessions if isinstance(sessions, list) else []:
            if (record.get("kernel") or {}).get("id") == kernel and record.get("path"):
                root = info.get("root_dir") or info.get("notebook_dir") or ""
                return os.path.join(root, str(record["path"])) if root else str(record["path"])
    return None
