"""The session store: one SQLite database per notebook, holding every session that ever
ran on it.

A session is one kernel start. Its rows are keyed by a random session id, so a kernel
only ever inserts and updates its own rows: a new kernel, or a second kernel on the same
notebook, never overwrites an earlier one's conversations. Each change is one short
transaction committed before the cell ends (WAL journal, ``synchronous=NORMAL``: a
killed kernel loses nothing committed; a power cut may lose the last commits). Turns are
immutable once written, so a turn costs one insert whatever the history's length.

    sessions       one row per kernel start: when, where, the current conversation
    conversations  one row per conversation tree of a session (``archived`` once a reset
                   or a load replaced it): settings, branch pointers, current branch;
                   a tree restored from another session points at that one's rows
                   (``base_*``) instead of copying them, so restoring writes one row
    turns          one row per turn: its prompt, answer and cell source, and its other
                   fields as JSON

A damaged, foreign or newer-version database is moved aside (never overwritten) and a
new one started, with one line saying where it went. No key is part of a conversation,
so none can reach the file; the database and its WAL files are mode 0600.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbconvo._document import (
    ConversationLike,
    ConversationRecord,
    SessionLike,
    read_document,
    session_parts_from_dict,
    settings_of,
    tree_of,
    turn_fields,
    turn_to_dict,
)
from nbconvo._errors import PersistenceError
from nbconvo._settings import Settings
from nbconvo._tree import Turn

if TYPE_CHECKING:
    from nbconvo._tree import ConversationTree

SCHEMA_VERSION = 2  # 2: conversations.branch_cells (which cell made which branch)
APPLICATION_ID = 0x6E62636F  # "nbco": marks a database as an nbconvo store
SUFFIX = ".nbconvo.db"
BUSY_TIMEOUT_S = 30.0  # another kernel's transaction is short; wait for it, do not fail

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    notebook TEXT,
    host TEXT,
    pid INTEGER,
    current TEXT NOT NULL,
    origin TEXT NOT NULL DEFAULT 'kernel'
);
CREATE TABLE IF NOT EXISTS conversations (
    session TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    archived INTEGER NOT NULL DEFAULT 0,  -- 0: live, else its place in the archive
    position INTEGER NOT NULL DEFAULT 0,
    base_session TEXT,
    base_seq INTEGER,
    base_next_id INTEGER,
    settings TEXT NOT NULL,
    branches TEXT NOT NULL,
    branch TEXT NOT NULL,
    next_id INTEGER NOT NULL,
    branch_cells TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (session, seq)
);
CREATE TABLE IF NOT EXISTS turns (
    session TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id INTEGER NOT NULL,
    parent INTEGER,
    prompt TEXT NOT NULL,
    answer TEXT NOT NULL,
    source TEXT NOT NULL,
    meta TEXT NOT NULL,
    PRIMARY KEY (session, seq, id),
    FOREIGN KEY (session, seq) REFERENCES conversations(session, seq) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS imports (
    source TEXT PRIMARY KEY,
    session TEXT NOT NULL,
    imported_at REAL NOT NULL
);
"""

_TABLES = ("sessions", "conversations", "turns")
_NO_LIMIT = 2**62  # "id < this": every turn


def store_path_for(notebook: str | None, settings: Settings) -> Path | None:
    """Where a notebook's store lives: the autosave setting (NBCONVO_AUTOSAVE: a file, or
    "off"), else ``NAME.nbconvo.db`` in the home setting's folder (NBCONVO_HOME), else
    beside the notebook, else in the cwd."""
    explicit = settings.autosave or ""
    if explicit:
        if settings.autosave_off:
            return None
        path = Path(explicit)  # a name for nbconvo 0.1's autosave: the store goes beside it
        return path.with_suffix(".db") if path.suffix == ".json" else path
    stem = Path(notebook).stem if notebook else "nbconvo-session"
    home = settings.home
    if home:
        return Path(home) / f"{stem}{SUFFIX}"
    if notebook and Path(notebook).is_absolute():
        return Path(notebook).with_name(f"{stem}{SUFFIX}")
    return Path.cwd() / f"{stem}{SUFFIX}"


