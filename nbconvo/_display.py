"""Streaming Markdown into a cell's output through one display handle.

Updates are throttled (at most ``max_rate`` a second, whatever the token rate); the
final update shows the whole answer. Every update is sanitized: model text is untrusted.
Without streaming (``--no-stream``, or ``NBCONVO_STREAM=0`` for tools that ignore display
updates, such as nbval) the answer is shown once, when it is complete.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable

from IPython.display import display, update_display

from nbconvo._sanitize import neutralize_html

CURSOR = " ▌"


def _bundle(markdown: str, plain: str) -> dict[str, str]:
    return {"text/markdown": markdown, "text/plain": plain}


def streaming_enabled() -> bool:
    return os.environ.get("NBCONVO_STREAM", "1").lower() not in ("0", "off", "false", "no")


class StreamingMarkdown:
    """One output area that grows as text arrives."""

    def __init__(
        self,
        *,
        max_rate: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
        stream: bool = True,
    ) -> None:
        self.display_id = uuid.uuid4().hex
        self.interval = 1.0 / max_rate
        self.clock = clock
        self.stream = stream
        self.parts: list[str] = []
        self.updates = 0
        self._due = float("-inf") if stream else float("inf")  # when the next update may show
        self._shown = False

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def start(self) -> None:
        if not self.stream:
            return
        display(_bundle("*…*", "…"), raw=True, display_id=self.display_id)
        self._shown = True
        self._due = self.clock() + self.interval

    def feed(self, delta: str) -> None:  # once per token: two attribute reads and a clock
        self.parts.append(delta)
        now = self.clock()
        if now >= self._due:
            self._due = now + self.interval
            self._update(self.text + CURSOR)

    def _update(self, text: str) -> None:
        if not self._shown:  # not streaming: one output, shown once at the end
            display(_bundle(neutralize_html(text), text), raw=True, display_id=self.display_id)
            self._shown = True
            return
        update_display(_bundle(neutralize_html(text), text), raw=True, display_id=self.display_id)
        self.updates += 1

    def finish(self, text: str | None = None) -> None:
        final = self.text if text is None else text
        self._update(final if final else "*(no answer)*")


def show_markdown(markdown: str, plain: str | None = None) -> None:
    display(_bundle(markdown, plain if plain is not None else markdown), raw=True)
