"""The parts a prompt or an answer is made of: text, images, notebook values, tool calls
and results, reasoning.

Frozen values, serializable to JSON (an image's bytes as base64). A message whose parts
are all text travels as a plain string, as before parts existed: the same requests,
the same cassette keys. Providers translate the kinds they support and refuse the
others, before sending, in one line naming the part and the provider.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from nbconvo._errors import UsageError


@dataclass(frozen=True)
class TextPart:
    text: str
    kind: Literal["text"] = "text"


class _Bytes:
    """What a part made of bytes offers: base64, a data URL, and a repr without them."""

    data: bytes
    media_type: str
    name: str | None

    def base64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    def data_url(self) -> str:
        return f"data:{self.media_type};base64,{self.base64()}"

    def __repr__(self) -> str:  # never dump the bytes into a repr
        kind = type(self).__name__
        return f"{kind}({self.media_type}, {len(self.data):,} bytes, name={self.name!r})"


@dataclass(frozen=True, repr=False)
class ImagePart(_Bytes):
    """An image's bytes and media type (``image/png``, ``image/jpeg``, …)."""

    data: bytes
    media_type: str
    name: str | None = None
    placeholder: bool = False  # it filled ``{name}`` in the prompt's text
    kind: Literal["image"] = "image"


@dataclass(frozen=True, repr=False)
class DocumentPart(_Bytes):
    """A document's bytes (a PDF) for the providers that read documents."""

    data: bytes
    media_type: str = "application/pdf"
    name: str | None = None
    pages: int = 0  # counted when attached: the meter's estimate goes by pages
    kind: Literal["document"] = "document"


@dataclass(frozen=True)
class DataPart:
    """A notebook value rendered for the model (``text``), with the expression it came
    from and a few words about it (``summary``: "pandas DataFrame, 1,000 × 12"): what
    was sent is kept, whatever the variable holds later. It goes to every provider as
    text, set apart from the words around it by blank lines."""

    expression: str
    text: str
    media_type: str = "text/markdown"
    summary: str = ""
    placeholder: bool = True  # it filled ``{expression}`` (an attached file did not)
    kind: Literal["data"] = "data"


@dataclass(frozen=True)
class ToolCallPart:
    """The model asked to call a tool. ``call_id`` pairs it with its result (providers
    without ids get one made up); ``arguments`` is JSON text, as the model wrote it."""

    call_id: str
    name: str
    arguments: str
    signature: str | None = None  # a provider's opaque token sent back with the call (Gemini's)
    kind: Literal["tool_call"] = "tool_call"


@dataclass(frozen=True)
class ToolResultPart:
    """What a tool call gave back, as the text the model reads (an error's one line when
    ``is_error``); ``seconds`` it took to run (0 for a call that did not run)."""

    call_id: str
    content: str
    is_error: bool = False
    name: str = ""
    seconds: float = 0.0
    kind: Literal["tool_result"] = "tool_result"


@dataclass(frozen=True)
class ReasoningPart:
    """A reasoning model's thinking: readable text, or a provider's opaque blob that must
    be sent back as it came."""

    text: str = ""
    opaque: str | None = None
    provider: str | None = None
    kind: Literal["reasoning"] = "reasoning"


Part: TypeAlias = (
    TextPart | ImagePart | DocumentPart | DataPart | ToolCallPart | ToolResultPart | ReasoningPart
)
Parts: TypeAlias = tuple[Part, ...]
Content: TypeAlias = str | Parts  # a message's content: plain text, or parts

_KINDS: dict[str, type[Any]] = {
    "text": TextPart,
    "image": ImagePart,
    "document": DocumentPart,
    "data": DataPart,
    "tool_call": ToolCallPart,
    "tool_result": ToolResultPart,
    "reasoning": ReasoningPart,
}
DESCRIPTIONS = {
    "text": "text",
    "image": "an image",
    "document": "a PDF",
    "data": "a notebook value",
    "tool_call": "a tool call",
    "tool_result": "a tool result",
    "reasoning": "reasoning",
}