def legacy_autosave_for(path: Path) -> Path:
    """The autosave nbconvo 0.1 wrote for the same notebook (``NAME.nbconvo.json``)."""
    name = path.name[: -len(SUFFIX)] if path.name.endswith(SUFFIX) else path.stem
    return path.with_name(f"{name}.nbconvo.json")


@dataclass(frozen=True)
class SessionSummary:
    """One session of a store, as ``%convo sessions`` lists it."""

    number: int  # 1 = the oldest; stable, since sessions are only ever added
    id: str
    started_at: float
    updated_at: float
    turns: int
    branches: int
    conversations: int
    last_prompt: str
    origin: str
    notebook: str | None


@dataclass
class SessionState:
    """What a store holds of one session, ready to become the kernel's session."""

    conversations: dict[str, ConversationRecord]
    current: str
    archived: list[tuple[str, ConversationTree]]
    # id(tree) -> the (session, seq) rows it was read from: restoring copies them in SQL
    origins: dict[int, tuple[str, int]] = field(default_factory=dict)


class SessionStore:
    """An open store. Use ``SessionStore.open``; every write is one transaction."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self.db = connection

    # --- opening ---------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path) -> tuple[SessionStore, str | None]:
        """Open (or create) the store at ``path``. Returns it with a one-line notice when
        a damaged, foreign or newer file had to be moved aside first."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Created private before SQLite opens it: its WAL files take the same mode.
            os.close(os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600))
        except OSError as error:
            raise PersistenceError(
                f"cannot write in {path.parent} ({error.strerror}): choose another folder with "
                "NBCONVO_HOME or `%convo save PATH`; the conversation is intact in memory"
            ) from None
        problem = _problem_of(path)
        if problem is None:
            try:
                return cls._connect(path), None
            except sqlite3.DatabaseError as error:
                if _is_io_error(error):
                    raise _write_error(path, error) from None
                problem = f"damaged ({error})"
        aside = _move_aside(
            path, "newer" if problem.startswith("written by a newer") else "damaged"
        )
        notice = f"the conversation store {path} is {problem}: moved aside to {aside.name}"
        notice += (
            " (upgrade nbconvo, then `%convo load` that file); "
            if "newer" in problem
            else " (what it holds may be read with the sqlite3 tool); "
        )
        notice += "a new store was started"
        try:
            return cls._connect(path), notice
        except sqlite3.DatabaseError as error:
            raise _write_error(path, error) from None

    @classmethod
    def _connect(cls, path: Path) -> SessionStore:
        db = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if 0 < version < SCHEMA_VERSION:
                _migrate(db)
            elif version == 0:
                db.execute("BEGIN IMMEDIATE")  # two kernels creating it at once: one wins
                try:
                    if db.execute("PRAGMA user_version").fetchone()[0] == 0:
                        for statement in _SCHEMA.split(";"):
                            if statement.strip():
                                db.execute(statement)
                        db.execute(f"PRAGMA application_id={APPLICATION_ID}")
                        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            for suffix in ("-wal", "-shm"):
                side = path.with_name(path.name + suffix)
                if side.exists():
                    os.chmod(side, 0o600)
        except BaseException:
            db.close()
            raise
        return cls(path, db)

    @classmethod
    def read_latest(cls, path: Path, exclude: str = "") -> SessionState:
        """The latest session with turns (other than ``exclude``) of the store at
        ``path``, read without writing to it (``%convo load NAME.nbconvo.db``)."""
        if not path.exists():
            raise PersistenceError(f"no file at {path}: check the path")
        problem = _problem_of(path)
        if problem is not None:
            raise PersistenceError(f"{path} is {problem}; nothing was loaded")
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
        except sqlite3.Error as error:
            raise PersistenceError(f"cannot read {path} ({error})") from None
        store = cls(path, db)
        try:
            try:
                tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
            except sqlite3.Error as error:
                raise PersistenceError(f"cannot read {path} ({error})") from None
            if not tables:
                raise PersistenceError(f"{path} holds no session yet: nothing was loaded")
            candidates = [s for s in store.sessions() if s.turns and s.id != exclude]
            if not candidates:
                raise PersistenceError(f"{path} holds no session with turns: nothing was loaded")
            return store.read(max(candidates, key=lambda s: s.updated_at).id)
        finally:
            db.close()

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT: the write lock up front, so two kernels queue."""
        db = self.db
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise _write_error(self.path, error) from None
        try:
            yield db
            db.execute("COMMIT")
        except BaseException as error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if isinstance(error, sqlite3.Error):
                raise _write_error(self.path, error) from None
            raise

    # --- reading ---------------------------------------------------------------------
    def sessions(self) -> list[SessionSummary]:
        """Every session, oldest first."""
        db = self.db
        try:
            db.execute("BEGIN")
            sessions = db.execute(
                "SELECT id, started_at, updated_at, origin, notebook, current FROM sessions "
                "ORDER BY started_at, rowid"
            ).fetchall()
            convos: dict[str, list[tuple[int, str, int, str]]] = {}
            for sid, seq, name, archived, branches in db.execute(
                "SELECT session, seq, name, archived, branches FROM conversations ORDER BY seq"
            ):
                convos.setdefault(sid, []).append((seq, name, archived, branches))
            out = []
            for number, (sid, started, updated, origin, notebook, current) in enumerate(
                sessions, 1
            ):
                turns, branches, live, last = 0, 0, 0, ""
                for seq, name, archived, pointers in convos.get(sid, []):
                    segments = self._segments(sid, seq)
                    turns += sum(self._count(*segment) for segment in segments)
                    if not archived:
                        live += 1
                        branches += len(json.loads(pointers))
                        if name == current:
                            last = self._last_prompt(segments)
                out.append(
                    SessionSummary(
                        number=number,
                        id=sid,
                        started_at=started,
                        updated_at=updated,
                        turns=turns,
                        branches=branches,
                        conversations=live,
                        last_prompt=last,
                        origin=origin,
                        notebook=notebook,
                    )
                )
        except sqlite3.Error as error:
            raise PersistenceError(f"cannot read {self.path} ({error})") from None
        finally:
            if db.in_transaction:
                db.execute("COMMIT")
        return out

    def _segments(self, session_id: str, seq: int) -> list[tuple[str, int, int | None]]:
        """Where a conversation's turns are: its own rows, then, for a tree restored from
        another session, that tree's rows below the id it was restored at, and so on."""
        out: list[tuple[str, int, int | None]] = []
        key: tuple[str, int] = (session_id, seq)
        limit: int | None = None
        while key not in {(s, q) for s, q, _ in out}:
            out.append((key[0], key[1], limit))
            base = self.db.execute(
                "SELECT base_session, base_seq, base_next_id FROM conversations "
                "WHERE session = ? AND seq = ?",
                key,
            ).fetchone()
            if base is None or base[0] is None:
                break
            key = (base[0], base[1])
            limit = base[2] if limit is None else min(limit, base[2])
        return out

    def _count(self, session_id: str, seq: int, limit: int | None) -> int:
        count: int = self.db.execute(
            "SELECT count(*) FROM turns WHERE session = ? AND seq = ? AND id < ?",
            (session_id, seq, _NO_LIMIT if limit is None else limit),
        ).fetchone()[0]
        return count

    def _last_prompt(self, segments: list[tuple[str, int, int | None]]) -> str:
        for session_id, seq, limit in segments:  # the newest turns are in the first
            row = self.db.execute(
                "SELECT prompt FROM turns WHERE session = ? AND seq = ? AND id < ? "
                "ORDER BY id DESC LIMIT 1",
                (session_id, seq, _NO_LIMIT if limit is None else limit),
            ).fetchone()
            if row is not None:
                return str(row[0])
        return ""

    def read(self, session_id: str) -> SessionState:
        """The conversations of one session, as the kernel had them at its last save
        (read in one snapshot: a kernel still writing it cannot tear it)."""
        db = self.db
        try:
            db.execute("BEGIN")
            row = self.db.execute(
                "SELECT current FROM sessions WHERE id = ?", (session_id,)
            ).fetchone()
            if row is None:
                raise PersistenceError(f"{self.path} has no session {session_id}")
            convo_rows = self.db.execute(
                "SELECT seq, name, archived, settings, branches, branch, next_id, branch_cells "
                "FROM conversations WHERE session = ? ORDER BY archived, position, seq",
                (session_id,),
            ).fetchall()
            turn_rows = [
                (seq, *turn)
                for seq, *_ in convo_rows
                # oldest segment first, each by id: the turns in id order, as in memory
                for segment in reversed(self._segments(session_id, seq))
                for turn in db.execute(
                    "SELECT id, parent, prompt, answer, source, meta FROM turns "
                    "WHERE session = ? AND seq = ? AND id < ? ORDER BY id",
                    (segment[0], segment[1], _NO_LIMIT if segment[2] is None else segment[2]),
                )
            ]
        except sqlite3.Error as error:
            raise PersistenceError(f"cannot read {self.path} ({error})") from None
        finally:
            if db.in_transaction:
                db.execute("COMMIT")
        conversations: dict[str, ConversationRecord] = {}
        origins: dict[int, tuple[str, int]] = {}
        archived: list[tuple[str, ConversationTree]] = []
        try:
            turns: dict[int, list[Turn]] = {}
            # One decode for every turn's small fields: ≈3× faster than one per row.
            metas = json.loads("[" + ",".join(row[6] for row in turn_rows) + "]")
            for (seq, turn_id, parent, prompt, answer, source, _), meta in zip(
                turn_rows, metas, strict=True
            ):
                meta = turn_fields(meta)
                turns.setdefault(seq, []).append(
                    Turn(
                        id=turn_id,
                        parent=parent,
                        prompt=prompt,
                        answer=answer,
                        source=source,
                        **meta,
                    )
                )
            for seq, name, is_archived, settings, branches, branch, next_id, cells in convo_rows:
                tree = tree_of(turns.get(seq, []), json.loads(branches), branch, next_id)
                tree.branch_cells = json.loads(cells)
                origins[id(tree)] = (session_id, seq)
                if is_archived:
                    archived.append((name, tree))
                    continue
                conversations[name] = ConversationRecord(name, tree, json.loads(settings))
        except Exception as error:  # any structural problem: one line, nothing changed
            raise PersistenceError(
                f"session {session_id} in {self.path} is damaged ({type(error).__name__}: "
                f"{error}); nothing was loaded"
            ) from None
        return SessionState(conversations, str(row[0]), archived, origins)

    # --- importing the autosave of nbconvo 0.1 -----------------------------------------
    def import_legacy(self, source: Path) -> str | None:
        """Copy an old ``.nbconvo.json`` autosave (with its journal) in as an earlier
        session, once. The file itself is only read. Returns a notice if it cannot be."""
        key = str(source.resolve())
        try:
            if self.db.execute("SELECT 1 FROM imports WHERE source = ?", (key,)).fetchone():
                return None
            conversations, current, archived = session_parts_from_dict(
                read_document(source), str(source)
            )
        except PersistenceError as error:
            return f"the old autosave could not be imported: {error}"
        except sqlite3.Error as error:
            raise PersistenceError(f"cannot read {self.path} ({error})") from None
        session_id = f"import-{uuid.uuid4().hex[:12]}"
        started = source.stat().st_mtime
        with self.transaction() as db:
            db.execute(
                "INSERT INTO sessions (id, started_at, updated_at, notebook, host, pid, current, "
                "origin) VALUES (?, ?, ?, ?, NULL, NULL, ?, ?)",
                (session_id, started, started, None, current, f"imported from {source.name}"),
            )
            seq = 0
            for convo in conversations.values():
                seq += 1
                _insert_conversation(
                    db, session_id, seq, convo.name, convo.settings, convo.tree, 0, seq
                )
            for order, (name, tree) in enumerate(archived, 1):
                seq += 1
                _insert_conversation(db, session_id, seq, name, None, tree, order)
            db.execute(
                "INSERT INTO imports (source, session, imported_at) VALUES (?, ?, ?)",
                (key, session_id, time.time()),
            )
        return None

    def adopt_sessions_from(self, other: Path, except_id: str) -> None:
        """Copy the sessions of another store in (a renamed notebook brings its history
        along); sessions already here are left as they are. ``other`` is only read."""
        if not other.exists() or _problem_of(other) is not None:
            return
        with self.transaction() as db:
            db.execute("ATTACH DATABASE ? AS previous", (f"file:{other}?mode=ro",))
            for table in _TABLES:
                column = "id" if table == "sessions" else "session"
                db.execute(
                    f"INSERT OR IGNORE INTO {table} SELECT * FROM previous.{table} "
                    f"WHERE {column} != ?",
                    (except_id,),
                )
        self.db.execute("DETACH DATABASE previous")


