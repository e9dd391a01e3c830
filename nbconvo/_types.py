"""Provider-neutral values: messages, requests and the events a provider yields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, TypedDict

from nbconvo._parts import Content, ReasoningPart, ToolCallPart

# "tool": the results of the calls the assistant message before it made (its content is
# ``ToolResultPart``s); an assistant message's parts may hold ``ToolCallPart``s.
Role = Literal["system", "user", "assistant", "tool"]


class Message(TypedDict):
    role: Role
    content: Content  # plain text, or parts when a turn carries more (see _parts)


@dataclass(frozen=True)
class ToolSpec:
    """A function the model may call: its name, what it does, and a JSON schema of its
    arguments (an ``object`` schema, self-contained: no ``$ref``)."""

    name: str
    description: str
    parameters: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


@dataclass(frozen=True)
class ResponseSchema:
    """A structured answer: the JSON schema the answer must match, and its type's name."""

    name: str
    schema: dict[str, Any]
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "schema": self.schema}


Effort = Literal["low", "medium", "high"]
EFFORTS: tuple[Effort, ...] = ("low", "medium", "high")


@dataclass(frozen=True)
class CachePolicy:
    """Prompt caching asked of a provider for one request. ``key`` names the conversation
    tree (OpenAI's ``prompt_cache_key``: requests with one key reach the same cache);
    ``ttl`` is how long Anthropic keeps what this request writes ("5m", or "1h" when the
    user's pauses between turns are longer)."""

    key: str
    ttl: Literal["5m", "1h"] = "5m"


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
    tools: tuple[ToolSpec, ...] = ()
    schema: ResponseSchema | None = None  # the answer is JSON matching it
    effort: Effort | None = None  # a reasoning model's effort; None: the model's default
    cache: CachePolicy | None = None  # None: ask for no prompt caching

    def all_messages(self) -> list[Message]:
        """System first (when set), then the conversation: the OpenAI-style list."""
        head: list[Message] = [{"role": "system", "content": self.system}] if self.system else []
        return head + list(self.messages)


# A piece of the answer is a plain ``str``: it is the one event per streamed token, and
# a wrapper object around it cost a tenth of a microsecond a token (≈1% of a stream's CPU).
TextDelta: TypeAlias = str


@dataclass(frozen=True)
class Usage:
    """Tokens of one request. ``input_tokens`` counts the whole prompt; of those,
    ``cached_input_tokens`` were read from a cache (a provider's prompt cache, or the
    local model's evaluated prefix) and ``cache_write_tokens`` were written to one.
    ``reasoning_tokens`` are output tokens a reasoning model spent thinking."""

    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    kind: Literal["usage"] = "usage"


@dataclass(frozen=True)
class Finish:
    """The model stopped. ``reason`` is normalized: stop, length, tool_calls (it waits for
    the results of the calls it made), content_filter, refusal, other."""

    reason: str
    notice: str | None = None
    kind: Literal["finish"] = "finish"


@dataclass(frozen=True)
class Notice:
    """A one-line note for the user (a dropped parameter, a provider limitation)."""

    text: str
    kind: Literal["notice"] = "notice"


@dataclass(frozen=True)
class ThinkingDelta:
    """A piece of a reasoning model's readable thinking (its summary), as it streams; the
    whole of it arrives after as a ``ReasoningPart`` (with what must be sent back)."""

    text: str
    kind: Literal["thinking"] = "thinking"


# A provider yields each tool call once it is complete (its arguments whole), as a part;
# and each block of reasoning once complete, as a part (``ThinkingDelta`` while it streams).
ProviderEvent = TextDelta | Usage | Finish | Notice | ToolCallPart | ThinkingDelta | ReasoningPart


@dataclass
class TokenUsage:
    input_tokens: int = 0
    output_tokens: int = 0
    exact: bool = False
    extra: dict[str, int] = field(default_factory=dict)
