"""The portable session document: one versioned JSON file (``%convo save`` / ``load``).

Writes go to a temporary file in the same folder, are fsynced, then renamed over the
target (a killed kernel leaves the old file or the new one, never half of one), with mode
0600. No key or header is ever part of a conversation, so none can reach the file.
The autosave of nbconvo 0.1 (a snapshot plus a ``.journal`` of changes) is read here
too, so such files still load; the autosave itself is now ``_store``'s SQLite database.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

from nbconvo._errors import PersistenceError
from nbconvo._parts import parts_from_json, parts_to_json
from nbconvo._tree import ConversationTree, Turn


class ConversationLike(Protocol):
    """What persistence reads of a conversation (the engine's ``Conversation``): its
    name and tree; ``settings_of`` reads the settings by name."""

    name: str
    tree: ConversationTree


class SessionLike(Protocol):
    """What persistence reads of a kernel's session (``_session.Session``)."""

    @property
    def current_name(self) -> str: ...
    @property
    def conversations(self) -> Mapping[str, ConversationLike]: ...
    @property
    def archived(self) -> Sequence[tuple[str, ConversationTree]]: ...


FORMAT = "nbconvo"
VERSION = 1
_SETTINGS = (
    "model",
    "base_url",
    "system",
    "goal",
    "budget",
    "window",
    "temperature",
    "max_tokens",
    "seed",
    "cell",
    "tools",
    "effort",
    "cache",
    "cache_ttl",
    "cache_key",
    "cost_budget",
    "prices",
)
_TURN_NAMES = tuple(f.name for f in fields(Turn))
_TURN_FIELDS = set(_TURN_NAMES)
_PART_FIELDS = ("prompt_parts", "answer_parts")


def turn_to_dict(turn: Turn) -> dict[str, Any]:
    # A shallow dict: a turn's fields are JSON values already (but its parts), and
    # dataclasses.asdict's deep copy was most of an autosave's cost.
    out = {name: getattr(turn, name) for name in _TURN_NAMES}
    for name in _PART_FIELDS:
        out[name] = parts_to_json(out[name]) if out[name] else []
    return out


def turn_fields(raw: dict[str, Any]) -> dict[str, Any]:
    """A turn's saved fields ready for ``Turn(**…)``: parts decoded, unknown fields (a
    later version's) left out."""
    fields = (
        raw if raw.keys() <= _TURN_FIELDS else {k: v for k, v in raw.items() if k in _TURN_FIELDS}
    )
    for name in _PART_FIELDS:
        value = fields.get(name)
        if value is not None and not isinstance(value, tuple):
            fields = {**fields, name: parts_from_json(value)}
    return fields


def settings_of(convo: object) -> dict[str, Any]:
    return {key: getattr(convo, key) for key in _SETTINGS}


def tree_to_dict(tree: ConversationTree) -> dict[str, Any]:
    return {
        "turns": [turn_to_dict(turn) for turn in tree.turns.values()],
        "branches": dict(tree.branches),
        "current": tree.current,
        "next_id": tree.next_id,
        "branch_cells": dict(tree.branch_cells),
    }


def tree_from_dict(data: dict[str, Any]) -> ConversationTree:
    turns = [Turn(**turn_fields(raw)) for raw in data["turns"]]
    tree = tree_of(turns, data["branches"], data["current"], data["next_id"])
    tree.branch_cells = {str(k): str(v) for k, v in (data.get("branch_cells") or {}).items()}
    return tree


def tree_of(
    turns: list[Turn], branches: dict[str, Any], current: str, next_id: int
) -> ConversationTree:
    """A tree from its turns and pointers, checked (a broken one raises)."""
    tree = ConversationTree(branches={}, children={None: []})
    by_id = tree.turns
    children = tree.children
    for turn in turns:
        by_id[turn.id] = turn
        children[turn.id] = []
    for turn in by_id.values():  # children in creation (id) order: versions keep numbers
        children.setdefault(turn.parent, []).append(turn.id)
    for kids in children.values():
        kids.sort()
    tree.branches = {str(k): v for k, v in branches.items()}
    tree.current = current
    tree.next_id = int(next_id)
    tree.check_invariants()
    return tree


def conversation_to_dict(convo: ConversationLike) -> dict[str, Any]:
    return {
        "name": convo.name,
        "settings": settings_of(convo),
        "tree": tree_to_dict(convo.tree),
    }


@dataclass
class ConversationRecord:
    """A conversation as a file or the store holds it: its name, tree and settings (the
    session makes it a ``Conversation`` again)."""

    name: str
    tree: ConversationTree
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.settings = {k: v for k, v in self.settings.items() if k in _SETTINGS}


def conversation_from_dict(data: dict[str, Any]) -> ConversationRecord:
    return ConversationRecord(
        str(data["name"]), tree_from_dict(data["tree"]), dict(data.get("settings") or {})
    )


def session_to_dict(session: SessionLike) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "current": session.current_name,
        "conversations": [conversation_to_dict(c) for c in session.conversations.values()],
        "archived": [{"name": n, "tree": tree_to_dict(t)} for n, t in session.archived],
    }


