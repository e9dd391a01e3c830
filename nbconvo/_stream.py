"""One provider stream, run to its end: the answer's text reported as it arrives and kept
as it goes, so a caller that catches an interrupt still has the partial text."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from nbconvo._types import ChatRequest, Finish, Notice, Usage
from nbconvo.providers import Provider


@dataclass
class StreamSink:
    """Where a streaming turn reports: text as it arrives, and one-line notices."""

    on_text: Callable[[str], None] = lambda text: None
    on_notice: Callable[[str], None] = lambda text: None


@dataclass
class Collected:
    parts: list[str] = field(default_factory=list)
    usage: Usage | None = None
    finish: Finish | None = None

    @property
    def text(self) -> str:
        return "".join(self.parts)


def collect(provider: Provider, request: ChatRequest, sink: StreamSink, into: Collected) -> None:
    """Run one provider stream, reporting to ``sink`` and filling ``into`` as it goes
    (so a caller that catches an interrupt still has the partial text)."""
    events = provider.stream(request)
    keep, show = into.parts.append, sink.on_text  # once per token: keep the loop lean
    try:
        for event in events:
            if type(event) is str:  # a piece of the answer
                keep(event)
                show(event)
            elif isinstance(event, Usage):
                into.usage = event
            elif isinstance(event, Finish):
                into.finish = event
                if event.notice:
                    sink.on_notice(event.notice)
            elif isinstance(event, Notice):
                sink.on_notice(event.text)
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()
