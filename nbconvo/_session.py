"""Named conversations in one kernel, and the current one."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from nbconvo._conversation import Conversation
from nbconvo._errors import ConversationError, UsageError
from nbconvo._tree import ConversationTree

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")


@dataclass
class Session:
    conversations: dict[str, Conversation] = field(default_factory=dict)
    current_name: str = "default"
    archived: list[tuple[str, ConversationTree]] = field(default_factory=list)

    def current(self) -> Conversation:
        if self.current_name not in self.conversations:
            self.conversations[self.current_name] = Conversation(name=self.current_name)
        return self.conversations[self.current_name]

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
        self.conversations[name] = convo
        self.current_name = name
        return convo

    def use(self, name: str) -> Conversation:
        convo = self.get(name)
        self.current_name = name
        return convo

    def reset(self, name: str | None = None) -> Conversation:
        """Start the conversation afresh; the old tree is kept in ``archived``."""
        convo = self.get(name)
        self.archived.append((convo.name, convo.reset_tree()))
        return convo


SESSION = Session()
