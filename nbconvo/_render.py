"""Text shown to users: footers, listings, transcripts. Model text always goes through
``neutralize_html`` first (it is untrusted and JupyterLab runs raw HTML in Markdown)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from nbconvo._sanitize import neutralize_html
from nbconvo._tree import Turn

if TYPE_CHECKING:
    from nbconvo._conversation import Conversation

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")


def md_escape(text: str) -> str:
    """Escape text so Markdown shows it literally (for names and previews we build)."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def preview(text: str, width: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def footer_text(convo: Conversation, turn: Turn, window: int | None) -> str:
    tree = convo.tree
    approx = "" if turn.usage_exact else "≈"
    parts = [
        f"turn {tree.label(turn.id)}",
        tree.current,
        f"{turn.provider}:{turn.model}",
        f"{approx}{turn.input_tokens:,} → {turn.output_tokens:,} tokens",
    ]
    if window:
        used = turn.input_tokens + turn.output_tokens
        parts.append(f"context {used / window:.0%} of {window:,}")
    if convo.budget:
        exchanges = sum(1 for t in convo.path if t.kind == "turn")
        parts.append(f"exchange {exchanges} of {convo.budget}")
    if turn.status != "ok":
        parts.append(turn.status)
    return " · ".join(parts)


def footer_markdown(text: str) -> str:
    return f"<sub>{md_escape(text)}</sub>"


def turn_markdown(convo: Conversation, turn: Turn) -> str:
    tree = convo.tree
    status = "" if turn.status == "ok" else f" ({turn.status})"
    return (
        f"**Turn {tree.label(turn.id)}** · #{turn.id}{status} · {md_escape(turn.model)}\n\n"
        f"**Prompt**\n\n{neutralize_html(turn.prompt)}\n\n"
        f"**Answer**\n\n{neutralize_html(turn.answer)}\n"
    )


def history_markdown(convo: Conversation) -> str:
    path = convo.path
    if not path:
        return (
            f"*Conversation {md_escape(convo.name)}: no turns on branch {md_escape(convo.branch)}.*"
        )
    rows = [
        f"**{md_escape(convo.name)}** · branch **{md_escape(convo.branch)}** · {len(path)} turn(s)",
        "",
        "| turn | id | status | prompt | answer |",
        "| --- | --- | --- | --- | --- |",
    ]
    tree = convo.tree
    for turn in path:
        rows.append(
            f"| {tree.label(turn.id)} | #{turn.id} | {turn.status} | "
            f"{_cell(turn.prompt)} | {_cell(turn.answer)} |"
        )
    return "\n".join(rows)


def _cell(text: str) -> str:
    return md_escape(preview(text, 50)).replace("|", "\\|") or " "


def branches_markdown(convo: Conversation) -> str:
    tree = convo.tree
    rows = ["| | branch | tip | turns | last prompt |", "| --- | --- | --- | --- | --- |"]
    for name, tip in sorted(tree.branches.items()):
        mark = "●" if name == tree.current else ""
        label = tree.label(tip) if tip is not None else "(root)"
        last = _cell(tree.turns[tip].prompt) if tip is not None else " "
        rows.append(
            f"| {mark} | {md_escape(name)} | {label} | {len(tree.ancestry(tip))} | {last} |"
        )
    return "\n".join(rows)


def transcript_markdown(convo: Conversation, *, all_branches: bool = False) -> str:
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
        f"**User:** {neutralize_html(turn.prompt)}",
        "",
        f"**Assistant:** {neutralize_html(turn.answer)}",
        "",
    ]
