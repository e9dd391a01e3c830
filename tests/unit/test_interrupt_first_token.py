"""An interrupt before the first token (issue #14): the message says what happened (no
answer was kept), the empty turn is no exchange of the budget and is not history."""

from __future__ import annotations

import signal
import threading
import time

import pytest
from IPython.core.interactiveshell import InteractiveShell

import nbconvo
from tests.support.fakes.openai_server import Canned, FakeOpenAI
from tests.support.helpers import one_line_error


def test_an_interrupt_before_any_text_keeps_no_answer_and_says_so(
    convo_shell: InteractiveShell, fake_openai: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    assert convo_shell.run_cell("%convo budget 2").success
    assert convo_shell.run_cell("%%turn\nfirst", cell_id="c1").success
    fake_openai.script.append(Canned(pieces=["too late"], delay=30.0))  # the first token waits
    main = threading.get_ident()
    sent = len(fake_openai.requests)
    stop = threading.Event()

    def ctrl_c_once_the_request_is_in() -> None:  # not before: deterministic on a busy machine
        while not stop.is_set() and len(fake_openai.requests) == sent:
            time.sleep(0.01)
        if not stop.is_set():
            signal.pthread_kill(main, signal.SIGINT)

    # SIGINT raises KeyboardInterrupt while the cell runs, as in ipykernel (an earlier test
    # in this process may have left another handler installed)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    presser = threading.Thread(target=ctrl_c_once_the_request_is_in, daemon=True)
    presser.start()
    try:
        text = one_line_error(convo_shell, "%%turn\nsecond", capsys)
    finally:
        stop.set()
        presser.join()
        signal.signal(signal.SIGINT, previous)
    assert "interrupted before any answer: turn 2 keeps the prompt with no answer" in text
    assert "partial answer" not in text
    convo = nbconvo.current()
    assert [t.status for t in convo.path] == ["ok", "interrupted"]
    assert convo.exchanges() == 1  # the empty turn is no exchange
    assert convo_shell.run_cell("%%turn\nthird", cell_id="c3").success
    history = [m["content"] for m in fake_openai.requests[-1]["messages"]]
    assert history == ["first", "echo #1: first", "third"]  # nor history
    footer = convo_shell.display_pub.plain()[-1]
    assert "exchange 2 of 2" in footer
