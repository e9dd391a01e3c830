"""Saving and loading conversations: a versioned JSON document, written crash-safely.

Writes go to a temporary file in the same folder, are fsynced, then renamed over the
target (a killed kernel leaves the old file or the new one, never half of one), with mode
0600. No key or header is ever part of a conversation, so none can reach the file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbconvo._errors import PersistenceError
from nbconvo._tree import ConversationTree, Turn

if TYPE_CHECKING:
    from nbconvo._conversation import Conversation
    from nbconvo._session import Session

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
)
_TURN_NAMES = tuple(f.name for f in fields(Turn))
_TURN_FIELDS = set(_TURN_NAMES)


def tree_to_dict(tree: ConversationTree) -> dict[str, Any]:
    return {
        # A shallow dict per turn: its fields are JSON values already, and
        # dataclasses.asdict's deep copy was most of an autosave's cost.
        "turns": [
            {name: getattr(turn, name) for name in _TURN_NAMES} for turn in tree.turns.values()
        ],
        "branches": dict(tree.branches),
        "current": tree.current,
        "next_id": tree.next_id,
    }


def tree_from_dict(data: dict[str, Any]) -> ConversationTree:
    tree = ConversationTree(branches={}, children={None: []})
    for raw in data["turns"]:
        turn = Turn(**{k: v for k, v in raw.items() if k in _TURN_FIELDS})
        tree.turns[turn.id] = turn
        tree.children.setdefault(turn.id, [])
    for turn in tree.turns.values():  # children in creation (id) order: versions keep numbers
        tree.children.setdefault(turn.parent, []).append(turn.id)
    for kids in tree.children.values():
        kids.sort()
    tree.branches = {str(k): v for k, v in data["branches"].items()}
    tree.current = data["current"]
    tree.next_id = int(data["next_id"])
    tree.check_invariants()
    return tree


def conversation_to_dict(convo: Conversation) -> dict[str, Any]:
    return {
        "name": convo.name,
        "settings": {key: getattr(convo, key) for key in _SETTINGS},
        "tree": tree_to_dict(convo.tree),
    }


def conversation_from_dict(data: dict[str, Any]) -> Conversation:
    from nbconvo._conversation import Conversation

    convo = Conversation(name=str(data["name"]), tree=tree_from_dict(data["tree"]))
    for key, value in data.get("settings", {}).items():
        if key in _SETTINGS:
            setattr(convo, key, value)
    return convo


def session_to_dict(session: Session) -> dict[str, Any]:
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


def read_document(path: Path) -> dict[str, Any]:
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
) -> tuple[dict[str, Conversation], str, list[tuple[str, ConversationTree]]]:
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


def save_session(session: Session, path: Path) -> Path:
    # No indent: json's C encoder serves only unindented output, ≈4× faster (autosave
    # rewrites the whole session after every turn).
    write_atomic(path, json.dumps(session_to_dict(session), ensure_ascii=False))
    return path


def load_session(session: Session, path: Path) -> None:
    """Replace the session's conversations with the file's; on any error, change nothing."""
    conversations, current, archived = session_parts_from_dict(read_document(path), str(path))
    listeners = {name: c.listeners for name, c in session.conversations.items()}
    session.conversations = conversations
    session.current_name = current
    session.archived = archived
    for name, convo in conversations.items():
        convo.listeners.extend(listeners.get(name, []))


def autosave_path(user_ns: dict[str, Any] | None = None) -> Path | None:
    """Where the session autosaves: NBCONVO_AUTOSAVE (a file, or "off"), else beside the
    notebook (JupyterLab tells the kernel its path) or in NBCONVO_HOME, else the cwd."""
    explicit = os.environ.get("NBCONVO_AUTOSAVE")
    if explicit:
        return None if explicit.lower() in ("off", "0", "false") else Path(explicit)
    notebook = (user_ns or {}).get("__session__") or os.environ.get("JPY_SESSION_NAME")
    stem = Path(str(notebook)).stem if notebook else "nbconvo-session"
    home = os.environ.get("NBCONVO_HOME")
    if home:
        return Path(home) / f"{stem}.nbconvo.json"
    if notebook and Path(str(notebook)).is_absolute():
        return Path(str(notebook)).with_suffix(".nbconvo.json")
    return Path.cwd() / f"{stem}.nbconvo.json"
