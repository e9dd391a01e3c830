"""Message content on the wire: each provider's form of text, image, tool-call,
tool-result and reasoning parts.

A message whose content is a plain string goes as it always did. Parts become the
provider's content blocks; a kind the provider does not take is refused in one line,
before anything is sent (``_parts.refuse``). Reasoning parts are never refused: each goes
back to the provider that made it, in its own form, and is left out everywhere else
(``reasoning_for``)."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable
from typing import Any

from nbconvo._errors import UsageError
from nbconvo._images import Rule, check_document, fit
from nbconvo._models import lookup, takes_effort
from nbconvo._parts import (
    Content,
    DocumentPart,
    ImagePart,
    Part,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    as_parts,
    content_of,
    refuse,
)
from nbconvo._types import ChatRequest, Message, ResponseSchema, ToolSpec

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
    call: Callable[[ToolCallPart], dict[str, Any]] | None = None,
    result: Callable[[ToolResultPart], dict[str, Any]] | None = None,
    reasoning: Callable[[ReasoningPart], dict[str, Any] | None] | None = None,
) -> list[dict[str, Any]]:
    """``content`` as a list of wire blocks: ``text``, ``image``, ``document``, ``call``
    and ``result`` build one each; an image is first scaled down to the provider's
    limits (``rule``), a PDF checked against them. ``reasoning`` builds a block for a
    reasoning part, or None to leave it out; without it every reasoning part is left out
    (an API that takes no reasoning back: never a reason to refuse a turn)."""
    out: list[dict[str, Any]] = []
    for part in as_parts(content):
        if isinstance(part, ReasoningPart):
            block = reasoning(part) if reasoning is not None else None
            if block is not None:
                out.append(block)
        elif isinstance(part, TextPart):
            out.append(text(part.text))
        elif isinstance(part, ImagePart) and image is not None:
            out.append(image(fit(part, rule)))
        elif isinstance(part, DocumentPart) and document is not None:
            out.append(document(check_document(part, rule, label)))
        elif isinstance(part, ToolCallPart) and call is not None:
            out.append(call(part))
        elif isinstance(part, ToolResultPart) and result is not None:
            out.append(result(part))
        else:
            raise refuse(part, label)
    return out


def text_only(messages: list[Message], label: str, why: str = "") -> None:
    """Refuse, in one line, the first part that is not text (providers that take text
    alone: the in-process model, Microsoft 365 Copilot). Reasoning parts are left out
    when sent, not refused."""
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            continue
        part: Part | None = next(
            (p for p in content if not isinstance(p, TextPart | ReasoningPart)), None
        )
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
    """Messages API: ``text``, base64 ``image`` and ``document``, ``tool_use`` (the
    arguments as an object) and ``tool_result`` blocks (``is_error`` only on an error,
    as the SDK leaves it out), and Claude's own ``thinking`` (with its signature) and
    ``redacted_thinking`` blocks back as they came."""
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
        lambda call: {
            "type": "tool_use",
            "id": call.call_id,
            "name": call.name,
            "input": call_input(call),
        },
        lambda result: {
            "type": "tool_result",
            "tool_use_id": result.call_id,
            "content": result.content,
            **({"is_error": True} if result.is_error else {}),
        },
        anthropic_thinking,
    )


def anthropic_opaque(block: dict[str, Any]) -> str:
    """What a thinking block leaves to send back: its signature, or a redacted block's
    encrypted data (as JSON: a signature is base64 and never starts with a brace)."""
    if block.get("type") == "redacted_thinking":
        return json.dumps({"type": "redacted_thinking", "data": str(block.get("data") or "")})
    return str(block.get("signature") or "")


def anthropic_thinking(part: ReasoningPart) -> dict[str, Any] | None:
    """Claude's thinking block as it came (the API checks its signature), or None for
    another provider's reasoning, or one without a signature (it cannot go back)."""
    if part.provider != "anthropic" or not part.opaque:
        return None
    if part.opaque.startswith("{"):
        try:
            redacted = json.loads(part.opaque)
        except ValueError:
            return None
        return {"type": "redacted_thinking", "data": str(redacted.get("data") or "")}
    return {"type": "thinking", "thinking": part.text, "signature": part.opaque}


def gemini_parts(content: Content, label: str) -> list[dict[str, Any]]:
    """Gemini: ``text`` and ``inlineData`` parts, written as google-genai writes them
    (``mime_type``, URL-safe base64; the API reads both spellings of each); a call as
    ``functionCall`` (with the ``thoughtSignature`` the model gave it, which Gemini 3
    requires back), a result as ``functionResponse`` (``{"result": …}``, or
    ``{"error": …}`` for an error, as Google's documentation writes them)."""
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
        _gemini_call,
        lambda result: {
            "functionResponse": {
                "name": result.name,
                "response": {"error" if result.is_error else "result": result.content},
            }
        },
        _gemini_thought,
    )


def _gemini_thought(part: ReasoningPart) -> dict[str, Any] | None:
    """Gemini's thought part back as it came (its summary, ``thought: true`` and its
    thought signature if it had one), as google-genai's chat sends a whole answer back;
    another provider's reasoning is left out."""
    if part.provider != "gemini" or not (part.text or part.opaque):
        return None
    out: dict[str, Any] = {"text": part.text, "thought": True}
    if part.opaque:
        out["thoughtSignature"] = part.opaque
    return out