def _insert_conversation(
    db: sqlite3.Connection,
    session_id: str,
    seq: int,
    name: str,
    settings: dict[str, Any] | None,
    tree: ConversationTree,
    archived: int,
    position: int = 0,
    origin: tuple[str, int] | None = None,
) -> None:
    base = (*origin, tree.next_id) if origin is not None else (None, None, None)
    db.execute(
        "INSERT INTO conversations (session, seq, name, archived, position, base_session, "
        "base_seq, base_next_id, settings, branches, branch, next_id, branch_cells) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            session_id,
            seq,
            name,
            archived,
            position,
            *base,
            json.dumps(settings or {}, ensure_ascii=False),
            json.dumps(tree.branches, ensure_ascii=False),
            tree.current,
            tree.next_id,
            json.dumps(tree.branch_cells, ensure_ascii=False),
        ),
    )
    if origin is None:
        _insert_turns(db, session_id, seq, tree.turns.values())
    # else: a tree read from the store. Its turns are those rows, which never change, so
    # the new row points at them (ids below its next id) rather than copying them.


_INSERT_TURN = (
    "INSERT INTO turns (session, seq, id, parent, prompt, answer, source, meta) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_OWN_COLUMNS = frozenset({"id", "parent", "prompt", "answer", "source"})


def _insert_turns(db: sqlite3.Connection, session_id: str, seq: int, turns: Iterable[Turn]) -> None:
    db.executemany(
        _INSERT_TURN,
        [
            (
                session_id,
                seq,
                t.id,
                t.parent,
                t.prompt,
                t.answer,
                t.source,
                json.dumps(
                    {k: v for k, v in turn_to_dict(t).items() if k not in _OWN_COLUMNS},
                    ensure_ascii=False,
                ),
            )
            for t in turns
        ],
    )


# --- writing one kernel's session ------------------------------------------------------


@dataclass
class _Mark:
    """What the store holds of one conversation tree: its row and how far it got."""

    seq: int
    tree: ConversationTree
    next_id: int
    branches: dict[str, int | None]
    branch: str
    settings: dict[str, Any]
    branch_cells: dict[str, str] = field(default_factory=dict)


@dataclass
class StoreWriter:
    """Writes one kernel's session into its notebook's store, change by change.

    Only rows keyed by ``session_id`` are ever written. Marks record what is committed;
    they move only after a commit, so a failed save (full disk, read-only folder) is
    retried whole by the next one."""

    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: float = field(default_factory=time.time)
    store: SessionStore | None = None
    notebook: str | None = None
    _marks: dict[str, _Mark] = field(default_factory=dict)
    _archived: list[ConversationTree] = field(default_factory=list)  # written as archived
    _archived_count: int = 0
    # id(tree) -> (session, seq) of rows a restored tree was read from (see read())
    origins: dict[int, tuple[str, int]] = field(default_factory=dict)
    _next_seq: int = 1
    _current: str | None = None
    _row_written: bool = False

    def attach(self, store: SessionStore, previous: Path | None = None) -> None:
        """Write to ``store`` from now on (the first save, or the notebook was renamed:
        ``previous`` is the store it had, whose sessions come along)."""
        if self.store is not None and self.store is not store:
            self.store.close()
        self.store = store
        self._marks, self._archived, self._next_seq = {}, [], 1
        self._archived_count, self._current, self._row_written = -1, None, False
        if previous is not None and previous != store.path:
            store.adopt_sessions_from(previous, self.session_id)

    def dirty(self, session: SessionLike) -> bool:
        """Whether anything differs from what was committed (no database access)."""
        if not self._row_written or session.current_name != self._current:
            return True
        marks = self._marks
        if list(marks) != list(session.conversations):
            return True
        for name, convo in session.conversations.items():
            mark, tree = marks[name], convo.tree
            if (
                mark.tree is not tree
                or tree.next_id != mark.next_id
                or tree.current != mark.branch
                or tree.branches != mark.branches
                or tree.branch_cells != mark.branch_cells
                or settings_of(convo) != mark.settings
            ):
                return True
        return len(session.archived) != self._archived_count

    def save(self, session: SessionLike) -> bool:
        """Commit what changed since the last save; False when nothing had."""
        store = self.store
        if store is None:
            raise PersistenceError("no store attached")
        if not self.dirty(session):
            return False
        sid, now = self.session_id, time.time()
        marks, archived, seq = dict(self._marks), list(self._archived), self._next_seq
        origins = self.origins
        with store.transaction() as db:
            if not self._row_written:
                # Our own rows only: a store that has them already (the notebook was
                # renamed back) gets them replaced with what the kernel holds now.
                db.execute("DELETE FROM sessions WHERE id = ?", (sid,))
                db.execute(
                    "INSERT INTO sessions (id, started_at, updated_at, notebook, host, pid, "
                    "current, origin) VALUES (?, ?, ?, ?, ?, ?, ?, 'kernel')",
                    (
                        sid,
                        self.started_at,
                        now,
                        self.notebook,
                        socket.gethostname(),
                        os.getpid(),
                        session.current_name,
                    ),
                )
            counter = len(archived)
            # Trees a reset or a load replaced, in the kernel's former order: archived.
            for name, mark in list(marks.items()):
                convo = session.conversations.get(name)
                if convo is None or convo.tree is not mark.tree:
                    counter += 1
                    _retire(db, sid, mark, counter)
                    archived.append(mark.tree)
                    del marks[name]
            for position, (name, convo) in enumerate(session.conversations.items()):
                kept = marks.get(name)
                if kept is not None:
                    marks[name] = _update(db, sid, kept, convo)
                    continue
                _insert_conversation(
                    db,
                    sid,
                    seq,
                    name,
                    settings_of(convo),
                    convo.tree,
                    0,
                    position,
                    origins.get(id(convo.tree)),
                )
                marks[name] = _mark_of(seq, convo)
                seq += 1
            known = {id(m.tree) for m in marks.values()} | {id(t) for t in archived}
            for name, tree in session.archived:  # loaded with a file's or store's archive
                if id(tree) not in known:
                    counter += 1
                    _insert_conversation(
                        db, sid, seq, name, None, tree, counter, 0, origins.get(id(tree))
                    )
                    archived.append(tree)
                    seq += 1
            order = list(session.conversations)
            if list(marks) != order:  # the kernel's order of conversations, kept on restore
                marks = {name: marks[name] for name in order}
                db.executemany(
                    "UPDATE conversations SET position = ? WHERE session = ? AND seq = ?",
                    [(i, sid, marks[name].seq) for i, name in enumerate(order)],
                )
            db.execute(
                "UPDATE sessions SET updated_at = ?, current = ?, notebook = ? WHERE id = ?",
                (now, session.current_name, self.notebook, sid),
            )
        self.origins = {}
        # Committed: only now do the marks move.
        self._marks, self._archived, self._next_seq = marks, archived, seq
        self._archived_count = len(session.archived)
        self._current, self._row_written = session.current_name, True
        return True


def _retire(db: sqlite3.Connection, session_id: str, mark: _Mark, order: int) -> None:
    """Write what a replaced tree gained since its last save, then archive it (``order``:
    its place among the session's archived trees)."""
    _update(db, session_id, mark, None)
    db.execute(
        "UPDATE conversations SET archived = ? WHERE session = ? AND seq = ?",
        (order, session_id, mark.seq),
    )


def _mark_of(seq: int, convo: ConversationLike) -> _Mark:
    tree = convo.tree
    return _Mark(
        seq,
        tree,
        tree.next_id,
        dict(tree.branches),
        tree.current,
        settings_of(convo),
        dict(tree.branch_cells),
    )


def _update(
    db: sqlite3.Connection, session_id: str, mark: _Mark, convo: ConversationLike | None
) -> _Mark:
    """Write a tree's turns added since ``mark`` and its moved pointers; the new mark
    (``mark`` itself when nothing moved). ``convo`` None: the tree is being archived."""
    tree = mark.tree
    settings = settings_of(convo) if convo is not None else mark.settings
    if (
        tree.next_id == mark.next_id
        and tree.current == mark.branch
        and tree.branches == mark.branches
        and settings == mark.settings
        and tree.branch_cells == mark.branch_cells
    ):
        return mark
    turns = tree.turns
    new = [turns[i] for i in range(mark.next_id, tree.next_id) if i in turns]
    if new:
        _insert_turns(db, session_id, mark.seq, new)
    db.execute(
        "UPDATE conversations SET settings = ?, branches = ?, branch = ?, next_id = ?, "
        "branch_cells = ? WHERE session = ? AND seq = ?",
        (
            json.dumps(settings, ensure_ascii=False),
            json.dumps(tree.branches, ensure_ascii=False),
            tree.current,
            tree.next_id,
            json.dumps(tree.branch_cells, ensure_ascii=False),
            session_id,
            mark.seq,
        ),
    )
    return _Mark(
        mark.seq,
        tree,
        tree.next_id,
        dict(tree.branches),
        tree.current,
        settings,
        dict(tree.branch_cells),
    )


def _migrate(db: sqlite3.Connection) -> None:
    """Bring an older store up to SCHEMA_VERSION, one step per version, in one
    transaction (two kernels opening it at once: the second finds it done)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version < 2:
            db.execute(
                "ALTER TABLE conversations ADD COLUMN branch_cells TEXT NOT NULL DEFAULT '{}'"
            )
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


# --- damage ----------------------------------------------------------------------------

_HEADER = b"SQLite format 3\x00"


def _problem_of(path: Path) -> str | None:
    """Why the file at ``path`` is not a usable store, or None (an empty file is fine)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(100)
    except FileNotFoundError:
        return None
    except OSError as error:
        return f"unreadable ({error.strerror})"
    if not head:
        return None
    if not head.startswith(_HEADER) or len(head) < 100:
        return "not an SQLite database (damaged or another kind of file)"
    application_id = int.from_bytes(head[68:72], "big")
    user_version = int.from_bytes(head[60:64], "big")
    if application_id not in (0, APPLICATION_ID):
        return "an SQLite database of another program"
    if user_version > SCHEMA_VERSION:
        return (
            f"written by a newer nbconvo (store version {user_version}; this one reads "
            f"up to {SCHEMA_VERSION})"
        )
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
        try:
            result = db.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            db.close()
    except sqlite3.DatabaseError as error:
        if _is_io_error(error):
            return None  # busy or locked by another kernel: not damage
        return f"damaged ({error})"
    if result != "ok":
        return f"damaged ({result})"
    return None


def _is_io_error(error: sqlite3.Error) -> bool:
    text = str(error).lower()
    return any(
        word in text
        for word in ("locked", "busy", "readonly", "read-only", "disk is full", "disk i/o")
    )


def _move_aside(path: Path, why: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.{why}-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.{why}-{stamp}-{n}")
    try:
        os.rename(path, target)
        for suffix in ("-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            if side.exists():
                os.rename(side, target.with_name(target.name + suffix))
        os.close(os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600))
    except OSError as error:
        raise PersistenceError(
            f"the conversation store {path} is unusable and could not be moved aside "
            f"({error.strerror}): move it away by hand; the conversation is intact in memory"
        ) from None
    return target


def _write_error(path: Path, error: sqlite3.Error) -> PersistenceError:
    reason = str(error)
    if "readonly" in reason or "read-only" in reason or "unable to open" in reason:
        fix = "make the folder writable or set NBCONVO_HOME to another folder"
    elif "full" in reason:
        fix = "free some disk space or set NBCONVO_HOME to another folder"
    elif "locked" in reason or "busy" in reason:
        fix = "another kernel holds the store; the next change retries"
    else:
        fix = "set NBCONVO_HOME to another folder or `%convo save PATH`"
    return PersistenceError(
        f"cannot save to {path} ({reason}): {fix}; the conversation is intact in memory "
        "and the next change retries"
    )
