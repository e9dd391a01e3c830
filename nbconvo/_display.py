"""Showing text in a cell's output: streamed answers and nbconvo's own listings.

Everything shown is ``text/html`` rendered in the kernel by ``_html`` (safe whatever the
text holds) plus ``text/plain`` with the Markdown source, for nbval, terminals and plain
viewers; never ``text/markdown``, which a front end would parse and could run.

A streamed answer is throttled to at most ``max_rate`` updates a second, whatever the
token rate, and after each update the next waits at least ``1 / share`` times what it
cost (its thread CPU): the display never takes more than ``share`` of a core from the
kernel, however fast the model. Each update costs O(new text): blocks that can no
longer change are rendered once and kept in the output they were first shown in; when
those outputs hold ``hold`` bytes of HTML they are left as they are and a new output
takes the open tail, so what one update sends does not grow with the answer (a long
code block or table moves on in pieces of its own). When the turn ends the cell is left
with one output holding the whole answer. Without streaming (``--no-stream``, or
``NBCONVO_STREAM=0`` for tools that ignore display updates, such as nbval) the answer
is shown once, when it is complete.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from IPython import get_ipython
from IPython.display import clear_output, display, update_display

from nbconvo._html import MarkdownStream, render_blocks, render_markdown, wrap

CURSOR = " ▌"
WAITING = wrap("<p><em>…</em></p>")


def _bundle(html: str, plain: str) -> dict[str, str]:
    return {"text/html": html, "text/plain": plain}


class StreamingMarkdown:
    """The answer's place in the cell, growing as text arrives."""

    def __init__(
        self,
        *,
        max_rate: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
        stream: bool = True,
        hold: int = 512,
        share: float = 0.03,
        cpu: Callable[[], float] = time.thread_time,
    ) -> None:
        self.interval = 1.0 / max_rate
        self.clock = clock
        self.share = share
        self.cpu = cpu
        self.stream = stream
        self.hold = hold
        self.updates = 0
        self.outputs = 0  # outputs shown while streaming
        self._markdown = MarkdownStream()
        self._display_id = ""
        self._held_html: list[str] = []  # sealed blocks shown in the current output
        self._held_source: list[str] = []
        self._held_size = 0
        self._due = float("-inf") if stream else float("inf")  # when the next update may show
        self.thinking = ""  # a reasoning model's summary: shown collapsed above the answer

    @property
    def text(self) -> str:
        return self._markdown.text

    def start(self) -> None:
        if not self.stream:
            return
        self._new_output(WAITING, "…")
        self._due = self.clock() + self.interval

    def _new_output(self, html: str, plain: str) -> None:
        self._display_id = uuid.uuid4().hex
        _send(_bundle(html, plain), self._display_id, new=True)
        self.outputs += 1

    def feed(self, delta: str) -> None:  # once per token: an append and a clock read
        self._markdown.feed(delta)
        now = self.clock()
        if now >= self._due:
            started = self.cpu()
            self._update()
            self._due = now + max(self.interval, (self.cpu() - started) / self.share)

    def think(self, delta: str) -> None:
        """A piece of the model's thinking: shown (throttled, like the answer) until the
        answer's text begins; the finished answer keeps it collapsed above."""
        first = not self.thinking
        self.thinking += delta
        if self._markdown.text or not self.stream:
            return
        now = self.clock()
        if first or now >= self._due:  # "Thinking" shows at once, then as the answer does
            if not self._display_id:
                self._new_output(WAITING, "…")
            html = thinking_html(self.thinking, open_=True)
            _send(_bundle(html, "(thinking…)"), self._display_id)
            self._due = now + self.interval

    def _update(self) -> None:
        if not self._display_id:  # fed without start(): the output appears now
            self._new_output(WAITING, "…")
        step = self._markdown.step(suffix=CURSOR)
        for html, source in (
            (step.sealed_html, step.sealed_source),
            (step.moved_html, step.moved_source),
        ):
            if html:
                self._held_html.append(html)
                self._held_source.append(source)
                self._held_size += len(html)
        if self._held_size >= self.hold or step.moved_html:
            # The current output keeps its sealed blocks for good; the tail moves on.
            held = "".join(self._held_html)
            _send(_bundle(wrap(held), "".join(self._held_source)), self._display_id)
            self._held_html, self._held_source, self._held_size = [], [], 0
            self._new_output(wrap(step.open_html), step.open_source)
        else:
            html = wrap("".join(self._held_html) + step.open_html)
            plain = "".join(self._held_source) + step.open_source
            _send(_bundle(html, plain), self._display_id)
        self.updates += 1

    def discard(self) -> None:
        """Take back the waiting mark: the turn failed before any text (the error says why)."""
        if self.outputs:
            clear_output()
            self.outputs = 0
            self._display_id = ""

    def finish(self, text: str | None = None) -> None:
        """Show the whole answer (``text`` when it is not what was streamed) as one output."""
        streamed = self._markdown.text
        if text is None or text == streamed:
            text, html = streamed, wrap(self._markdown.final())
        else:
            html = render_markdown(text)
        if not text:
            text, html = "(no answer)", render_markdown("*(no answer)*")
        if self.thinking:
            html = thinking_html(self.thinking) + html
        bundle = _bundle(html, text)
        if self.outputs == 1:
            _send(bundle, self._display_id)
            return
        if self.outputs > 1:
            # Several outputs carried the stream; the cell holds nothing else of this
            # turn yet (the footer follows), so one cleared area takes the answer.
            clear_output(wait=True)
        self._new_output(html, text)


def thinking_html(text: str, *, open_: bool = False) -> str:
    """The model's thinking, collapsed under "Thinking" (open while it streams)."""
    state = " open" if open_ else ""
    return (
        f'<details class="nbconvo-thinking"{state}><summary>Thinking</summary>'
        f"{wrap(render_blocks(text))}</details>"
    )


def _send(bundle: dict[str, str], display_id: str, *, new: bool = False) -> None:
    """``display``/``update_display`` of the answer without the flush ipykernel makes
    before every display message (stdout and stderr, each a round trip to its IO thread:
    as costly as rendering an update). Nothing of the turn prints while it streams, so no
    output can be misplaced. Sent the way ipywidgets' comms send their messages; outside
    a kernel (a terminal, tests), IPython's own way."""
    kernel = getattr(get_ipython(), "kernel", None)
    session, socket = getattr(kernel, "session", None), getattr(kernel, "iopub_socket", None)
    if kernel is None or session is None or socket is None:
        if new:
            display(bundle, raw=True, display_id=display_id)
        else:
            update_display(bundle, raw=True, display_id=display_id)
        return
    content = {"data": bundle, "metadata": {}, "transient": {"display_id": display_id}}
    kind = "display_data" if new else "update_display_data"
    session.send(socket, kind, content, parent=kernel.get_parent(), ident=b"display_data")


def show_markdown(markdown: str, plain: str | None = None) -> None:
    """nbconvo's own Markdown (listings, notices: model text inside is escaped or
    rendered) shown through the same safe renderer as answers."""
    display(_bundle(render_markdown(markdown), plain if plain is not None else markdown), raw=True)


def show_html(html: str, plain: str, display_id: str | None = None) -> None:
    """HTML nbconvo built itself, every outside text in it escaped or rendered; with a
    ``display_id``, an output ``update_html`` can change later (in whichever cell)."""
    if display_id is None:
        display(_bundle(html, plain), raw=True)
    else:
        display(_bundle(html, plain), raw=True, display_id=display_id)


def update_html(html: str, plain: str, display_id: str) -> None:
    update_display(_bundle(html, plain), raw=True, display_id=display_id)