def migrate(data: Any, source: str) -> dict[str, Any]:
    """Bring an older document up to ``VERSION``; refuse foreign or newer ones."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PersistenceError(f"{source} is not an nbconvo file: nothing was loaded")
    version = data.get("version")
    if not isinstance(version, int) or version < 1:
        raise PersistenceError(f"{source} has no valid format version: nothing was loaded")
    if version > VERSION:
        raise PersistenceError(
            f"{source} was written by a newer nbconvo (format {version}; this one reads up to "
            f"{VERSION}): upgrade nbconvo to load it; nothing was loaded"
        )
    # Version 1 is the first format; later versions add steps here, one per version.
    return data


def read_snapshot(path: Path) -> dict[str, Any]:
    """The document at ``path`` as written, without its autosave journal."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PersistenceError(f"no file at {path}: check the path") from None
    except (OSError, UnicodeDecodeError) as error:
        raise PersistenceError(f"cannot read {path}: {error}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise PersistenceError(
            f"{path} is corrupt (not valid JSON: {error.msg} at line {error.lineno}); "
            "nothing was loaded"
        ) from None
    return migrate(data, str(path))


def session_parts_from_dict(
    data: dict[str, Any], source: str
) -> tuple[dict[str, ConversationRecord], str, list[tuple[str, ConversationTree]]]:
    try:
        conversations = {}
        for raw in data["conversations"]:
            convo = conversation_from_dict(raw)
            conversations[convo.name] = convo
        archived = [(str(a["name"]), tree_from_dict(a["tree"])) for a in data.get("archived", [])]
        current = str(data.get("current") or next(iter(conversations), "default"))
    except Exception as error:  # any structural problem: one message, nothing changed
        raise PersistenceError(
            f"{source} is corrupt ({type(error).__name__}: {error}); nothing was loaded"
        ) from None
    return conversations, current, archived


def write_atomic(path: Path, text: str) -> None:
    """Temp file in the same folder, fsync, rename; mode 0600."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as error:
        raise PersistenceError(
            f"cannot write in {folder} ({error.strerror}): choose another folder with "
            "NBCONVO_HOME or `%convo save PATH`; nothing was lost in memory"
        ) from None
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as error:
        Path(temp).unlink(missing_ok=True)
        raise PersistenceError(f"cannot write {path} ({error.strerror})") from None


def save_session(session: SessionLike, path: Path) -> Path:
    # No indent: json's C encoder serves only unindented output, ≈4× faster.
    write_atomic(path, json.dumps(session_to_dict(session), ensure_ascii=False))
    return path


# --- the autosave of nbconvo 0.1: a snapshot plus an append-only journal (read only) -----

JOURNAL_FORMAT = "nbconvo-journal"


def journal_path(path: Path) -> Path:
    """The journal that extends the snapshot at ``path``."""
    return path.with_name(path.name + ".journal")


def read_document(path: Path) -> dict[str, Any]:
    """The session document at ``path`` with its autosave journal applied (if any)."""
    data = read_snapshot(path)
    base = data.get("journal")
    journal = journal_path(path)
    if not base or not journal.exists():
        return data
    try:
        raw = journal.read_bytes()
    except OSError as error:
        raise PersistenceError(f"cannot read {journal}: {error.strerror}") from None
    lines = raw.split(b"\n")
    # A line ends with "\n" once it is whole: a kernel killed mid-write leaves at most the
    # last one partial, and that turn had not finished saving.
    complete = lines[:-1]
    try:
        head = json.loads(complete[0]) if complete else None
    except ValueError:
        head = None
    if not isinstance(head, dict) or head.get("format") != JOURNAL_FORMAT:
        return data  # written before its header: holds nothing yet
    if head.get("base") != base:
        return data  # a journal of an older snapshot: the snapshot has it all
    convos = {c.get("name"): c for c in data.get("conversations", []) if isinstance(c, dict)}
    for number, line in enumerate(complete[1:], 2):
        try:
            entry = json.loads(line)
            _apply_entry(data, convos, entry)
        except Exception as error:  # any damage: one message, nothing loaded
            raise PersistenceError(
                f"{journal} is corrupt at line {number} ({type(error).__name__}); move it "
                f"away to load the last snapshot alone; nothing was loaded"
            ) from None
    return data


def _apply_entry(
    data: dict[str, Any], convos: dict[Any, dict[str, Any]], entry: dict[str, Any]
) -> None:
    data["current"] = entry["current"]
    for change in entry["conversations"]:
        convo = convos[change["name"]]
        convo["settings"] = change["settings"]
        tree = convo["tree"]
        tree["turns"].extend(change["turns"])
        tree["branches"] = change["branches"]
        tree["current"] = change["branch"]
        tree["next_id"] = change["next_id"]
