"""Text shown to users: footers, listings, comparisons (transcripts: ``_transcript``).
Listings are nbconvo's own Markdown with outside text escaped (``md_escape``); model
text is rendered by ``_html`` (untrusted: never handed to a front end as Markdown)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nbconvo._html import render_blocks, render_markdown, wrap
from nbconvo._meter import TokenMeter
from nbconvo._parts import ToolCallPart
from nbconvo._transcript import answer_markdown, md_escape, preview
from nbconvo._tree import Turn

if TYPE_CHECKING:
    from pathlib import Path

    from nbconvo._conversation import Conversation
    from nbconvo._store import SessionSummary


def tool_calls(turn: Turn) -> int:
    return sum(1 for p in turn.answer_parts if isinstance(p, ToolCallPart))


# What nbconvo writes around model text is no math: "$0.02 (… $0.01)" in a footer must
# not be typeset by the front end's MathJax (the math in answers is marked for it).
NO_MATH = "mathjax_ignore tex2jax_ignore"


def footer_text(convo: Conversation, turn: Turn, meter: TokenMeter | None = None) -> str:
    tree = convo.tree
    approx = "" if turn.usage_exact else "≈"
    parts = [
        f"turn {tree.label(turn.id)}",
        tree.current,
        f"{turn.provider}:{turn.model}",
        f"{approx}{turn.input_tokens:,} → {turn.output_tokens:,} tokens",
    ]
    reasoning = turn.billed.get("reasoning", 0)
    if reasoning:  # of the output: what the model spent thinking
        parts[-1] += f" ({reasoning:,} reasoning)"
    if turn.cached_tokens:
        cached = f"{turn.cached_tokens:,} of {turn.input_tokens:,} prompt tokens"
        parts.append(f"reused {cached}" if turn.provider == "llama" else f"{cached} from cache")
    cost = convo.cost([turn])
    if cost.unpriced or cost.total:  # a local model's turn is free: no word of it
        parts.append(cost.describe())
    calls = tool_calls(turn)
    if calls:
        parts.append(f"{calls} tool call{'s' if calls != 1 else ''}")
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


def footer_html(text: str) -> str:
    from html import escape

    return f'<div class="nbconvo-footer {NO_MATH}"><sub>{escape(text)}</sub></div>'


def turn_html(convo: Conversation, turn: Turn) -> str:
    """One turn in full: a heading line, then the prompt and answer, each rendered on
    its own (an unclosed fence in the prompt cannot swallow the answer)."""
    from html import escape

    tree = convo.tree
    status = "" if turn.status == "ok" else f" ({turn.status})"
    head = f"Turn {tree.label(turn.id)}"
    rest = f" · #{turn.id}{status} · {turn.model}"
    return wrap(
        f"<p><strong>{escape(head)}</strong>{escape(rest)}</p>"
        f"<p><strong>Prompt</strong></p>{render_blocks(turn.prompt)}"
        f"<p><strong>Answer</strong></p>{render_blocks(answer_markdown(turn) or '*(no answer)*')}"
    )


def turn_text(convo: Conversation, turn: Turn) -> str:
    return (
        f"Turn {convo.tree.label(turn.id)} · #{turn.id}\n\n{turn.prompt}\n\n{answer_markdown(turn)}"
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
        f'<table class="nbconvo-compare {NO_MATH}" style="table-layout:fixed;width:100%">',
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
                    f"</p>{render_markdown(turn.answer)}</td>"
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


STATIC_ROWS = 200  # a saved notebook's picture of the tree shows at most this many turns


def static_tree_html(convo: Conversation) -> str:
    """The widget's picture for where the live widget cannot show (a notebook reopened
    without its kernel, GitHub, nbviewer, `nbconvo run` outputs): the header, the meter
    and the tree's rows in the widget's order and labels. The live widget hides it."""
    from html import escape

    tree = convo.tree
    meter = convo.meter
    on_path = {t.id for t in convo.path}
    tips: dict[int | None, list[str]] = {}
    for name, tip in tree.branches.items():
        tips.setdefault(tip, []).append(name)
    rows: list[str] = []
    order: list[tuple[int, int]] = []  # (turn id, indent): children in the order made
    stack = [(child, 0) for child in reversed(tree.children.get(None, []))]
    while stack and len(order) < STATIC_ROWS:
        turn_id, indent = stack.pop()
        order.append((turn_id, indent))
        children = tree.children.get(turn_id, [])
        primary = next((c for c in children if c in on_path), children[-1] if children else None)
        for child in reversed(children):
            stack.append((child, indent if child == primary else indent + 1))
    for turn_id, indent in order:
        turn = tree.turns[turn_id]
        badges = "".join(
            f' <span style="border:1px solid;border-radius:8px;padding:0 5px;font-size:11px">'
            f"{escape(name)}</span>"
            for name in sorted(tips.get(turn_id, []))
        )
        weight = "font-weight:600" if turn_id == tree.head else ""
        shade = "" if turn_id in on_path else "opacity:0.6"
        rows.append(
            f'<tr style="{shade}"><td style="text-align:left;padding-left:'
            f'{4 + 14 * min(indent, 12)}px;{weight}">{escape(tree.tree_label(turn_id, on_path))}'
            f'</td><td style="text-align:left">{escape(preview(turn.prompt or turn.answer, 70))}'
            f"{badges}</td>"
            f'<td style="text-align:right">{turn.input_tokens:,} → {turn.output_tokens:,}</td></tr>'
        )
    more = len(tree.turns) - len(order)
    if more > 0:
        rows.append(f'<tr><td></td><td colspan="2">… {more:,} more turns</td></tr>')
    head = (
        f"<strong>{escape(convo.name)}</strong> · branch <strong>{escape(convo.branch)}</strong>"
        f" · {_plural(convo.exchanges(), 'exchange')} · {_plural(len(tree.turns), 'turn')} in"
        f" the tree · {escape(meter.describe())}"
    )
    return (
        f'<div class="nbconvo-static {NO_MATH}" style="font-size:13px">'
        f"<div>{head}</div><table>{''.join(rows)}</table>"
        "<div><sub>a picture of the conversation when this cell ran; run it to get the live"
        " widget</sub></div></div>"
    )
