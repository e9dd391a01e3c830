"""Named conversations in one kernel, the current one, and where they are saved."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nbconvo._conversation import Conversation
from nbconvo._errors import ConversationError, NbconvoError, PersistenceError, UsageError
from nbconvo._events import ConversationEvent
from nbconvo._settings import Settings, process_settings
from nbconvo._tree import ConversationTree

if TYPE_CHECKING:
    import httpx

    from nbconvo._cassette import Cassette
    from nbconvo._document import ConversationRecord
    from nbconvo._store import SessionState, SessionStore, SessionSummary, StoreWriter

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")


@dataclass
class Session:
    conversations: dict[str, Conversation] = field(default_factory=dict)
    current_name: str = "default"
    archived: list[tuple[str, ConversationTree]] = field(default_factory=list)
    cassette: Cassette | None = None  # shared by every conversation
    # Where this notebook's store is (None: autosave off); asked before each save, so
    # the store follows a renamed notebook.
    locate_store: Callable[[], Path | None] | None = None
    notebook: Callable[[], str | None] | None = None
    autosave_error: str | None = None
    store_notice: str | None = None  # one line to show once (a damaged store moved aside)
    # Read from the environment when the extension loads; `%config ConvoMagics` changes it.
    settings: Settings = field(default_factory=process_settings)
    # Tools the user said may always run ("a" at the prompt, `--approve NAME`): the
    # kernel's life, never saved.
    approved_tools: set[str] = field(default_factory=set)
    _writer: StoreWriter | None = field(default=None, repr=False)
    _client: httpx.Client | None = field(default=None, repr=False)

    def http_client(self) -> httpx.Client:
        """The one HTTP client every provider of this kernel's conversations shares (its
        connection pool), made on first use and closed by ``close``."""
        if self._client is None or self._client.is_closed:
            import httpx

            self._client = httpx.Client()
        return self._client

    def configure(self, settings: Settings) -> None:
        """Use ``settings`` from now on; providers made under the old ones (their retries,
        the local model's window and kept states) are let go, and the next turn makes new
        ones."""
        old, self.settings = self.settings, settings
        if (old.max_retries, old.retry_max_wait, old.llama_n_ctx, old.local_cache_mb) != (
            settings.max_retries,
            settings.retry_max_wait,
            settings.llama_n_ctx,
            settings.local_cache_mb,
        ):
            for convo in self.conversations.values():
                convo.close_providers()

    def close(self) -> None:
        """The extension unloads: close the shared client and let the providers go (the
        next turn makes new ones), and the store's connection."""
        for convo in self.conversations.values():
            convo.close_providers()
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._writer is not None and self._writer.store is not None:
            with contextlib.suppress(Exception):  # at exit: nothing left to lose
                self._writer.store.close()
            self._writer.store = None

    def current(self) -> Conversation:
        if self.current_name not in self.conversations:
            self._adopt(Conversation(name=self.current_name))
        return self.conversations[self.current_name]

    def _adopt(self, convo: Conversation) -> Conversation:
        convo.cassette = self.cassette
        convo.http_client = self.http_client
        convo.settings = lambda: self.settings
        if self._autosave_listener not in convo.listeners:
            convo.listeners.append(self._autosave_listener)
        self.conversations[convo.name] = convo
        return convo

    def _autosave_listener(self, event: ConversationEvent) -> None:
        self.save_now()

    def conversations_with_turns(self) -> bool:
        return any(c.tree.turns for c in self.conversations.values())

    # --- the store -------------------------------------------------------------------
    def writer(self) -> StoreWriter:
        from nbconvo._store import StoreWriter

        if self._writer is None:
            self._writer = StoreWriter()
        return self._writer

    def open_store(self, target: Path | None = None) -> SessionStore | None:
        """The store this session writes to, opened at its current place (following a
        rename: the sessions of the store it had come along)."""
        target = target or (self.locate_store() if self.locate_store else None)
        if target is None:
            return None
        writer = self.writer()
        writer.notebook = self.notebook() if self.notebook else None
        if writer.store is not None and writer.store.path == target:
            return writer.store
        from nbconvo._store import SessionStore, legacy_autosave_for

        store, notice = SessionStore.open(target)
        legacy = legacy_autosave_for(target)
        if legacy.exists():
            notice = store.import_legacy(legacy) or notice
        previous = writer.store.path if writer.store is not None else None
        writer.attach(store, previous)
        if notice:
            self.store_notice = notice
        return store

    def save_now(self) -> Path | None:
        """Commit what changed to the notebook's store (see ``_store``). A failure is
        remembered and shown, never raised into the turn that triggered it (the turn is
        safe in memory, and the next change retries)."""
        try:
            store = self.open_store()
            if store is None:
                return None
            self.writer().save(self)
        except NbconvoError as error:
            self.autosave_error = f"autosave failed: {error}"
            return None
        self.autosave_error = None
        return store.path

    def take_notices(self) -> list[str]:
        """Lines about the store to show the user once (then forgotten), and a failing save."""
        notices = [self.store_notice] if self.store_notice else []
        self.store_notice = None
        if self.autosave_error:
            notices.append(self.autosave_error)
        return notices

    def earlier_sessions(self) -> list[SessionSummary]:
        """The store's sessions other than this kernel's, oldest first (numbered as
        `%convo sessions` shows them); opens the store only where one exists."""
        target = self.locate_store() if self.locate_store else None
        if target is None:
            return []
        from nbconvo._store import legacy_autosave_for

        if not target.exists() and not legacy_autosave_for(target).exists():
            return []
        store = self.open_store(target)
        if store is None:
            return []
        own = self.writer().session_id
        return [s for s in store.sessions() if s.id != own]

    def restore(self, number: int | None = None) -> SessionSummary:
        """Make an earlier session of this notebook the kernel's conversations: the
        latest with turns, or number ``number`` of `%convo sessions`."""
        target = self.locate_store() if self.locate_store else None
        if target is None:
            raise UsageError(
                "autosave is off, so there are no earlier sessions: load a file, `%convo load PATH`"
            )
        everything = self.earlier_sessions()
        store = self.writer().store
        if store is None:  # no store file yet: nothing was ever saved for this notebook
            raise PersistenceError(f"no earlier session in {target}: nothing to restore")
        if number is None:
            candidates = [s for s in everything if s.turns]
            if not candidates:
                raise PersistenceError(
                    f"no earlier session with turns in {target}: nothing to restore"
                )
            chosen = max(candidates, key=lambda s: s.updated_at)
        else:
            numbers = {s.number: s for s in store.sessions()}
            if number not in numbers:
                raise UsageError(
                    f"there is no session {number}: `%convo sessions` lists them "
                    f"({len(numbers)} in {target})"
                )
            chosen = numbers[number]
            if chosen.id == self.writer().session_id:
                raise UsageError(f"session {number} is this kernel's own: nothing to restore")
        self._replace(store.read(chosen.id))
        return chosen

    def save_to(self, path: Path) -> None:
        """Write the whole session to ``path`` as one portable JSON document."""
        from nbconvo._document import save_session

        save_session(self, path)

    def load(self, path: Path) -> None:
        """Load a portable file (``%convo save``), an autosave of nbconvo 0.1 (or its
        journal), or a store's latest session."""
        from nbconvo._document import journal_path, read_document, session_parts_from_dict
        from nbconvo._store import SessionState, SessionStore

        if path.name.endswith(".journal"):
            snapshot = path.with_name(path.name[: -len(".journal")])
            if journal_path(snapshot) == path and not snapshot.exists():
                raise PersistenceError(
                    f"{path} is the journal of {snapshot.name}, which is missing: "
                    "restore that file beside it and load it"
                )
            path = snapshot
        if path.suffix == ".db":
            self._replace(SessionStore.read_latest(path, exclude=self.writer().session_id))
            return
        conversations, current, archived = session_parts_from_dict(read_document(path), str(path))
        self._replace(SessionState(conversations, current, archived))

    def _replace(self, state: SessionState) -> None:
        """The kernel's conversations become ``state``'s; the ones it had are kept in the
        archive (and in the store), so nothing is lost."""
        listeners = {name: c.listeners for name, c in self.conversations.items()}
        kept = [(name, c.tree) for name, c in self.conversations.items()]
        self.archived = [*self.archived, *kept, *state.archived]
        self.conversations = {}
        for name, record in state.conversations.items():
            convo = conversation_from_record(record)
            convo.listeners.extend(
                listener
                for listener in listeners.get(name, [])
                if listener != self._autosave_listener
            )
            self._adopt(convo)
        self.current_name = state.current
        if self.locate_store is not None:
            self.writer().origins.update(state.origins)
        self.save_now()

    # --- conversations ---------------------------------------------------------------
    def set_cassette(self, cassette: Cassette | None) -> None:
        self.cassette = cassette
        for convo in self.conversations.values():
            convo.cassette = cassette

    def get(self, name: str | None) -> Conversation:
        if name is None:
            return self.current()
        if name not in self.conversations:
            known = ", ".join(sorted(self.conversations)) or "none yet"
            raise ConversationError(
                f"no conversation named {name!r} (known: {known}): "
                f"create it with `%convo new {name}`"
            )
        return self.conversations[name]

    def new(self, name: str, cell: str | None = None) -> Conversation:
        """A new conversation, made current. ``cell``, the id of the `%convo new` cell:
        its rerun (Run All) starts the conversation afresh, the old tree archived."""
        if not _NAME.match(name):
            raise UsageError(f"bad conversation name {name!r}: use letters, digits, '-', '_', '.'")
        existing = self.conversations.get(name)
        if existing is not None and cell is not None and existing.cell == cell:
            self.archived.append((name, existing.reset_tree()))
            self.current_name = name
            self.save_now()
            return existing
        if existing is not None:
            raise ConversationError(
                f"conversation {name!r} exists already: switch to it with `%convo use {name}`"
            )
        current = self.current() if self.conversations else None
        convo = Conversation(name=name, cell=cell)
        if current is not None:  # a new conversation starts with the current model settings
            convo.model, convo.base_url = current.model, current.base_url
        self._adopt(convo)
        self.current_name = name
        self.save_now()
        return convo

    def use(self, name: str) -> Conversation:
        convo = self.get(name)
        self.current_name = name
        self.save_now()
        return convo

    def reset(self, name: str | None = None) -> Conversation:
        """Start the conversation afresh; the old tree is kept in ``archived``."""
        convo = self.get(name)
        self.archived.append((convo.name, convo.reset_tree()))
        self.save_now()
        return convo


def conversation_from_record(record: ConversationRecord) -> Conversation:
    """A conversation as a file or the store held it, ready to go on."""
    convo = Conversation(name=record.name, tree=record.tree)
    for key, value in record.settings.items():
        setattr(convo, key, value)
    return convo


SESSION = Session()
