"""Reasoning as the fakes serve it: the checks each API makes of an effort or thinking
setting, and the thinking each streams back (used by the Anthropic, Gemini and OpenAI
Chat Completions fakes; the Responses API fake has its own, in ``responses_server``).

Anthropic (its thinking docs and the SDK 2.14 types): ``thinking`` ``adaptive`` (Claude
4.6 and later; ``display`` summarized or omitted) with ``output_config.effort``, or
``enabled`` with a ``budget_tokens`` of at least 1,024 below ``max_tokens`` (Claude 4.5
and earlier; the Claude 5 family and Opus 4.7 refuse it); no thinking beside a forced
tool; ``thinking`` blocks sent back need the signature the fake gave them (it signs
what it streams) and ``redacted_thinking`` blocks their data unchanged; with thinking on,
the assistant turn just before the last tool results starts with its thinking. A thinking
answer streams one ``thinking`` block (``thinking_delta`` pieces, then a
``signature_delta``) before the text; ``Canned(options={"redacted": True})`` adds a
``redacted_thinking`` block, ``{"thinking": "..."}`` scripts the thought.

Gemini: ``thinkingConfig`` with a ``thinkingLevel`` (not on Gemini 2.5) or a
``thinkingBudget``, never both; with ``includeThoughts`` the answer starts with thought
parts (``thought: true``), the last with a ``thoughtSignature``; thought parts sent back
are taken as they are.

OpenAI Chat Completions: ``reasoning_effort`` only for a model that reasons, and not
beside function tools for GPT-5.2 and later ("use /v1/responses").
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from typing import Any

_SECRET = b"fake-thinking-secret"
# Claude 5, Opus 4.7 and later, Mythos, Fable: adaptive thinking only.
ADAPTIVE_ONLY = re.compile(
    r"^claude-(?:(?:opus|sonnet|haiku|fable|mythos)-5|opus-4-[7-9]|mythos|fable)"
)
# Claude 4.5 and earlier: a budget only.
BUDGET_ONLY = re.compile(r"^claude-(?:3|(?:opus|sonnet|haiku)-4(?:-[0-5])?(?:-\d{8})?$)")
ANTHROPIC_EFFORTS = ("low", "medium", "high", "xhigh", "max")
OPENAI_REASONS = re.compile(r"^(gpt-5|gpt-6|o\d)")
OPENAI_NO_EFFORT_WITH_TOOLS = re.compile(r"^gpt-(?:5\.(?:[2-9]|\d\d)|[6-9])")
OPENAI_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")


def sign(text: str) -> str:
    """The signature the fake gives a thought, tied to its text: base64 in the letters both
    alphabets share (hex digits), so an SDK that re-encodes bytes URL-safe sends it back
    the same."""
    return hashlib.sha256(_SECRET + text.encode()).hexdigest()[:32]


# -- Anthropic --------------------------------------------------------------------------


def anthropic_thinking_on(body: dict[str, Any]) -> bool:
    return (body.get("thinking") or {}).get("type") in ("enabled", "adaptive")


def anthropic_thinking_error(body: Any) -> str | None:
    """What Anthropic answers for a thinking or effort setting it refuses."""
    if not isinstance(body, dict):
        return None
    model = str(body.get("model") or "")
    thinking = body.get("thinking")
    if thinking is not None:
        kind = thinking.get("type") if isinstance(thinking, dict) else None
        if kind not in ("enabled", "adaptive", "disabled", "between_tools"):
            return "thinking: Input tag does not match any of the expected tags"
        if thinking.get("display") not in (None, "summarized", "omitted"):
            return "thinking.display: Input should be 'summarized' or 'omitted'"
        if kind == "enabled":
            if ADAPTIVE_ONLY.match(model):
                return (
                    '"thinking.type.enabled" is not supported for this model. Use '
                    '"thinking.type.adaptive" and "output_config.effort" to control thinking '
                    "behavior."
                )
            budget = thinking.get("budget_tokens")
            if not isinstance(budget, int) or budget < 1024:
                return (
                    "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
                )
            if "max_tokens" in body and body["max_tokens"] <= budget:
                return "`max_tokens` must be greater than `thinking.budget_tokens`."
        if kind == "adaptive" and BUDGET_ONLY.match(model):
            return '"thinking.type.adaptive" is not supported for this model.'
        choice = (body.get("tool_choice") or {}).get("type")
        if kind in ("enabled", "adaptive") and choice in ("any", "tool"):
            return "Thinking may not be enabled when tool_choice forces tool use."
    effort = (body.get("output_config") or {}).get("effort")
    if effort is not None:
        if effort not in ANTHROPIC_EFFORTS:
            return f"output_config.effort: Input should be {', '.join(ANTHROPIC_EFFORTS)}"
        if BUDGET_ONLY.match(model):
            return "output_config.effort: effort is not supported for this model."
    return _thinking_blocks_error(body.get("messages") or [], anthropic_thinking_on(body))


def _thinking_blocks_error(messages: list[Any], thinking: bool) -> str | None:
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for j, block in enumerate(content):
            kind = block.get("type") if isinstance(block, dict) else None
            where = f"messages.{i}.content.{j}"
            if kind == "thinking":
                if not isinstance(block.get("signature"), str) or not block["signature"]:
                    return f"{where}.thinking.signature: Field required"
                if block["signature"] != sign(str(block.get("thinking") or "")):
                    return f"{where}: Invalid `signature` in `thinking` block"
            elif kind == "redacted_thinking" and block.get("data") != redacted_data():
                return f"{where}: Invalid `data` in `redacted_thinking` block"
    if not thinking or len(messages) < 2:
        return None
    last, before = messages[-1], messages[-2]
    results = isinstance(last.get("content"), list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in last["content"]
    )
    content = before.get("content")
    if results and before.get("role") == "assistant" and isinstance(content, list) and content:
        first = content[0].get("type") if isinstance(content[0], dict) else None
        if first not in ("thinking", "redacted_thinking"):
            return (
                f"messages.{len(messages) - 2}.content.0.type: Expected `thinking` or "
                f"`redacted_thinking`, but found `{first}`. When `thinking` is enabled, a final "
                "`assistant` message must start with a thinking block (preceeding the lastmost "
                "set of `tool_use` and `tool_result` blocks)."
            )
    return None


def redacted_data() -> str:
    return base64.b64encode(b"fake redacted thinking").decode()


def anthropic_thought(body: dict[str, Any], canned_thought: str | None) -> str:
    """What the model thinks: scripted, or what it was asked, at which effort, and how
    many of its thinking blocks came back."""
    if canned_thought is not None:
        return canned_thought
    users = [m for m in body.get("messages") or [] if m.get("role") == "user"]
    last = users[-1]["content"] if users else ""
    asked = last if isinstance(last, str) else " ".join(
        str(b.get("text") or "") for b in last if isinstance(b, dict) and b.get("type") == "text"
    )  # fmt: skip
    effort = (body.get("output_config") or {}).get("effort") or (
        f"budget {(body.get('thinking') or {}).get('budget_tokens')}"
    )
    back = sum(
        1
        for m in body.get("messages") or []
        if isinstance(m.get("content"), list)
        for b in m["content"]
        if isinstance(b, dict) and b.get("type") == "thinking"
    )
    return f"The user asks: {asked or '(tool results)'}. Effort {effort}; {back} earlier thoughts."


def anthropic_thinking_blocks(
    send: Callable[[dict[str, Any]], None],
    body: dict[str, Any],
    options: dict[str, Any],
    index: int,
    pieces: Callable[[str], list[str]],
) -> tuple[int, int]:
    """Stream the answer's thinking from block ``index``: (the next index, its tokens)."""
    thought = anthropic_thought(body, options.get("thinking"))
    shown = (body.get("thinking") or {}).get("display") != "omitted"
    start = {"type": "thinking", "thinking": "", "signature": ""}
    send({"type": "content_block_start", "index": index, "content_block": start})
    tokens = 0
    for piece in pieces(thought) if shown else []:
        delta = {"type": "thinking_delta", "thinking": piece}
        send({"type": "content_block_delta", "index": index, "delta": delta})
        tokens += 1
    signature = sign(thought if shown else "")
    delta = {"type": "signature_delta", "signature": signature}
    send({"type": "content_block_delta", "index": index, "delta": delta})
    send({"type": "content_block_stop", "index": index})
    index += 1
    if options.get("redacted"):
        block = {"type": "redacted_thinking", "data": redacted_data()}
        send({"type": "content_block_start", "index": index, "content_block": block})
        send({"type": "content_block_stop", "index": index})
        index += 1
    return index, max(tokens, 1) * 4  # the whole thought is longer than its summary


