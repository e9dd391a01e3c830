"""Named conversations in one kernel, and the current one."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbconvo._conversation import Conversation
from nbconvo._errors import ConversationError, NbconvoError, UsageError
from nbconvo._tree import ConversationTree

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")


@dataclass
class Session:
    conversations: dict[str, Conversation] = field(default_factory=dict)
    current_name: str = "default"
    archived: list[tuple[str, ConversationTree]] = field(default_factory=list)
    cassette: Any = None  # a _cassette.Cassette shared by every conversation
    autosave: Callable[[], Path | None] | None = None  # where to autosave, when enabled
    autosave_error: str | None = None
    _saver: Any = field(default=None, repr=False)  # a _store.Autosaver once autosave ran

    def current(self) -> Conversation:
        if self.current_name not in self.conversations:
            self._adopt(Conversation(name=self.current_name))
        return self.conversations[self.current_name]

    def _adopt(self, convo: Conversation) -> Conversation:
        convo.cassette = self.cassette
        if self._autosave_listener not in convo.listeners:
            convo.listeners.append(self._autosave_listener)
        self.conversations[convo.name] = convo
        return convo

    def _autosave_listener(self, kind: str, payload: dict[str, Any]) -> None:
        self.save_now()

    def save_now(self) -> Path | None:
        """Autosave what changed (a snapshot, then journal lines: see ``_store.Autosaver``);
        a failure is remembered and shown, never raised into the turn that triggered it
        (the turn is safe in memory)."""
        target = self.autosave() if self.autosave else None
        if target is None:
            return None
        from nbconvo._store import Autosaver

        if self._saver is None:
            self._saver = Autosaver()
        try:
            self._saver.save(self, target)
        except NbconvoError as error:
            self.autosave_error = f"autosave failed: {error}"
            return None
        self.autosave_error = None
        return target

    def save_to(self, path: Path) -> None:
        """Save the whole session to ``path`` (``%convo save``). At the autosave path this
        is a fresh snapshot that its journal continues."""
        from nbconvo._store import save_session

        if self._saver is not None and self._saver.path == path:
            self._saver.snapshot(self, path)
        else:
            save_session(self, path)

    def set_cassette(self, cassette: Any) -> None:
        self.cassette = cassette
        for convo in self.conversations.values():
            convo.cassette = cassette

    def load(self, path: Path) -> None:
        from nbconvo._store import load_session

        load_session(self, path)
        for convo in self.conversations.values():
            self._adopt(convo)

    def get(self, name: str | None) -> Conversation:
        if name is None:
            return self.current()
        if name not in self.conversations:
            known = ", ".join(sorted(self.conversations)) or "none yet"
            raise ConversationError(
                f"no conversation named {name!r} (known: {known}): "
                f"create it with `%convo new {name}`"
            )
        return self.conversations[name]

    def new(self, name: str) -> Conversation:
        if not _NAME.match(name):
            raise UsageError(f"bad conversation name {name!r}: use letters, digits, '-', '_', '.'")
        if name in self.conversations:
            raise ConversationError(
                f"conversation {name!r} exists already: switch to it with `%convo use {name}`"
            )
        settings = self.current() if self.conversations else None
        convo = Conversation(name=name)
        if settings is not None:  # a new conversation starts with the current model settings
            convo.model, convo.base_url = settings.model, settings.base_url
        self._adopt(convo)
        self.current_name = name
        self.save_now()
        return convo

    def use(self, name: str) -> Conversation:
        convo = self.get(name)
        self.current_name = name
        return convo

    def reset(self, name: str | None = None) -> Conversation:
        """Start the conversation afresh; the old tree is kept in ``archived``."""
        convo = self.get(name)
        self.archived.append((convo.name, convo.reset_tree()))
        self.save_now()
        return convo


SESSION = Session()
