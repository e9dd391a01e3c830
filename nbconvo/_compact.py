"""Summaries and compaction: the answer to a long conversation running out of window.

``summarize`` asks the model for the key decisions and context so far and changes
nothing. ``compact`` starts a new branch whose first turn is a ``summary`` turn standing
for every turn but the last ``keep``, followed by copies of those; the original turns stay
in the tree.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Protocol

from nbconvo._errors import ConversationError, UsageError
from nbconvo._stream import Collected, StreamSink, collect
from nbconvo._tree import ConversationTree, Turn
from nbconvo._types import ChatRequest, Message
from nbconvo.providers import Provider


class Conversation(Protocol):
    """What summaries and compaction use of a conversation (the engine's
    ``Conversation``, which imports this module)."""

    tree: ConversationTree
    temperature: float | None
    seed: int | None

    @property
    def path(self) -> list[Turn]: ...
    def model_spec(self, override: str | None = None) -> str: ...
    def messages(self, path: list[Turn] | None = None) -> list[Message]: ...
    def system_text(self, path: list[Turn] | None = None) -> str | None: ...
    def provider(self, spec: str) -> Provider: ...


SUMMARY_MAX_TOKENS = 400
SUMMARY_PROMPT = (
    "Summarize the key decisions, facts (including names) and context of our conversation "
    "so far as a short bullet list. Reply with the bullet list only."
)


def summarize(
    convo: Conversation,
    *,
    sink: StreamSink,
    path: list[Turn] | None = None,
    model: str | None = None,
) -> str:
    path = convo.path if path is None else path
    if not any(t.kind == "summary" or t.answer for t in path):
        raise ConversationError("nothing to summarize: the active path has no answered turns")
    spec = convo.model_spec(model)
    prefix, _, name = spec.partition(":")
    request = ChatRequest(
        provider=prefix,
        model=name,
        messages=(*convo.messages(path), {"role": "user", "content": SUMMARY_PROMPT}),
        system=convo.system_text(path),
        temperature=0.0 if convo.temperature is None else convo.temperature,
        max_tokens=SUMMARY_MAX_TOKENS,
        seed=convo.seed,
    )
    got = Collected()
    collect(convo.provider(spec), request, sink, got)
    summary = got.text.strip()
    if not summary:
        raise ConversationError(f"{spec} returned an empty summary: nothing was changed")
    return summary


def compact(
    convo: Conversation,
    *,
    keep: int,
    name: str | None,
    sink: StreamSink,
    model: str | None = None,
    cell: str | None = None,
) -> str:
    """A branch of the summary and copies of the last ``keep`` turns. ``cell``, the id of
    a `%convo compact` cell: its rerun re-creates the branch it made (the old one kept as
    NAME@k), as a fork cell's does."""
    tree = convo.tree
    path = convo.path
    if not path:
        raise ConversationError("nothing to compact: the active path is empty")
    if keep < 0:
        raise UsageError(f"--keep must be 0 or more, not {keep}")
    if keep >= len(path):
        raise ConversationError(
            f"nothing to compact: --keep {keep} keeps all {len(path)} turn(s) of the active "
            "path; use a smaller --keep"
        )
    made = tree.branch_made_by(cell) if cell else None
    branch = name or made or _default_name(convo)
    if branch != made:
        tree.check_new_branch_name(branch)
    earlier, kept = path[: len(path) - keep], path[len(path) - keep :]
    spec = convo.model_spec(model)
    summary = summarize(convo, sink=sink, path=earlier, model=model)  # may fail: no change yet
    now = time.time()
    if branch == made:
        tree.set_aside(made)
    tree.fork(0, branch)
    if cell:
        tree.branch_cells[branch] = cell
    tree.append(
        Turn(
            id=tree.new_turn_id(),
            parent=None,
            prompt=f"Summary of turns 1–{len(earlier)} ({SUMMARY_PROMPT})",
            answer=summary,
            kind="summary",
            provider=spec.partition(":")[0],
            model=spec.partition(":")[2],
            started_at=now,
            finished_at=now,
        )
    )
    for turn in kept:  # copies: a turn has one parent, and usage no longer applies; a
        # copy is no cell's turn (a rerun of that cell makes a version of the original)
        copy = dataclasses.replace(turn, id=tree.new_turn_id(), usage_exact=False, cell_id=None)
        tree.append(copy)
    return branch


def _default_name(convo: Conversation) -> str:
    n = 1
    while f"compact-{n}" in convo.tree.branches:
        n += 1
    return f"compact-{n}"
