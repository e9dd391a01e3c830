"""A real Jupyter kernel driven the way JupyterLab drives it: execute requests whose
metadata carries the cell id (``cellId``)."""

from __future__ import annotations

import json
import os
import queue
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.manager import KernelManager


@dataclass
class Execution:
    status: str
    outputs: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""

    def text(self) -> str:
        parts = []
        for output in self.outputs:
            data = output.get("data") or {}
            parts.append(data.get("text/plain") or output.get("text", ""))
        return "\n".join(parts)


class NotebookKernel:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.km = KernelManager(kernel_name="python3")
        kernel_env = {**os.environ, **(env or {})}
        self.km.start_kernel(env=kernel_env, extra_arguments=["--HistoryManager.enabled=False"])
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    @classmethod
    def attach(cls, connection_file: str) -> NotebookKernel:
        """A client of a kernel someone else started (a Jupyter server), as JupyterLab
        is one; closing it leaves the kernel to its owner."""
        from jupyter_client.blocking import BlockingKernelClient

        kernel = cls.__new__(cls)
        kernel.km = None  # type: ignore[assignment]
        kernel.kc = BlockingKernelClient()
        kernel.kc.load_connection_file(connection_file)
        kernel.kc.start_channels()
        kernel.kc.wait_for_ready(timeout=60)
        return kernel

    def close(self) -> None:
        self.kc.stop_channels()
        if self.km is not None:
            self.km.shutdown_kernel(now=True)

    def send(self, code: str, cell_id: str | None) -> str:
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        metadata = {"cellId": cell_id} if cell_id else {}
        msg = self.kc.session.msg("execute_request", content, metadata=metadata)
        self.kc.shell_channel.send(msg)
        return str(msg["header"]["msg_id"])

    def collect(self, msg_id: str, timeout: float = 120.0, on_output: Any = None) -> Execution:
        """Outputs as a notebook keeps them (update_display_data replaces by display id)."""
        deadline = time.monotonic() + timeout
        result = Execution(status="?")
        by_id: dict[str, dict[str, Any]] = {}
        clear_on_next = False  # clear_output(wait=True): cleared when the next output comes
        while time.monotonic() < deadline:
            try:
                msg = self.kc.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "clear_output":
                clear_on_next = bool(content.get("wait"))
                if not clear_on_next:
                    result.outputs.clear()
                    by_id.clear()
            if kind in ("display_data", "stream", "execute_result", "error"):
                if clear_on_next:
                    result.outputs.clear()
                    by_id.clear()
                    clear_on_next = False
                output = {"type": kind, **content}
                display_id = (content.get("transient") or {}).get("display_id")
                if display_id:
                    by_id[display_id] = output
                result.outputs.append(output)
                if kind == "error":
                    result.error = "\n".join(content.get("traceback", []))
            elif kind == "update_display_data":
                display_id = content["transient"]["display_id"]
                if display_id in by_id:
                    by_id[display_id]["data"] = content["data"]
            if on_output is not None:
                on_output(kind, content)
            if kind == "status" and content["execution_state"] == "idle":
                break
        reply = self.kc.get_shell_msg(timeout=timeout)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=timeout)
        result.status = reply["content"]["status"]
        return result

    def run(self, code: str, cell_id: str | None = None, timeout: float = 120.0) -> Execution:
        return self.collect(self.send(code, cell_id), timeout)

    def state(self, convo: str | None = None) -> dict[str, Any]:
        """The conversation as JSON, read from inside the kernel."""
        code = (
            "import json as _j, nbconvo as _n\n"
            f"_c = _n._session.SESSION.get({convo!r})\n"
            "print('STATE' + _j.dumps({'branch': _c.branch, 'branches': sorted(_c.branches),"
            " 'path': [[_c.tree.label(t.id), t.prompt, t.answer, t.status] for t in _c.path],"
            " 'turns': len(_c.turns)}))"
        )
        out = self.run(code)
        for output in out.outputs:
            text = output.get("text", "")
            if text.startswith("STATE"):
                return dict(json.loads(text[5:]))
        raise AssertionError(f"no state printed: {out}")


def python_kernel_available() -> bool:
    return sys.executable is not None