def text_of(parts: Iterable[Part]) -> str:
    """The text a person reads: text parts joined, a value or an image that filled a
    placeholder as that ``{expression}`` (other kinds have their own views)."""
    out = []
    for p in parts:
        if isinstance(p, TextPart):
            out.append(p.text)
        elif isinstance(p, DataPart) and p.placeholder:
            out.append("{" + p.expression + "}")
        elif isinstance(p, ImagePart) and p.placeholder and p.name:
            out.append("{" + p.name + "}")
    return "".join(out)


def sendable(parts: Parts) -> Content:
    """A prompt as it goes to a provider: each data part as its text between blank
    lines, text merged; a plain string when only text remains."""
    if not any(isinstance(p, DataPart) for p in parts):
        return content_of(parts)
    out: list[Part] = []
    after_data = False
    for part in parts:
        if not isinstance(part, TextPart | DataPart):
            out.append(part)
            after_data = False
            continue
        previous = out[-1] if out else None
        last = previous.text if isinstance(previous, TextPart) else ""
        if isinstance(previous, TextPart):
            out.pop()
        if isinstance(part, DataPart):
            last = last.rstrip(" \t")
            text = (f"{last}\n\n" if last else "") + f"{part.text}\n\n"
        else:
            text = last + (part.text.lstrip(" \t") if after_data else part.text)
        out.append(TextPart(text))
        after_data = isinstance(part, DataPart)
    if after_data and isinstance(out[-1], TextPart):
        out[-1] = TextPart(out[-1].text.rstrip("\n"))
    return content_of(tuple(out))


def content_text(content: Content) -> str:
    """A message's text as sent (its text parts), for counting and one-line mentions."""
    if isinstance(content, str):
        return content
    return "".join(p.text for p in content if isinstance(p, TextPart))


def content_of(parts: Parts) -> Content:
    """A message's content: a plain string when every part is text, else the parts."""
    if all(isinstance(p, TextPart) for p in parts):
        return text_of(parts)
    return parts


def as_parts(content: Content) -> Parts:
    return (TextPart(content),) if isinstance(content, str) else content


def part_to_json(part: Part) -> dict[str, Any]:
    if isinstance(part, DocumentPart):
        return {
            "kind": "document",
            "media_type": part.media_type,
            "data": part.base64(),
            "name": part.name,
            "pages": part.pages,
        }
    if isinstance(part, ImagePart):
        out: dict[str, Any] = {"kind": "image", "media_type": part.media_type}
        out["data"] = part.base64()
        if part.name is not None:
            out["name"] = part.name
        if part.placeholder:
            out["placeholder"] = True
        return out
    if isinstance(part, ToolCallPart) and part.signature is None:
        return {k: v for k, v in vars(part).items() if k != "signature"}
    return {k: v for k, v in vars(part).items()}


def part_from_json(data: dict[str, Any]) -> Part:
    kind = data.get("kind")
    cls = _KINDS.get(str(kind))
    if cls is None:
        raise ValueError(f"unknown part kind {kind!r}")
    fields = {k: v for k, v in data.items() if k != "kind"}
    if cls is ImagePart or cls is DocumentPart:
        fields["data"] = base64.b64decode(fields["data"], validate=True)
    part: Part = cls(**fields)
    return part


def parts_to_json(parts: Sequence[Part]) -> list[dict[str, Any]]:
    return [part_to_json(p) for p in parts]


def parts_from_json(data: Sequence[dict[str, Any]]) -> Parts:
    return tuple(part_from_json(d) for d in data)


def content_to_json(content: Content) -> str | list[dict[str, Any]]:
    """JSON for a message's content (requests in cassettes, `%convo inspect`)."""
    return content if isinstance(content, str) else parts_to_json(content)


def refuse(part: Part, provider: str, why: str = "") -> UsageError:
    """The one-line error for a part a provider cannot take; nothing was sent."""
    reason = f" ({why})" if why else ""
    return UsageError(
        f"{provider} does not take {DESCRIPTIONS[part.kind]} in a prompt{reason}: "
        "remove it or choose another model with `%convo model`; nothing was sent"
    )
