"""One provider stream, run to its end: the answer's text reported as it arrives and kept
as it goes, so a caller that catches an interrupt still has the partial text."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from nbconvo._parts import Part, ReasoningPart, TextPart, ToolCallPart, ToolResultPart
from nbconvo._types import ChatRequest, Finish, Notice, ProviderEvent, ThinkingDelta, Usage
from nbconvo.providers import Provider


@dataclass
class StreamSink:
    """Where a streaming turn reports: text as it arrives, one-line notices, and each tool
    call (before it runs) and its result."""

    on_text: Callable[[str], None] = lambda text: None
    on_notice: Callable[[str], None] = lambda text: None
    on_tool_call: Callable[[ToolCallPart], None] = lambda call: None
    on_tool_result: Callable[[ToolCallPart, ToolResultPart], None] = lambda call, result: None
    on_thinking: Callable[[str], None] = lambda text: None  # a reasoning model's summary


@dataclass
class Collected:
    """A turn's answer as it arrives. ``parts`` and ``calls`` are the step streaming now
    (the text pieces, the tool calls); ``earlier`` holds the steps before it (text, calls
    and their results) when the model called tools."""

    parts: list[str] = field(default_factory=list)
    calls: list[ToolCallPart] = field(default_factory=list)
    reasoning: list[ReasoningPart] = field(default_factory=list)
    earlier: list[Part] = field(default_factory=list)
    spent: list[Usage] = field(default_factory=list)  # the usage of the steps before this
    step_usage: Usage | None = None  # this step's
    usage: Usage | None = None  # the last step's: what the context holds after the turn
    finish: Finish | None = None
    steps: int = 0
    first_token_s: float = 0.0  # from sending the first request to its first text or call

    @property
    def text(self) -> str:
        before = "".join(p.text for p in self.earlier if isinstance(p, TextPart))
        return before + "".join(self.parts)

    def step_parts(self) -> list[Part]:
        text = "".join(self.parts)
        step: list[Part] = list(self.reasoning)
        if text:
            step.append(TextPart(text))
        return step + list(self.calls)

    def answer_parts(self) -> list[Part]:
        """Every part so far: the earlier steps, then this one's text and calls."""
        return self.earlier + self.step_parts()

    def next_step(self, results: list[ToolResultPart]) -> None:
        """Keep this step (its calls answered by ``results``) and start the next."""
        self.earlier = self.answer_parts() + list(results)
        if self.step_usage is not None:
            self.spent.append(self.step_usage)
        self.step_usage = None
        self.parts, self.calls, self.reasoning, self.finish = [], [], [], None
        self.steps += 1

    def billed(self) -> dict[str, int]:
        """Tokens of every request so far, summed (empty if no provider said)."""
        usages = [*self.spent, *([self.step_usage] if self.step_usage is not None else [])]
        if not usages:
            return {}
        total = {
            "input": sum(u.input_tokens for u in usages),
            "cached": sum(u.cached_input_tokens for u in usages),
            "written": sum(u.cache_write_tokens for u in usages),
            "output": sum(u.output_tokens for u in usages),
            "reasoning": sum(u.reasoning_tokens for u in usages),
        }
        return {k: v for k, v in total.items() if v or k in ("input", "output")}


def collect(provider: Provider, request: ChatRequest, sink: StreamSink, into: Collected) -> None:
    """Run one provider stream, reporting to ``sink`` and filling ``into`` as it goes
    (so a caller that catches an interrupt still has the partial text)."""
    started = time.monotonic()
    events = provider.stream(request)
    try:
        iterator = iter(events)
        for event in iterator:  # until the first piece of the answer: timed
            _take(event, sink, into)
            if type(event) is str or isinstance(event, ToolCallPart):
                if not into.first_token_s:
                    into.first_token_s = time.monotonic() - started
                break
        keep, show = into.parts.append, sink.on_text  # once per token: keep the loop lean
        for event in iterator:
            if type(event) is str:  # a piece of the answer
                keep(event)
                show(event)
            else:
                _take(event, sink, into)
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


def _take(event: ProviderEvent, sink: StreamSink, into: Collected) -> None:
    if type(event) is str:
        into.parts.append(event)
        sink.on_text(event)
    elif isinstance(event, ToolCallPart):
        into.calls.append(event)
        sink.on_tool_call(event)
    elif isinstance(event, ThinkingDelta):
        sink.on_thinking(event.text)
    elif isinstance(event, ReasoningPart):
        into.reasoning.append(event)
    elif isinstance(event, Usage):
        into.usage = into.step_usage = event
    elif isinstance(event, Finish):
        into.finish = event
        if event.notice:
            sink.on_notice(event.notice)
    elif isinstance(event, Notice):
        sink.on_notice(event.text)


__all__ = ["Collected", "StreamSink", "collect"]
