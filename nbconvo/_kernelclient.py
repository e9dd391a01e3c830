"""A kernel client that sends the cell id with each execute request, as JupyterLab does
(``metadata.cellId``), so headless runs follow the same rerun contract as the browser."""

from __future__ import annotations

from typing import Any

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from traitlets import DottedObjectName, Type


class CellIdKernelClient(AsyncKernelClient):  # type: ignore[misc]
    next_cell_id: str | None = None

    def execute(  # type: ignore[override]
        self,
        code: str,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: dict[str, Any] | None = None,
        allow_stdin: bool | None = None,
        stop_on_error: bool = True,
    ) -> str:
        content = {
            "code": code,
            "silent": silent,
            "store_history": store_history,
            "user_expressions": user_expressions or {},
            "allow_stdin": self.allow_stdin if allow_stdin is None else allow_stdin,
            "stop_on_error": stop_on_error,
        }
        metadata = {"cellId": self.next_cell_id} if self.next_cell_id else {}
        msg = self.session.msg("execute_request", content, metadata=metadata)
        self.shell_channel.send(msg)
        return str(msg["header"]["msg_id"])


class CellIdKernelManager(AsyncKernelManager):  # type: ignore[misc]
    client_class = DottedObjectName("nbconvo._kernelclient.CellIdKernelClient")
    client_factory = Type(CellIdKernelClient, klass=AsyncKernelClient, config=True)
