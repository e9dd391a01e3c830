"""A kernel killed with SIGKILL mid-stream loses no finished turn: a new kernel loads the
autosave with every turn, branch and the head intact."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from pathlib import Path

import pytest

from nbconvo._store import journal_path, read_document
from tests.conftest import FAKE_KEY
from tests.fakes.openai_server import Canned, FakeOpenAI
from tests.kernel_client import NotebookKernel

pytestmark = pytest.mark.kernel


def test_sigkill_while_streaming_keeps_every_finished_turn(tmp_path: Path) -> None:
    autosave = tmp_path / "notebook.nbconvo.json"
    with FakeOpenAI(api_key=FAKE_KEY) as fake:
        env = {"OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": fake.base_url,
               "NBCONVO_MODEL": "openai:gpt-test", "NBCONVO_AUTOSAVE": str(autosave)}
        kernel = NotebookKernel(env=env)
        try:
            assert kernel.run("%load_ext nbconvo").status == "ok"
            for i, prompt in enumerate(["one", "two", "three"], 1):
                assert kernel.run(f"%%turn\n{prompt}", f"c{i}").status == "ok"
            assert kernel.run("%convo fork 1 --name alt", "f").status == "ok"
            assert kernel.run("%%turn\nalt two", "c4").status == "ok"
            before = kernel.state()
            fake.script.append(Canned(pieces=[f"w{i} " for i in range(400)], delay=0.02))
            streaming = threading.Event()

            def on_output(kind: str, content: dict) -> None:  # type: ignore[type-arg]
                if kind == "update_display_data":
                    streaming.set()

            msg_id = kernel.send("%%turn\na long answer", "c5")
            worker = threading.Thread(target=lambda: _drain(kernel, msg_id, on_output), daemon=True)
            worker.start()
            assert streaming.wait(30)
            kernel.km.provisioner.process.send_signal(signal.SIGKILL)
            kernel.km.provisioner.process.wait(10)
        finally:
            kernel.close()
        json.loads(autosave.read_text())  # not corrupt: the snapshot parses,
        journal = journal_path(autosave).read_bytes()
        for line in journal.split(b"\n")[:-1]:  # and so does every whole journal line
            json.loads(line)
        saved = read_document(autosave)
        assert len(saved["conversations"][0]["tree"]["turns"]) == 4

        fresh = NotebookKernel(env={**env, "NBCONVO_AUTOSAVE": str(tmp_path / "new.json")})
        try:
            assert fresh.run("%load_ext nbconvo").status == "ok"
            assert fresh.run(f"%convo load {autosave}").status == "ok"
            after = fresh.state()
            assert after == before
            assert after["branch"] == "alt" and after["turns"] == 4
            assert fresh.run("%%turn\nafter the crash", "c6").status == "ok"
        finally:
            fresh.close()


def _drain(kernel: NotebookKernel, msg_id: str, on_output) -> None:  # type: ignore[no-untyped-def]
    with contextlib.suppress(Exception):  # the kernel was killed: no reply will come
        kernel.collect(msg_id, 30, on_output)
