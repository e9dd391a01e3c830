"""Provider-neutral values: messages, requests and the events a provider yields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypedDict

Role = Literal["system", "user", "assistant"]


class Message(TypedDict):
    role: Role
    content: str


@dataclass(frozen=True)
class ChatRequest:
    """Everything a provider needs for one call. ``system`` already includes the goal."""

    provider: str
    model: str
    messages: tuple[Message, ...]
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    seed: int | None = None

    def all_messages(self) -> list[Message]:
        """System first (when set), then the conversation: the OpenAI-style list."""
        head: list[Message] = [{"role": "system", "content": self.system}] if self.system else []
        return head + list(self.messages)


@dataclass(slots=True)
class TextDelta:
    """A piece of the answer. One is built per streamed token, so it is a slotted
    dataclass rather than a frozen one (whose ``__init__`` costs three times as much);
    nothing mutates it after the provider yields it."""

    text: str
    kind: Literal["text"] = "text"


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int
    kind: Literal["usage"] = "usage"


@dataclass(frozen=True)
class Finish:
    """The model stopped. ``reason`` is normalized: stop, length, content_filter, refusal, other."""

    reason: str
    notice: str | None = None
    kind: Literal["finish"] = "finish"


@dataclass(frozen=True)
class Notice:
    """A one-line note for the user (a dropped parameter, a provider limitation)."""

    text: str
    kind: Literal["notice"] = "notice"


ProviderEvent = TextDelta | Usage | Finish | Notice


@dataclass
class TokenUsage:
    input_tokens: int = 0
    output_tokens: int = 0
    exact: bool = False
    extra: dict[str, int] = field(default_factory=dict)
