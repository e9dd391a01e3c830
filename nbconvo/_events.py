"""What a conversation announces when it changes: typed events, one class per change.

Listeners (the session's autosave, each widget) receive these; they run inside the
conversation's methods, so they must not fail the change they hear about."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class TurnAdded:
    turn: int
    kept_branch: str | None = None  # a rerun kept the old path under this name
    fork: str | None = None  # the turn was sent with --fork: the branch it made


@dataclass(frozen=True)
class Forked:
    branch: str


@dataclass(frozen=True)
class Switched:
    branch: str


@dataclass(frozen=True)
class Undone:
    turn: int


@dataclass(frozen=True)
class Compacted:
    branch: str


@dataclass(frozen=True)
class TreeReset:
    pass


@dataclass(frozen=True)
class SettingChanged:
    name: str


ConversationEvent = TurnAdded | Forked | Switched | Undone | Compacted | TreeReset | SettingChanged
Listener = Callable[[ConversationEvent], None]
