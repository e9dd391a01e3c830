"""Message content on the wire: each provider's form of text and image parts.

A message whose content is a plain string goes as it always did. Parts become the
provider's content blocks; a kind the provider does not take is refused in one line,
before anything is sent (``_parts.refuse``)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from nbconvo._images import Rule, check_document, fit
from nbconvo._parts import Content, DocumentPart, ImagePart, Part, TextPart, as_parts, refuse
from nbconvo._types import Message

# Why a provider takes text alone (it refuses any other part, before sending).
COPILOT_TEXT_ONLY = "the Copilot Chat API takes text messages only"
LLAMA_TEXT_ONLY = "this in-process model reads text only"


def blocks(
    content: Content,
    label: str,
    text: Callable[[str], dict[str, Any]],
    image: Callable[[ImagePart], dict[str, Any]] | None,
    rule: Rule = "openai",
    document: Callable[[DocumentPart], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """``content`` as a list of wire blocks: ``text``, ``image`` and ``document`` build
    one each; an image is first scaled down to the provider's limits (``rule``), a PDF
    checked against them."""
    out: list[dict[str, Any]] = []
    for part in as_parts(content):
        if isinstance(part, TextPart):
            out.append(text(part.text))
        elif isinstance(part, ImagePart) and image is not None:
            out.append(image(fit(part, rule)))
        elif isinstance(part, DocumentPart) and document is not None:
            out.append(document(check_document(part, rule, label)))
        else:
            raise refuse(part, label)
    return out


def text_only(messages: list[Message], label: str, why: str = "") -> None:
    """Refuse, in one line, the first part that is not text (providers that take text
    alone: the in-process model, Microsoft 365 Copilot)."""
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            continue
        part: Part | None = next((p for p in content if not isinstance(p, TextPart)), None)
        if part is not None:
            raise refuse(part, label, why)


# -- the forms ----------------------------------------------------------------------


def openai_content(
    content: Content, label: str, documents: bool = False
) -> str | list[dict[str, Any]]:
    """Chat Completions: a string, or ``text`` and ``image_url`` (a data URL) parts, and
    where the service reads PDFs (``documents``: OpenAI's and Azure's own) ``file``
    parts."""
    if isinstance(content, str):
        return content
    return blocks(
        content,
        label,
        lambda text: {"type": "text", "text": text},
        lambda image: {"type": "image_url", "image_url": {"url": image.data_url()}},
        "openai",
        (lambda doc: {"type": "file", "file": {"filename": doc.name or "document.pdf",
                                                "file_data": doc.data_url()}})
        if documents else None,
    )  # fmt: skip


def anthropic_blocks(content: Content, label: str) -> list[dict[str, Any]]:
    """Messages API: ``text`` and base64 ``image`` blocks."""
    return blocks(
        content,
        label,
        lambda text: {"type": "text", "text": text},
        lambda image: {
            "type": "image",
            "source": {"type": "base64", "media_type": image.media_type, "data": image.base64()},
        },
        "anthropic",
        lambda doc: {
            "type": "document",
            "source": {"type": "base64", "media_type": doc.media_type, "data": doc.base64()},
        },
    )


def gemini_parts(content: Content, label: str) -> list[dict[str, Any]]:
    """Gemini: ``text`` and ``inlineData`` parts, written as google-genai writes them
    (``mime_type``, URL-safe base64; the API reads both spellings of each)."""
    return blocks(
        content,
        label,
        lambda text: {"text": text},
        lambda image: {
            "inlineData": {
                "data": base64.urlsafe_b64encode(image.data).decode("ascii"),
                "mime_type": image.media_type,
            }
        },
        "gemini",
        lambda doc: {
            "inlineData": {
                "data": base64.urlsafe_b64encode(doc.data).decode("ascii"),
                "mime_type": doc.media_type,
            }
        },
    )