# -- Gemini -----------------------------------------------------------------------------

GEMINI_LEVELS = ("MINIMAL", "LOW", "MEDIUM", "HIGH", "XHIGH")


def gemini_thinking_error(model: str, config: dict[str, Any]) -> str | None:
    thinking = config.get("thinkingConfig")
    if thinking is None:
        return None
    if not isinstance(thinking, dict):
        return "Invalid value at 'generation_config.thinking_config'"
    level, budget = thinking.get("thinkingLevel"), thinking.get("thinkingBudget")
    if level is not None and budget is not None:
        return "You can only set thinking_level or thinking_budget, not both."
    if level is not None:
        if model.startswith("gemini-2"):
            return "Thinking level is not supported for this model."
        if str(level).upper() not in GEMINI_LEVELS:
            return f"Invalid value at 'generation_config.thinking_config.thinking_level' ({level})"
    if budget is not None and (not isinstance(budget, int) or budget < -1):
        return "* GenerateContentRequest.generation_config.thinking_config.thinking_budget: invalid"
    return None


def gemini_thought_parts(body: dict[str, Any], size: int) -> list[dict[str, Any]]:
    """The thought parts an answer starts with when thoughts are asked for: the summary
    in pieces, the last part with a thought signature."""
    thinking = (body.get("generationConfig") or {}).get("thinkingConfig") or {}
    if not thinking.get("includeThoughts"):
        return []
    setting = thinking.get("thinkingLevel") or f"budget {thinking.get('thinkingBudget')}"
    back = sum(1 for c in body["contents"] for p in c.get("parts") or [] if p.get("thought"))
    users = [c for c in body["contents"] if c.get("role", "user") == "user"]
    asked = " ".join(p.get("text", "") for p in users[-1]["parts"]) if users else ""
    thought = f"**Considering** {asked} at {setting}; {back} earlier thoughts came back."
    parts = [{"text": thought[i : i + size], "thought": True} for i in range(0, len(thought), size)]
    parts[-1]["thoughtSignature"] = sign(thought)
    return parts


# -- OpenAI Chat Completions ------------------------------------------------------------


def chat_effort_error(body: dict[str, Any]) -> str | None:
    effort = body.get("reasoning_effort")
    if effort is None:
        return None
    model = str(body.get("model") or "")
    if not OPENAI_REASONS.match(model):
        return "Unsupported parameter: 'reasoning_effort' is not supported with this model."
    if effort not in OPENAI_EFFORTS:
        return f"Invalid value: '{effort}'. Supported values are: {', '.join(OPENAI_EFFORTS)}."
    if body.get("tools") and effort != "none" and OPENAI_NO_EFFORT_WITH_TOOLS.match(model):
        return (
            f"Function tools with reasoning_effort are not supported for {model} in "
            "/v1/chat/completions. To use function tools, use /v1/responses or set "
            "reasoning_effort to 'none'."
        )
    return None
