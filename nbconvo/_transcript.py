"""The conversation as a Markdown transcript (``export("md")``, ``nbconvo run``) and the
escaping every listing of nbconvo shares. Prompts and answers are written as they are
(the file is the user's data); a notebook shows a transcript only through ``_html``."""

from __future__ import annotations

import re
from typing import Protocol

from nbconvo._parts import TextPart, ToolCallPart, ToolResultPart
from nbconvo._tools import describe_call
from nbconvo._tree import ConversationTree, Turn


class Transcribed(Protocol):
    """What a transcript reads of a conversation (the engine's ``Conversation``)."""

    name: str
    goal: str | None
    tree: ConversationTree

    @property
    def branch(self) -> str: ...


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")


def md_escape(text: str) -> str:
    """Escape text so Markdown shows it literally (for names and previews we build)."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def preview(text: str, width: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def code_span(text: str) -> str:
    """``text`` as a Markdown code span, whatever backticks it holds."""
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def tool_line(call: ToolCallPart, result: ToolResultPart) -> str:
    """One tool call as the answer shows it: the call, what it gave back (the start of
    it), and how long it ran; its own paragraph."""
    mark = "⚠" if result.is_error else "→"
    seconds = result.seconds
    if not seconds:
        took = ""  # it did not run
    elif seconds < 0.001:
        took = " · <1 ms"
    elif seconds < 1:
        took = f" · {seconds * 1000:.0f} ms"
    else:
        took = f" · {seconds:.1f} s"
    shown = code_span(describe_call(call, 120))
    outcome = code_span(preview(result.content, 100) or "(empty)")
    return f"\n\nƒ {shown} {mark} {outcome}{took}\n\n"


def answer_markdown(turn: Turn) -> str:
    """The answer as the cell shows it: its text, with a line for each tool call where
    its result came back."""
    if not turn.answer_parts:
        return turn.answer
    calls = {p.call_id: p for p in turn.answer_parts if isinstance(p, ToolCallPart)}
    out: list[str] = []
    for part in turn.answer_parts:
        if isinstance(part, TextPart):
            out.append(part.text)
        elif isinstance(part, ToolResultPart) and part.call_id in calls:
            out.append(tool_line(calls[part.call_id], part))
    return "".join(out)


def transcript_markdown(convo: Transcribed, *, all_branches: bool = False) -> str:
    """The active path as Markdown; with ``all_branches``, every branch, each turn once."""
    lines = [f"# Conversation {md_escape(convo.name)}", ""]
    if convo.goal:
        lines += [f"**Goal:** {md_escape(convo.goal)}", ""]
    tree = convo.tree
    names = [convo.branch] + (
        sorted(n for n in tree.branches if n != convo.branch) if all_branches else []
    )
    shown: set[int] = set()
    for name in names:
        current = " (current)" if name == convo.branch and all_branches else ""
        lines += [f"## Branch {md_escape(name)}{current}", ""]
        path = tree.ancestry(tree.branches[name])
        if not path:
            lines += ["*(empty)*", ""]
        for turn in path:
            label = tree.label(turn.id)
            if turn.id in shown:
                lines += [f"*Turn {label}: as above.*", ""]
                continue
            shown.add(turn.id)
            status = "" if turn.status == "ok" else f" *({turn.status})*"
            lines += _exchange(f"Turn {label}{status}", turn)
    others = [t for t in tree.turns.values() if t.id not in shown] if all_branches else []
    if others:
        lines += ["## Earlier versions (on no branch)", ""]
    for turn in others:
        lines += _exchange(f"Turn {tree.label(turn.id)} (#{turn.id})", turn)
    return "\n".join(lines)


def _exchange(title: str, turn: Turn) -> list[str]:
    return [
        f"### {title}",
        "",
        "**User:**",
        "",
        turn.prompt,
        "",
        "**Assistant:**",
        "",
        answer_markdown(turn),
        "",
    ]
