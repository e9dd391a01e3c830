"""The one error hierarchy of nbconvo.

Every error a user can cause or meet is an ``NbconvoError``: it renders in IPython as
one line that says what went wrong and how to fix it, never a traceback.

    NbconvoError
    ├── UsageError            bad magic arguments, unknown subcommand, empty cell
    ├── ConversationError     fork/switch targets out of range, unknown branch or turn id
    ├── ConfigurationError    unknown provider prefix, no model chosen, missing key
    ├── ProviderError         the provider failed (HTTP status, bad stream); may carry partial text
    │   └── StreamInterrupted the stream broke after text arrived: the partial answer is kept
    ├── TurnInterrupted       the user interrupted a turn: the partial answer is kept
    ├── ContextWindowExceeded the next request would not fit the model's window
    ├── PersistenceError      a save or load failed; nothing was changed
    └── ReplayMiss            replay mode and the cassette has no answer for a request
"""

from __future__ import annotations


class NbconvoError(Exception):
    """Base of every nbconvo error. Renders as one line in IPython."""

    def __str__(self) -> str:
        return " ".join(str(self.args[0]).split()) if self.args else type(self).__name__

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of printing a traceback.
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


class UsageError(NbconvoError):
    """A magic was called with bad arguments."""


class ConversationError(NbconvoError):
    """An operation on the conversation tree named something that does not exist."""


class ConfigurationError(NbconvoError):
    """No usable model, unknown provider, or a missing key."""


class ProviderError(NbconvoError):
    """The provider failed. ``partial`` is the answer text received before the failure."""

    def __init__(self, message: str, *, partial: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.partial = partial
        self.status = status


class StreamInterrupted(ProviderError):
    """The stream broke after some text arrived."""


class TurnInterrupted(NbconvoError):
    """The user interrupted a turn while it streamed; the partial answer was kept."""


class ContextWindowExceeded(NbconvoError):
    """The next request would not fit in the model's context window."""


class PersistenceError(NbconvoError):
    """Saving or loading failed; nothing was changed."""


class ReplayMiss(NbconvoError):
    """Replay mode found no recorded answer for a request."""
