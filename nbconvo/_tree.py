"""The conversation tree: turns, branches, head, positions and versions.

Pure data and rules, no I/O. A turn is one exchange; its parent is the turn it followed
(``None`` for a first turn). Branches are names pointing at a turn (``None``: an empty
branch at the root), like git branches; the head is the current branch's tip and the
active path runs root → head. Nothing is ever deleted: fork, rerun and undo only move
branch pointers or add turns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from nbconvo._errors import ConversationError, UsageError
from nbconvo._parts import Content, Parts, content_of

Status = Literal["ok", "interrupted", "error"]
Kind = Literal["turn", "summary"]
MAIN = "main"
_BRANCH_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/@]{0,63}$")


@dataclass(frozen=True)
class Turn:
    """One finished exchange. ``id`` is stable for the life of the conversation."""

    id: int
    parent: int | None
    prompt: str
    answer: str
    status: Status = "ok"
    kind: Kind = "turn"
    source: str = ""
    provider: str = ""
    model: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    usage_exact: bool = False
    cached_tokens: int = 0  # of input_tokens, read from a cache (see _types.Usage)
    cache_write_tokens: int = 0
    first_token_s: float = 0.0  # seconds from sending to the first piece of the answer
    # Tokens billed over every request the turn made (a tool turn makes several): input
    # (all of it), cached (read from the prompt cache), written (to it), output,
    # reasoning (of output). Empty when no provider reported usage.
    billed: dict[str, int] = field(default_factory=dict)
    started_at: float = 0.0
    finished_at: float = 0.0
    cell_id: str | None = None
    error: str | None = None
    # What was sent and received, part by part, when more than text (an image, a value):
    # empty when the prompt or answer is its text alone. ``prompt``/``answer`` are the
    # text views of these.
    prompt_parts: Parts = ()
    answer_parts: Parts = ()
    branch: str = ""  # the branch it was made on (a rerun of its cell goes back there)

    @property
    def prompt_content(self) -> Content:
        """The prompt as a message carries it: its text, or its parts."""
        return content_of(self.prompt_parts) if self.prompt_parts else self.prompt

    @property
    def answer_content(self) -> Content:
        return content_of(self.answer_parts) if self.answer_parts else self.answer

    def _repr_html_(self) -> str:
        from nbconvo._html import render_markdown

        return render_markdown(self.answer or "*(no answer)*")


@dataclass
class ConversationTree:
    """Turns by id, children lists, branch pointers and the current branch."""

    turns: dict[int, Turn] = field(default_factory=dict)
    children: dict[int | None, list[int]] = field(default_factory=lambda: {None: []})
    branches: dict[str, int | None] = field(default_factory=lambda: {MAIN: None})
    current: str = MAIN
    next_id: int = 1
    # Which cell made each branch it made (`%convo fork` in a cell): rerunning that cell
    # re-creates the branch and keeps the old one as NAME@1, NAME@2, …
    branch_cells: dict[str, str] = field(default_factory=dict)
    # Positions never change (a turn's parent is fixed), so each is computed once.
    _depths: dict[int, int] = field(default_factory=dict, repr=False, compare=False)
    _exchanges: dict[int, int] = field(default_factory=dict, repr=False, compare=False)

    # --- reading -------------------------------------------------------------------
    @property
    def head(self) -> int | None:
        return self.branches[self.current]

    def __len__(self) -> int:
        return len(self.turns)

    def turn(self, turn_id: int) -> Turn:
        try:
            return self.turns[turn_id]
        except KeyError:
            raise ConversationError(
                f"there is no turn #{turn_id}: see `%convo history` for turn ids"
            ) from None

    def ancestry(self, tip: int | None) -> list[Turn]:
        """Turns from the root to ``tip`` inclusive."""
        out: list[Turn] = []
        while tip is not None:
            turn = self.turns[tip]
            out.append(turn)
            tip = turn.parent
        out.reverse()
        return out

    def path(self) -> list[Turn]:
        """The active path, root → head: what the model sees."""
        return self.ancestry(self.head)

    def depth(self, turn_id: int) -> int:
        """1-based position of a turn counted from the root."""
        known = self._depths
        if turn_id in known:
            return known[turn_id]
        pending: list[int] = []  # walk up only to the first ancestor already known
        tip: int | None = turn_id
        while tip is not None and tip not in known:
            pending.append(tip)
            tip = self.turns[tip].parent
        depth = known[tip] if tip is not None else 0
        for node in reversed(pending):
            depth += 1
            known[node] = depth
        return depth

    def exchanges(self, tip: int | None) -> int:
        """Exchanges from the root to ``tip``: turns with an answer (a summary or a turn
        interrupted before any text is none). Cached per turn, as depths are: O(new turns)."""
        known = self._exchanges
        pending: list[int] = []
        node = tip
        while node is not None and node not in known:
            pending.append(node)
            node = self.turns[node].parent
        count = known[node] if node is not None else 0
        for turn_id in reversed(pending):
            turn = self.turns[turn_id]
            count += 1 if turn.kind == "turn" and turn.answer else 0
            known[turn_id] = count
        return count

    def version(self, turn_id: int) -> tuple[int, int]:
        """(version number among its siblings, number of siblings), by creation order."""
        siblings = self.children[self.turns[turn_id].parent]
        return siblings.index(turn_id) + 1, len(siblings)

    def label(self, turn_id: int) -> str:
        """ "3" for the only version of position 3, "3.2" for its second version."""
        number, count = self.version(turn_id)
        depth = self.depth(turn_id)
        return f"{depth}.{number}" if count > 1 else str(depth)

    def tree_label(self, turn_id: int, on_path: set[int] | None = None) -> str:
        """The label the widget shows for a turn: unique in the tree and accepted by
        ``resolve`` (so by `%convo switch`). A turn on the active path is "3" or "3.2"; a
        turn whose parent is on it, "3.2" (a version beside the path's own); any other,
        its id "#7"."""
        path = on_path if on_path is not None else {t.id for t in self.path()}
        if turn_id in path:
            return self.label(turn_id)
        parent = self.turns[turn_id].parent
        if parent is None or parent in path:
            number, _ = self.version(turn_id)
            return f"{self.depth(turn_id)}.{number}"
        return f"#{turn_id}"

    def branches_at(self, turn_id: int | None) -> list[str]:
        return [name for name, tip in self.branches.items() if tip == turn_id]

    def descendants(self, turn_id: int | None) -> Iterator[int]:
        stack = list(reversed(self.children.get(turn_id, [])))
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(self.children.get(node, [])))

    def resolve(self, target: str) -> int | None:
        """A turn from "#7" (stable id), "3" (position on the active path) or "3.2"
        (version 2 of position 3 under the active path's turn 2)."""
        target = target.strip()
        if target.startswith("#"):
            digits = target[1:]
            if not digits.isdigit():
                raise UsageError(f"bad turn id {target!r}: write it as #7")
            return self.turn(int(digits)).id
        match = re.fullmatch(r"(\d+)(?:\.(\d+))?", target)
        if not match:
            raise UsageError(
                f"bad turn reference {target!r}: use a position (3), a version (3.2) or an id (#7)"
            )
        position = int(match.group(1))
        path = self.path()
        if match.group(2) is None:
            return self.at_position(position)
        if position < 1 or position > len(path) + 1:
            raise ConversationError(
                f"turn {position} is out of range: the active path has {len(path)} turns"
            )
        parent = path[position - 2].id if position >= 2 else None
        versions = self.children[parent]
        number = int(match.group(2))
        if not 1 <= number <= len(versions):
            raise ConversationError(
                f"turn {position} has {len(versions)} version(s): there is no {target}"
            )
        return versions[number - 1]

    def at_position(self, position: int) -> int | None:
        """The turn at ``position`` on the active path (0: the root, i.e. ``None``)."""
        path = self.path()
        if not 0 <= position <= len(path):
            span = f"0–{len(path)}" if path else "0"
            raise ConversationError(
                f"turn {position} is out of range: the active path has {len(path)} "
                f"turn(s) (use {span})"
            )
        return path[position - 1].id if position else None

    # --- changing ------------------------------------------------------------------
    def new_turn_id(self) -> int:
        turn_id = self.next_id
        self.next_id += 1
        return turn_id

    def append(self, turn: Turn) -> Turn:
        """Add a finished turn as a child of the head and advance the current branch."""
        if turn.id in self.turns:
            raise ConversationError(f"turn #{turn.id} exists already")
        turn = replace(turn, parent=self.head, branch=self.current)
        self.next_id = max(self.next_id, turn.id + 1)
        self.turns[turn.id] = turn
        self.children.setdefault(turn.parent, []).append(turn.id)
        self.children.setdefault(turn.id, [])
        self.branches[self.current] = turn.id
        return turn

    def check_new_branch_name(self, name: str) -> None:
        if not _BRANCH_NAME.match(name):
            raise UsageError(
                f"bad branch name {name!r}: use letters, digits, '-', '_', '.', '/' or '@' "
                "(at most 64 characters)"
            )
        if name in self.branches:
            raise ConversationError(
                f"branch {name!r} exists already: pick another --name or `%convo switch {name}`"
            )

    def default_fork_name(self) -> str:
        n = 1
        while f"fork-{n}" in self.branches:
            n += 1
        return f"fork-{n}"

    def fork(self, position: int, name: str | None = None, cell: str | None = None) -> str:
        """Create a branch at the turn in ``position`` of the active path and switch to it.
        ``cell`` made it: a rerun of that cell re-creates the branch it made before (at the
        same position of the path as it is now) and keeps the old one as NAME@k."""
        target = self.at_position(position)
        made = self.branch_made_by(cell) if cell else None
        if made is not None and name in (None, made):
            name = made
            self.set_aside(made)
        branch = self.fork_at(target, name)
        if cell:
            self.branch_cells[branch] = cell
        return branch

    def branch_made_by(self, cell: str) -> str | None:
        return next(
            (b for b, c in self.branch_cells.items() if c == cell and b in self.branches), None
        )

    def set_aside(self, branch: str) -> str:
        """Rename ``branch`` to the first free ``branch@k``; returns the new name."""
        k = 1
        while f"{branch}@{k}" in self.branches:
            k += 1
        kept = f"{branch}@{k}"
        self.branches[kept] = self.branches.pop(branch)
        self.branch_cells.pop(branch, None)
        if self.current == branch:
            self.current = kept
        return kept

    def fork_at(self, turn_id: int | None, name: str | None = None) -> str:
        """Create a branch at any turn of the tree (not only the active path); switch to it."""
        if turn_id is not None:
            self.turn(turn_id)
        name = name if name is not None else self.default_fork_name()
        self.check_new_branch_name(name)
        self.branches[name] = turn_id
        self.current = name
        return name

    def switch(self, target: str) -> str:
        """Switch to a branch by name, or to a turn ("#7", "3.2"). Returns the branch name.

        Switching to a turn that no branch points at creates branch ``at-<id>`` there, so
        the branch that was current keeps its tip.
        """
        if target in self.branches:
            self.current = target
            return target
        if not re.fullmatch(r"#\d+|\d+(\.\d+)?", target.strip()):
            known = ", ".join(sorted(self.branches))
            raise ConversationError(f"no branch named {target!r}: the branches are {known}")
        turn_id = self.resolve(target)
        names = self.branches_at(turn_id)
        if self.current in names:
            return self.current
        if names:
            self.current = names[0]
            return self.current
        name = f"at-{turn_id}" if turn_id is not None else "root"
        while name in self.branches:
            name += "'"
        self.branches[name] = turn_id
        self.current = name
        return name

    def undo(self) -> Turn:
        """Move the head back one turn; the undone turn stays in the tree."""
        head = self.head
        if head is None:
            raise ConversationError("nothing to undo: the active path is empty")
        turn = self.turns[head]
        self.branches[self.current] = turn.parent
        return turn

    def rewind_for_rerun(self, turn_id: int) -> str | None:
        """Rerun contract: move the head to the parent of ``turn_id`` (which must be on the
        active path). When the old head lies below that turn, the old line is kept under a
        new branch ``<branch>@<k>``; its name is returned."""
        old_head = self.head
        kept: str | None = None
        if (
            old_head is not None
            and old_head != turn_id
            and not self.branches_at_except(old_head, self.current)
        ):
            k = 1
            while f"{self.current}@{k}" in self.branches:
                k += 1
            kept = f"{self.current}@{k}"
            self.branches[kept] = old_head
        self.branches[self.current] = self.turns[turn_id].parent
        return kept

    def branches_at_except(self, turn_id: int | None, branch: str) -> list[str]:
        return [name for name in self.branches_at(turn_id) if name != branch]

    # --- checking ------------------------------------------------------------------
    def check_invariants(self) -> None:
        """Raise ``ConversationError`` naming every broken rule of the structure."""
        problems: list[str] = []
        seen: set[int] = set()
        for turn_id in self.descendants(None):
            if turn_id in seen:
                problems.append(f"turn #{turn_id} reached twice")
            seen.add(turn_id)
        if seen != set(self.turns):
            problems.append("some turns are unreachable from the root")
        for turn_id, turn in self.turns.items():
            if turn.id != turn_id:
                problems.append(f"turn #{turn_id} stored under the wrong id")
            if turn_id not in self.children.get(turn.parent, []):
                problems.append(f"turn #{turn_id} missing from its parent's children")
            if turn_id >= self.next_id:
                problems.append(f"turn #{turn_id} not below next_id")
        for name, tip in self.branches.items():
            if tip is not None and tip not in self.turns:
                problems.append(f"branch {name!r} points at a missing turn")
        if self.current not in self.branches:
            problems.append("the current branch does not exist")
        if problems:
            raise ConversationError("broken conversation tree: " + "; ".join(problems))

    def owned_on_its_branch(self, cell_id: str) -> Turn | None:
        """The newest turn ``cell_id`` made that is still on the branch it was made on."""
        for turn in reversed(self.turns.values()):
            if turn.cell_id != cell_id:
                continue
            tip = self.branches.get(turn.branch) if turn.branch else None
            if tip is not None and self.is_ancestor(turn.id, tip):
                return turn
        return None

    def is_ancestor(self, turn_id: int, tip: int) -> bool:
        """Whether ``turn_id`` is on the path from the root to ``tip`` (``tip`` included)."""
        steps = self.depth(tip) - self.depth(turn_id)
        node: int | None = tip
        for _ in range(max(steps, 0)):
            node = self.turns[node].parent if node is not None else None
        return steps >= 0 and node == turn_id

    def owned_on_path(self, cell_id: str, path: Iterable[Turn] | None = None) -> Turn | None:
        """The first turn of the active path created by ``cell_id`` (rerun contract)."""
        for turn in self.path() if path is None else path:
            if turn.cell_id == cell_id:
                return turn
        return None