def _gemini_call(call: ToolCallPart) -> dict[str, Any]:
    part: dict[str, Any] = {"functionCall": {"name": call.name, "args": call_input(call)}}
    if call.signature:
        part["thoughtSignature"] = call.signature
    return part


# -- reasoning -------------------------------------------------------------------------


def refuse_effort(request: ChatRequest, spec: str) -> None:
    """Refuse, in one line, an effort setting for a model the table knows takes none
    (before anything is sent); an unknown model gets it as asked."""
    if request.effort is not None and lookup(spec) is not None and not takes_effort(spec):
        raise UsageError(
            f"{spec} takes no reasoning effort: remove --effort (or choose a reasoning "
            "model); nothing was sent"
        )


def reasoning_for(content: Content, provider: str | None) -> Content:
    """``content`` keeping only the reasoning parts ``provider`` made (None: none): a
    provider cannot take another's reasoning back, and an API without reasoning input
    takes none. A plain string when only text remains."""
    if isinstance(content, str) or not any(isinstance(p, ReasoningPart) for p in content):
        return content
    kept = tuple(
        p
        for p in content
        if not isinstance(p, ReasoningPart) or (provider is not None and p.provider == provider)
    )
    return content_of(kept)


# -- tools and structured answers -----------------------------------------------------


def refuse_tools(request: ChatRequest, label: str, why: str) -> None:
    """Refuse, in one line, a request that offers tools or wants a structured answer from
    a provider that has neither (before anything is sent)."""
    if request.tools:
        flag, what = "--tools", "tools"
    elif request.schema is not None:
        flag, what = "--schema", "a structured answer (a schema)"
    else:
        return
    raise UsageError(
        f"{label} does not take {what} ({why}): remove {flag} or choose another model "
        "with `%convo model`; nothing was sent"
    )


def described(out: dict[str, Any], description: str) -> dict[str, Any]:
    """``out`` with its description, when there is one (every API takes it as optional,
    and the SDKs send none unless given)."""
    if description:
        out["description"] = description
    return out


def call_input(call: ToolCallPart) -> dict[str, Any]:
    """A call's arguments as the object Anthropic and Gemini take back. Arguments that
    are not a JSON object (the model wrote bad JSON) go as ``{}``: the call's result
    already told the model what was wrong with them, and the API refuses anything else."""
    try:
        value = json.loads(call.arguments or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def with_result_names(messages: list[Message]) -> list[Message]:
    """The messages with every tool result named after its call (Gemini pairs a result
    with its call by name). A result carries its name; one that does not takes the name
    of the call with its id in the assistant message before it (ids repeat across the
    steps of a turn, so only the calls just before count)."""
    out: list[Message] = []
    names: dict[str, str] = {}
    for message in messages:
        content = message["content"]
        if message["role"] == "assistant" and not isinstance(content, str):
            names = {p.call_id: p.name for p in content if isinstance(p, ToolCallPart)}
        elif message["role"] == "tool" and not isinstance(content, str):
            parts = tuple(
                dataclasses.replace(p, name=names.get(p.call_id, ""))
                if isinstance(p, ToolResultPart) and not p.name
                else p
                for p in content
            )
            message = {"role": "tool", "content": parts}
        out.append(message)
    return out


def openai_tools(tools: tuple[ToolSpec, ...]) -> list[dict[str, Any]]:
    """Chat Completions' ``tools``: one ``function`` each."""
    return [
        {
            "type": "function",
            "function": described({"name": t.name}, t.description) | {"parameters": t.parameters},
        }
        for t in tools
    ]


def openai_response_format(schema: ResponseSchema) -> dict[str, Any]:
    """Chat Completions' ``response_format`` for a structured answer. Not ``strict``:
    strict mode refuses the schemas most classes make (optional fields, defaults)."""
    spec = described({"name": schema.name}, schema.description)
    return {"type": "json_schema", "json_schema": spec | {"schema": schema.schema, "strict": False}}


def openai_messages(message: Message, label: str, documents: bool) -> list[dict[str, Any]]:
    """One neutral message with parts as Chat Completions messages: an assistant's tool
    calls go in its ``tool_calls`` (its text, or None, as ``content``); each tool result
    is a ``tool`` message of its own; anything else is ``openai_content``."""
    role, content = message["role"], reasoning_for(message["content"], None)
    parts = as_parts(content)
    if role == "tool":
        return [
            {"role": "tool", "tool_call_id": p.call_id, "content": p.content}
            for p in _only(parts, ToolResultPart, label)
        ]
    calls = [p for p in parts if isinstance(p, ToolCallPart)]
    if role == "assistant" and calls:
        rest = content_of(tuple(p for p in parts if not isinstance(p, ToolCallPart)))
        return [
            {
                "role": "assistant",
                "content": openai_content(rest, label, documents) if rest else None,
                "tool_calls": [
                    {
                        "id": c.call_id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in calls
                ],
            }
        ]
    return [{"role": role, "content": openai_content(content, label, documents)}]


def _only(parts: tuple[Part, ...], kind: type[ToolResultPart], label: str) -> list[ToolResultPart]:
    """The tool results of a ``tool`` message; any other part is refused."""
    for part in parts:
        if not isinstance(part, kind):
            raise refuse(part, label, "a tool message holds tool results only")
    return [p for p in parts if isinstance(p, kind)]
