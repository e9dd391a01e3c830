"""Running the tool calls a model makes: consent, arguments, a time limit, and a result
the model can read, whatever the function did.

Every outcome is a ``ToolResultPart``: a value becomes text (JSON when it is JSON, a
notebook value's rendering or its repr otherwise, cut at a limit); a function that
raises, runs too long, is unknown, gets arguments that do not fit, or is not allowed
gives the model one line saying so, and the user the same line as a notice. Only an
interrupt (Ctrl-C, the stop button) ends the turn; its call is answered "interrupted",
so the kept turn is consistent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from nbconvo._parts import ToolCallPart, ToolResultPart
from nbconvo._tools import Tool, ToolInputError, describe_call

# How the user answers "run add(a=2, b=3)?": y runs it, n does not, a runs it and every
# later call of that function in this kernel.
PROMPT_KEYS = "[y]es / [n]o / [a]lways"


class ToolTimeout(BaseException):
    """Raised inside a tool that ran past its time (a BaseException, so that the tool's
    own ``except Exception`` cannot swallow it, as with KeyboardInterrupt)."""


@dataclass
class Toolbox:
    """What one turn may call and how: the tools by name, who approves a call, limits.

    ``approved`` holds the names that run unasked (``--approve add``, an "a" answer); it
    is the session's set, so an "always" lasts the kernel's life. ``ask`` is the prompt
    (``input``); ``render`` turns a value that is not JSON into text (the notebook-value
    renderer), returning the text and a few words about the value."""

    tools: Mapping[str, Tool]
    approve_all: bool = False
    approved: set[str] = field(default_factory=set)
    ask: Callable[[str], str] | None = None
    render: Callable[[Any], tuple[str, str]] | None = None
    timeout: float = 60.0
    max_steps: int = 8
    result_chars: int = 20_000
    on_notice: Callable[[str], None] = lambda text: None

    def run(self, call: ToolCallPart) -> ToolResultPart:
        tool = self.tools.get(call.name)
        if tool is None:
            names = ", ".join(sorted(self.tools)) or "none"
            return self._error(
                call, f"there is no tool named {call.name!r} (the tools are: {names})"
            )
        try:
            args, kwargs = tool.arguments(call.arguments)
        except ToolInputError as error:
            return self._error(call, f"{call.name}: bad arguments: {error}")
        shown = describe_call(call)
        if not self._allowed(call.name, shown):
            return self._error(call, f"the user did not allow {shown}", notice=False)
        started = time.perf_counter()
        try:
            value = call_with_timeout(tool.func, args, kwargs, self.timeout)
        except ToolTimeout:
            return self._error(
                call,
                f"{call.name} did not finish within {self.timeout:g} s and was stopped "
                "(raise the limit with `%config ConvoMagics.tool_timeout = SECONDS`)",
                seconds=time.perf_counter() - started,
            )
        except KeyboardInterrupt:
            raise
        except Exception as error:
            return self._error(
                call,
                f"{call.name} raised {type(error).__name__}: {one_line(str(error))}",
                seconds=time.perf_counter() - started,
            )
        seconds = time.perf_counter() - started
        return ToolResultPart(
            call.call_id, self._text(call.name, value), name=call.name, seconds=seconds
        )

    def _allowed(self, name: str, shown: str) -> bool:
        if self.approve_all or name in self.approved:
            return True
        if self.ask is None:
            return False
        try:
            answer = self.ask(f"nbconvo: the model wants to run {shown} — {PROMPT_KEYS}? ")
        except (EOFError, NotImplementedError, OSError, RuntimeError):
            # No one to ask (no stdin: `nbconvo run` without --allow-tools, a script).
            self.on_notice(
                f"{shown} was not run: no one could approve it here (pass --approve {name}"
                " or --approve all; `nbconvo run` takes --allow-tools)"
            )
            return False
        word = answer.strip().lower()
        if word in ("a", "always"):
            self.approved.add(name)
            return True
        return word in ("y", "yes")

    def _error(
        self, call: ToolCallPart, text: str, *, seconds: float = 0.0, notice: bool = True
    ) -> ToolResultPart:
        if notice:
            self.on_notice(text)
        return ToolResultPart(call.call_id, text, is_error=True, name=call.name, seconds=seconds)

    def _text(self, name: str, value: Any) -> str:
        text = self._as_text(name, value)
        if len(text) > self.result_chars:
            self.on_notice(
                f"{name} returned {len(text):,} characters: the model got the first "
                f"{self.result_chars:,} (`%config ConvoMagics.tool_result_chars` sets it)"
            )
            text = (
                text[: self.result_chars]
                + f"\n… [cut: {len(text):,} characters in all, the rest was not sent]"
            )
        return text

    def _as_text(self, name: str, value: Any) -> str:
        if isinstance(value, str):
            return value
        try:
            return json.dumps(_plain(value), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            pass
        if self.render is not None:
            text, about = self.render(value)
            self.on_notice(f"{name} returned {about}, not JSON: the model got it as text")
            return text
        kind = type(value).__name__
        article = "an" if kind[:1].lower() in "aeiou" else "a"
        self.on_notice(f"{name} returned {article} {kind}, not JSON: the model got its repr")
        return repr(value)


def _plain(value: Any) -> Any:
    """Dataclasses and pydantic models as the JSON they stand for; else the value."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        return dump(mode="json")
    if isinstance(value, tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value


def one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def call_with_timeout(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float
) -> Any:
    """``func(*args, **kwargs)``, stopped with ``ToolTimeout`` after ``timeout`` seconds
    (0: no limit). On the main thread (a kernel runs cells there) a timer signal raises
    inside the function, as Ctrl-C would; elsewhere the call runs in a thread that is
    left behind when it overruns."""
    if timeout <= 0:
        return func(*args, **kwargs)
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGALRM"):
        with _alarm(timeout):
            return func(*args, **kwargs)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = func(*args, **kwargs)
        except BaseException as error:  # handed to the caller's thread below
            box["error"] = error

    worker = threading.Thread(target=target, name="nbconvo-tool", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise ToolTimeout
    if "error" in box:
        raise box["error"]
    return box.get("value")


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    def expired(signum: int, frame: Any) -> None:
        raise ToolTimeout

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
