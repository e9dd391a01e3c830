"""Text shown to users: footers, listings, comparisons (transcripts: ``_transcript``).
Model text always goes through ``neutralize_html`` first (it is untrusted and
JupyterLab runs raw HTML in Markdown)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nbconvo._meter import TokenMeter
from nbconvo._sanitize import neutralize_html
from nbconvo._transcript import md_escape, preview
from nbconvo._tree import Turn

if TYPE_CHECKING:
    from pathlib import Path

    from nbconvo._conversation import Conversation
    from nbconvo._store import SessionSummary


def footer_text(convo: Conversation, turn: Turn, meter: TokenMeter | None = None) -> str:
    tree = convo.tree
    approx = "" if turn.usage_exact else "≈"
    parts = [
        f"turn {tree.label(turn.id)}",
        tree.current,
        f"{turn.provider}:{turn.model}",
        f"{approx}{turn.input_tokens:,} → {turn.output_tokens:,} tokens",
    ]
    if meter is not None and meter.window:
        mark = "" if meter.exact else "≈"
        parts.append(f"context {mark}{meter.used:,}/{meter.window:,} ({meter.fraction:.0%})")
    if convo.budget:
        parts.append(f"exchange {convo.exchanges()} of {convo.budget}")
    if convo.goal:
        parts.append(f"goal: {preview(convo.goal, 40)}")
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
    return md_escape(preview(text, 50)) or " "  # md_escape covers "|" too


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


def markdown_to_html(text: str) -> str:
    """Model Markdown as HTML with raw HTML escaped and unsafe links dropped."""
    from markdown_it import MarkdownIt

    # html=False escapes raw HTML; markdown-it's validateLink refuses javascript:,
    # vbscript:, file: and non-image data: links.
    return str(MarkdownIt("commonmark", {"html": False}).enable("table").render(text))


def compare_paths(convo: Conversation, a: str, b: str) -> tuple[list[Turn], list[Turn], int]:
    """The two branches' turns after their common ancestor, and that ancestor's depth."""
    from nbconvo._errors import ConversationError

    tree = convo.tree
    for name in (a, b):
        if name not in tree.branches:
            known = ", ".join(sorted(tree.branches))
            raise ConversationError(f"no branch named {name!r}: the branches are {known}")
    left, right = tree.ancestry(tree.branches[a]), tree.ancestry(tree.branches[b])
    common = 0
    while common < min(len(left), len(right)) and left[common].id == right[common].id:
        common += 1
    return left[common:], right[common:], common


def compare_html(convo: Conversation, a: str, b: str) -> str:
    from html import escape

    left, right, common = compare_paths(convo, a, b)
    tree = convo.tree
    where = f"after turn {common}" if common else "from the root"
    rows = [
        '<table class="nbconvo-compare" style="table-layout:fixed;width:100%">',
        f"<caption>Branches {escape(a)} and {escape(b)}, {where}</caption>",
        f"<thead><tr><th>{escape(a)}</th><th>{escape(b)}</th></tr></thead><tbody>",
    ]
    for i in range(max(len(left), len(right))):
        cells = []
        for side in (left, right):
            if i < len(side):
                turn = side[i]
                title = f"Turn {tree.label(turn.id)}"
                cells.append(
                    f"<td style='vertical-align:top;text-align:left'>"
                    f"<p><b>{escape(title)}</b>: {escape(preview(turn.prompt, 80))}"
                    f"</p>{markdown_to_html(turn.answer)}</td>"
                )
            else:
                cells.append("<td></td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    rows.append("</tbody></table>")
    return "\n".join(rows)


def compare_text(convo: Conversation, a: str, b: str) -> str:
    left, right, common = compare_paths(convo, a, b)
    tree = convo.tree
    lines = [f"Branches {a} and {b}, after turn {common}:"]
    for name, side in ((a, left), (b, right)):
        lines.append(f"== {name}")
        for turn in side:
            lines.append(f"-- turn {tree.label(turn.id)}: {preview(turn.prompt, 80)}")
            lines.append(turn.answer)
    return "\n".join(lines)


def when(timestamp: float, now: float | None = None) -> str:
    """ "12:41 today", "09:05 yesterday", "2026-11-02 17:30"."""
    import datetime

    moment = datetime.datetime.fromtimestamp(timestamp)
    today = datetime.datetime.fromtimestamp(now) if now is not None else datetime.datetime.now()
    days = (today.date() - moment.date()).days
    if days == 0:
        return f"{moment:%H:%M} today"
    if days == 1:
        return f"{moment:%H:%M} yesterday"
    return f"{moment:%Y-%m-%d %H:%M}"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 'es' if word.endswith('ch') else 's'}"


def earlier_session_line(latest: SessionSummary, count: int, store: Path | None) -> str:
    """The one line ``%load_ext`` prints when the notebook has earlier sessions."""
    more = f" ({count} earlier sessions: `%convo sessions`)" if count > 1 else ""
    where = f"; store {store}" if store is not None else ""
    return (
        f"nbconvo: earlier session, {when(latest.updated_at)}: "
        f"{_plural(latest.turns, 'turn')}, {_plural(latest.branches, 'branch')}"
        f" — `%convo load` restores it{more}{where}"
    )


def sessions_markdown(sessions: list[SessionSummary], own: str, store: Path) -> str:
    rows = [
        f"*sessions of this notebook, kept in* `{store}`",
        "",
        "| # | last change | turns | branches | last prompt | |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in sessions:
        mark = "this kernel" if s.id == own else (s.origin if s.origin != "kernel" else "")
        rows.append(
            f"| {s.number} | {when(s.updated_at)} | {s.turns:,} | {s.branches:,} | "
            f"{_cell(s.last_prompt)} | {md_escape(mark)} |"
        )
    if not sessions:
        rows.append("| | no session yet | | | | |")
    rows.append("")
    rows.append("*`%convo load` restores the latest earlier one, `%convo load N` session N*")
    return "\n".join(rows)
