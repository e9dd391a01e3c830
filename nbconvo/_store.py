"""Saving and loading conversations: a versioned JSON document, written crash-safely.

Writes go to a temporary file in the same folder, are fsynced, then renamed over the
target (a killed kernel leaves the old file or the new one, never half of one), with mode
0600. No key or header is ever part of a conversation, so none can reach the file.
Autosave writes such a snapshot once, then appends what changed to a journal beside it
(``Autosaver``); loading applies the journal.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
import threading
import time
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


def turn_to_dict(turn: Turn) -> dict[str, Any]:
    # A shallow dict: a turn's fields are JSON values already, and dataclasses.asdict's
    # deep copy was most of an autosave's cost.
    return {name: getattr(turn, name) for name in _TURN_NAMES}


def settings_of(convo: Conversation) -> dict[str, Any]:
    return {key: getattr(convo, key) for key in _SETTINGS}


def tree_to_dict(tree: ConversationTree) -> dict[str, Any]:
    return {
        "turns": [turn_to_dict(turn) for turn in tree.turns.values()],
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
        "settings": settings_of(convo),
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
    notebook = (user_ns or {}).get("__session__") or os.environ.get("JPY_SESSION_NAME")
    return _autosave_path(
        os.environ.get("NBCONVO_AUTOSAVE") or "",
        str(notebook) if notebook else "",
        os.environ.get("NBCONVO_HOME") or "",
        os.getcwd(),
    )


@functools.lru_cache(maxsize=32)  # asked after every change: its inputs rarely change
def _autosave_path(explicit: str, notebook: str, home: str, cwd: str) -> Path | None:
    if explicit:
        return None if explicit.lower() in ("off", "0", "false") else Path(explicit)
    stem = Path(notebook).stem if notebook else "nbconvo-session"
    if home:
        return Path(home) / f"{stem}.nbconvo.json"
    if notebook and Path(notebook).is_absolute():
        return Path(notebook).with_suffix(".nbconvo.json")
    return Path(cwd) / f"{stem}.nbconvo.json"


# --- autosave: a snapshot plus an append-only journal ----------------------------------

JOURNAL_FORMAT = "nbconvo-journal"
_MIN_COMPACT_BYTES = 1024 * 1024


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


class _Mark:
    """What the files hold of one conversation: its tree object, next turn id, branch
    pointers, current branch and settings."""

    __slots__ = ("branch", "branches", "next_id", "settings", "tree")

    def __init__(self, convo: Conversation) -> None:
        tree = convo.tree
        self.tree = tree
        self.next_id = tree.next_id
        self.branches = dict(tree.branches)
        self.branch = tree.current
        self.settings = settings_of(convo)

    def change(self, convo: Conversation) -> dict[str, Any] | None:
        """The journal record of what moved since, or None if nothing did."""
        tree = convo.tree
        settings = settings_of(convo)
        if (
            tree.next_id == self.next_id
            and tree.current == self.branch
            and tree.branches == self.branches
            and settings == self.settings
        ):
            return None
        turns = tree.turns
        return {
            "name": convo.name,
            "settings": settings,
            "turns": [  # turns are never changed or deleted: only the new ones
                turn_to_dict(turns[i]) for i in range(self.next_id, tree.next_id) if i in turns
            ],
            "branches": dict(tree.branches),
            "branch": tree.current,
            "next_id": tree.next_id,
        }


class _Syncer:
    """fsyncs journal files on a daemon thread, so a turn does not wait for the disk.

    A request waits ``delay`` seconds before its fsync, so the lines of turns that follow
    in quick succession share one (a later fsync covers every earlier write)."""

    def __init__(self, delay: float = 0.2) -> None:
        self.delay = delay
        self._pending: dict[str, int] = {}  # journal id -> a duplicate of its descriptor
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None

    def sync(self, fd: int, key: str) -> None:
        with self._ready:
            if key in self._pending:
                return  # the fsync already waiting will cover this write
            # The thread owns a duplicate: closing the journal cannot race its fsync.
            self._pending[key] = os.dup(fd)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="nbconvo-autosave-sync", daemon=True
                )
                self._thread.start()
            self._ready.notify()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._pending:
                    self._ready.wait()
            time.sleep(self.delay)
            with self._ready:
                pending, self._pending = list(self._pending.values()), {}
            for duplicate in pending:
                try:
                    os.fsync(duplicate)
                except OSError:
                    pass  # the next snapshot fsyncs; a failed write is reported where it happens
                finally:
                    os.close(duplicate)


_SYNCER = _Syncer()


class Autosaver:
    """Autosave in a time that does not grow with the conversation.

    The first save (and any save after a structural change: a conversation added,
    reset or loaded, the archive grown, another path) writes the whole session
    atomically as a snapshot carrying a fresh journal id. After that each save appends
    one JSON line to ``<path>.journal``: the turns added since, and the branch pointers
    and settings that moved. The line reaches the operating system before the cell
    ends, so a killed kernel loses nothing that finished; a background thread fsyncs it
    (the snapshot itself is fsynced before it is renamed into place). When the journal
    outgrows the snapshot it is folded into a new snapshot, so the cost per turn stays
    constant. ``read_document`` applies the journal on load.
    """

    def __init__(self) -> None:
        self.path: Path | None = None
        self._base = ""
        self._snapshot_inode = 0
        self._fd: int | None = None
        self._marks: dict[str, _Mark] = {}
        self._archived = 0
        self._current = ""
        self._journal_bytes = 0
        self._snapshot_bytes = 0

    def save(self, session: Session, path: Path) -> None:
        if (
            path != self.path
            or self._fd is None
            or self._restructured(session)
            or self._files_moved(path, self._fd)
        ):
            self.snapshot(session, path)
            return
        changes = [
            change
            for name, convo in session.conversations.items()
            if (change := self._marks[name].change(convo)) is not None
        ]
        if not changes and session.current_name == self._current:
            return
        line = json.dumps(
            {"current": session.current_name, "conversations": changes}, ensure_ascii=False
        ).encode("utf-8")
        try:
            os.write(self._fd, line + b"\n")
        except OSError as error:
            self.close()
            raise PersistenceError(
                f"cannot write {journal_path(path)} ({error.strerror}): choose another folder "
                "with NBCONVO_HOME or `%convo save PATH`; nothing was lost in memory"
            ) from None
        _SYNCER.sync(self._fd, self._base)
        for change in changes:
            self._marks[change["name"]] = _Mark(session.conversations[change["name"]])
        self._current = session.current_name
        self._journal_bytes += len(line) + 1
        if self._journal_bytes > max(_MIN_COMPACT_BYTES, self._snapshot_bytes):
            self.snapshot(session, path)

    def snapshot(self, session: Session, path: Path) -> None:
        """Write the whole session with a new journal id, then start its empty journal."""
        self.close()
        base = os.urandom(8).hex()
        document = session_to_dict(session)
        document["journal"] = base
        text = json.dumps(document, ensure_ascii=False)
        write_atomic(path, text)  # from here on the old journal no longer applies
        header = json.dumps({"format": JOURNAL_FORMAT, "version": VERSION, "base": base})
        journal = journal_path(path)
        write_atomic(journal, header + "\n")
        try:
            self._fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except OSError as error:
            raise PersistenceError(f"cannot write {journal} ({error.strerror})") from None
        self.path, self._base = path, base
        self._snapshot_inode = os.stat(path).st_ino
        self._marks = {name: _Mark(c) for name, c in session.conversations.items()}
        self._archived = len(session.archived)
        self._current = session.current_name
        self._journal_bytes = 0
        self._snapshot_bytes = len(text)

    def _restructured(self, session: Session) -> bool:
        """What only a snapshot records changed: a conversation added or removed, a tree
        replaced (reset, load), the archive grown."""
        marks = self._marks
        return (
            len(session.archived) != self._archived
            or marks.keys() != session.conversations.keys()
            or any(marks[name].tree is not c.tree for name, c in session.conversations.items())
        )

    def _files_moved(self, path: Path, fd: int) -> bool:
        """True when the snapshot was deleted or replaced (another save, another kernel)
        or the journal deleted: lines appended now would not be read back."""
        try:
            return os.stat(path).st_ino != self._snapshot_inode or os.fstat(fd).st_nlink == 0
        except OSError:
            return True

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
