"""A restart never loses a conversation, through real kernels with JupyterLab's cell ids.

Kernel A works on tour.ipynb (turns, a fork, a turn on the fork) and ends, cleanly or by
SIGKILL in the middle of a streamed answer. Kernel B starts on the same notebook and
does what users do next, *before* restoring: sets the model and a system prompt, sends
turns. Then `%convo load` brings back every finished turn, branch and head of A, and Run
All continues as on a live kernel. Two kernels on one notebook write at once. The store
follows a notebook renamed through a real Jupyter server."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.support.fakes.openai_server import Canned, FakeOpenAI
from tests.support.helpers import FAKE_KEY
from tests.support.kernel_client import NotebookKernel

pytestmark = pytest.mark.kernel

TOUR = [("c1", "%%turn\none"), ("c2", "%%turn\ntwo"), ("c3", "%%turn\nthree"),
        ("f1", "%convo fork 1 --name alt"), ("c4", "%%turn\nalt two")]


def notebook_env(fake: FakeOpenAI, notebook: Path) -> dict[str, str]:
    """A kernel as JupyterLab starts one for ``notebook``: no NBCONVO_HOME, so the store
    goes beside the notebook."""
    return {"OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": fake.base_url,
            "JPY_SESSION_NAME": str(notebook), "NBCONVO_HOME": "", "NBCONVO_AUTOSAVE": ""}


def run_ok(kernel: NotebookKernel, code: str, cell_id: str | None = None) -> str:
    out = kernel.run(code, cell_id)
    assert out.status == "ok", (code, out.error, out.text())
    return out.text()


def full_state(kernel: NotebookKernel) -> dict[str, Any]:
    """Every turn (label, prompt, answer, status), branch pointer and the head."""
    code = (
        "import json as _j, nbconvo as _n\n"
        "_c = _n.current()\n"
        "print('STATE' + _j.dumps({'branch': _c.branch, 'branches': _c.branches,"
        " 'turns': [[t.id, t.parent, t.prompt, t.answer, t.status, t.cell_id] for t in _c.turns],"
        " 'path': [_c.tree.label(t.id) for t in _c.path]}))"
    )
    for output in kernel.run(code).outputs:
        if output.get("text", "").startswith("STATE"):
            return dict(json.loads(output["text"][5:]))
    raise AssertionError("no state printed")


def after_path_ids(state: dict[str, Any]) -> set[int]:
    """The ids of the turns on the branch shown as current (its tip and ancestors)."""
    by_id = {t[0]: t for t in state["turns"]}
    tip, ids = state["branches"][state["branch"]], set()
    while tip is not None:
        ids.add(tip)
        tip = by_id[tip][1]
    return ids


def start_a(fake: FakeOpenAI, notebook: Path) -> NotebookKernel:
    kernel = NotebookKernel(env=notebook_env(fake, notebook))
    run_ok(kernel, "%load_ext nbconvo")
    run_ok(kernel, "%convo model openai:gpt-test", "m")
    for cell_id, code in TOUR:
        run_ok(kernel, code, cell_id)
    return kernel


def restart_then_restore(fake: FakeOpenAI, notebook: Path, expected: dict[str, Any]) -> None:
    """Kernel B: the load notice, settings and new turns first, then `%convo load`; then
    Run All of the tour continues as on a live kernel."""
    kernel = NotebookKernel(env=notebook_env(fake, notebook))
    try:
        printed = run_ok(kernel, "%load_ext nbconvo")
        assert printed.startswith("nbconvo: earlier session, "), printed
        assert f"{len(expected['turns'])} turns, 2 branches" in printed
        assert str(notebook.with_name("tour.nbconvo.db")) in printed
        run_ok(kernel, "%convo model openai:gpt-test", "m")
        run_ok(kernel, "%convo system Start over, differently.", "s")
        run_ok(kernel, "%%turn\nsomething new first", "n1")
        run_ok(kernel, "%%turn\nand more", "n2")
        restored = run_ok(kernel, "%convo load")
        assert "restored 1 conversation(s) from" in restored
        assert full_state(kernel) == expected
        # Run All, as after a restore: each %%turn cell makes a new version of its turn
        # on the branch it was made on; the fork cell re-creates `alt` from the new path
        # and keeps the old one as alt@1.
        for cell_id, code in TOUR:
            run_ok(kernel, code, cell_id)
        after = full_state(kernel)
        assert after["branch"] == "alt" and "alt@1" in after["branches"]
        assert [t[2] for t in after["turns"] if t[0] in after_path_ids(after)] == ["one", "alt two"]
        assert len(after["turns"]) == len(expected["turns"]) + 4
        old = {tuple(t) for t in expected["turns"]}
        assert old <= {tuple(t) for t in after["turns"]}  # every earlier turn still there
        # B's own session is kept in the store too, beside A's.
        listing = run_ok(kernel, "%convo sessions")
        assert "this kernel" in listing
    finally:
        kernel.close()


def test_a_clean_restart_then_load_brings_everything_back(tmp_path: Path) -> None:
    notebook = tmp_path / "tour.ipynb"
    with FakeOpenAI(api_key=FAKE_KEY) as fake:
        kernel = start_a(fake, notebook)
        expected = full_state(kernel)
        kernel.km.shutdown_kernel(now=False)  # a clean restart
        kernel.kc.stop_channels()
        # the store was closed on the way out: its WAL folded back, nothing left beside it
        assert notebook.with_name("tour.nbconvo.db").exists()
        assert not notebook.with_name("tour.nbconvo.db-wal").exists()
        restart_then_restore(fake, notebook, expected)


def test_sigkill_mid_stream_then_load_brings_every_finished_turn_back(tmp_path: Path) -> None:
    notebook = tmp_path / "tour.ipynb"
    with FakeOpenAI(api_key=FAKE_KEY) as fake:
        kernel = start_a(fake, notebook)
        expected = full_state(kernel)
        fake.script.append(Canned(pieces=[f"w{i} " for i in range(400)], delay=0.02))
        streaming = threading.Event()

        def on_output(kind: str, content: dict[str, Any]) -> None:
            if kind == "update_display_data":
                streaming.set()

        msg_id = kernel.send("%%turn\na long answer", "c5")
        drain = threading.Thread(target=_drain, args=(kernel, msg_id, on_output), daemon=True)
        drain.start()
        assert streaming.wait(60)
        kernel.km.provisioner.process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        kernel.km.provisioner.process.wait(10)  # type: ignore[union-attr]
        kernel.close()
        store = notebook.with_name("tour.nbconvo.db")
        db = sqlite3.connect(store)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        db.close()
        restart_then_restore(fake, notebook, expected)


def test_two_kernels_on_one_notebook_write_at_once(tmp_path: Path) -> None:
    """Two tabs on one notebook: each kernel sends 200 turns while the other does."""
    notebook = tmp_path / "shared.ipynb"
    loop = (
        "import nbconvo\n"
        "ip = get_ipython()\n"
        "for i in range(200):\n"
        "    ip.run_cell_magic('turn', '--no-stream', 'TAG ' + str(i))\n"
        "assert nbconvo._session.SESSION.autosave_error is None, nbconvo._session.SESSION.autosave_error\n"
        "print('DONE', len(nbconvo.current().turns))"
    )
    with FakeOpenAI(api_key=FAKE_KEY) as fake:
        kernels = [NotebookKernel(env=notebook_env(fake, notebook)) for _ in range(2)]
        try:
            for kernel in kernels:
                run_ok(kernel, "%load_ext nbconvo")
                run_ok(kernel, "%convo model openai:gpt-test")
            ids = [k.send(loop.replace("TAG", tag), None) for k, tag in zip(kernels, "ab", strict=True)]
            results = [k.collect(msg_id, timeout=600) for k, msg_id in zip(kernels, ids, strict=True)]
            for result in results:
                assert result.status == "ok", result.error
                assert "DONE 200" in result.text()
        finally:
            for kernel in kernels:
                kernel.close()
    db = sqlite3.connect(notebook.with_name("shared.nbconvo.db"))
    counts = db.execute(
        "SELECT substr(prompt, 1, 1), count(*) FROM turns GROUP BY 1"
    ).fetchall()
    sessions = db.execute("SELECT count(*) FROM sessions").fetchone()
    db.close()
    assert sorted(counts) == [("a", 200), ("b", 200)] and sessions == (2,)


def _drain(kernel: NotebookKernel, msg_id: str, on_output: Any) -> None:
    with contextlib.suppress(Exception):  # the kernel was killed: no reply will come
        kernel.collect(msg_id, 60, on_output)


def test_the_store_follows_a_notebook_renamed_in_the_jupyter_server(tmp_path: Path) -> None:
    """JupyterLab's rename is a PATCH of the server's session path; the kernel is not
    told. Its next save asks the server (on loopback, as this kernel's session) and
    writes to tour.nbconvo.db, bringing Untitled's earlier sessions along."""
    import os
    import secrets
    import subprocess
    import sys
    import time

    import httpx

    from tests.support.helpers import die_with, free_port, tail

    root = tmp_path / "notebooks"
    root.mkdir()
    port, token = free_port(), secrets.token_hex(16)
    with FakeOpenAI(api_key=FAKE_KEY) as fake:
        env = {**os.environ, "OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": fake.base_url,
               "NBCONVO_HOME": "", "NBCONVO_AUTOSAVE": "",
               "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
               "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
               "JUPYTER_DATA_DIR": str(tmp_path / "data")}
        env.pop("NBCONVO_MODEL", None)
        log_path = tmp_path / "server.log"
        parent = os.getpid()
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "jupyter_server", "--no-browser",
                 "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
                 "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
                 "--ServerApp.allow_root=True", f"--ServerApp.root_dir={root}"],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=lambda: die_with(parent),
            )
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}/api",
                           headers={"Authorization": f"token {token}"}, timeout=30)
        kernel: NotebookKernel | None = None
        try:
            deadline = time.monotonic() + 90
            while True:
                assert process.poll() is None, tail(log_path)
                with contextlib.suppress(httpx.TransportError):
                    if api.get("/status").status_code == 200:
                        break
                assert time.monotonic() < deadline, tail(log_path)
                time.sleep(0.3)
            (root / "Untitled.ipynb").write_text(json.dumps(
                {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
            session = api.post("/sessions", json={
                "path": "Untitled.ipynb", "name": "Untitled.ipynb", "type": "notebook",
                "kernel": {"name": "python3"}}).json()
            connection = tmp_path / "runtime" / f"kernel-{session['kernel']['id']}.json"
            kernel = NotebookKernel.attach(str(connection))
            run_ok(kernel, "%load_ext nbconvo")
            run_ok(kernel, "%convo model openai:gpt-test", "m")
            run_ok(kernel, "%%turn\nbefore the rename", "c1")
            assert (root / "Untitled.nbconvo.db").exists()
            # Renamed in JupyterLab: the file moves, the server's session path changes.
            (root / "Untitled.ipynb").rename(root / "tour.ipynb")
            api.patch(f"/sessions/{session['id']}", json={"path": "tour.ipynb"}).raise_for_status()
            time.sleep(2.5)  # the kernel trusts the server's answer for 2 s
            run_ok(kernel, "%%turn\nafter the rename", "c2")
            listing = run_ok(kernel, "%convo sessions")
            assert str(root / "tour.nbconvo.db") in listing
        finally:
            if kernel is not None:
                kernel.close()
            api.close()
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    db = sqlite3.connect(root / "tour.nbconvo.db")
    prompts = [r[0] for r in db.execute("SELECT prompt FROM turns ORDER BY id")]
    notebook = db.execute("SELECT notebook FROM sessions").fetchall()
    db.close()
    assert prompts == ["before the rename", "after the rename"]
    assert notebook == [(str(root / "tour.ipynb"),)]
