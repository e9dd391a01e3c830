"""nbconvo: multi-turn conversations with language models in Jupyter notebooks.

``%load_ext nbconvo`` registers ``%%turn`` and ``%convo``. In code cells,
``nbconvo.current()`` is the current ``Conversation``. Heavy dependencies (httpx,
tiktoken, llama-cpp-python, the widget) load on first use, not here.
"""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, Any

from nbconvo._conversation import Conversation, TurnOptions
from nbconvo._errors import (
    ConfigurationError,
    ContextWindowExceeded,
    ConversationError,
    NbconvoError,
    PersistenceError,
    ProviderError,
    ReplayMiss,
    StreamInterrupted,
    TurnInterrupted,
    UsageError,
)
from nbconvo._parts import ImagePart, TextPart
from nbconvo._session import SESSION
from nbconvo._stream import StreamSink
from nbconvo._tools import tool
from nbconvo._tree import ConversationTree, Turn

if TYPE_CHECKING:
    from nbconvo._magics import ConvoMagics
    from nbconvo._widget import ConvoWidget

__version__ = "0.1.0"

_MAGICS: ConvoMagics | None = None


def current() -> Conversation:
    """The current conversation (``%convo use NAME`` changes which)."""
    _ensure_cell_tracking()
    return SESSION.current()


def widget(conversation: Conversation | None = None) -> ConvoWidget:
    """The widget showing ``conversation``'s tree and meter (default: the current one);
    one per conversation, loaded on first use (anywidget)."""
    from nbconvo._widget import ConvoWidget

    return ConvoWidget.for_conversation(conversation or current())


def fork(n: int, name: str | None = None) -> str:
    """Fork the current conversation at turn ``n`` of its active path; returns the branch."""
    return current().fork(n, name)


def summarize() -> str:
    """The current conversation's key decisions so far, as bullets (changes nothing)."""
    return current().summarize()


def compact(keep: int = 2, name: str | None = None) -> str:
    """Compact the current conversation into a new branch; returns its name."""
    return current().compact(keep, name=name)


def _ensure_cell_tracking() -> None:
    # Used as a library inside IPython without %load_ext: still learn cell ids for reruns.
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and _MAGICS is None:
        load_ipython_extension(shell)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbconvo``: register the magics and the cell-id hook."""
    global _MAGICS
    from traitlets import TraitError

    from nbconvo._magics import ConvoMagics

    if _MAGICS is not None and _MAGICS.shell is ipython:
        return
    from nbconvo._settings import read_environment

    settings, problems = read_environment()  # the one time the environment is read
    SESSION.configure(settings)
    for problem in problems:
        print(f"nbconvo: {problem}", file=sys.stderr)
    try:
        magics = ConvoMagics(ipython)
    except TraitError as error:
        # A value `%config` rejected stays in the shell's config and would stop every
        # later load: drop the section, keep the defaults, say so in one line.
        ipython.config.pop("ConvoMagics", None)
        magics = ConvoMagics(ipython)
        print(f"nbconvo: ignored the ConvoMagics settings ({error})", file=sys.stderr)
    ipython.register_magics(magics)
    ipython.events.register("pre_run_cell", magics.tracker.pre_run_cell)
    _MAGICS = magics
    _close_at_exit()
    import nbconvo._conversation as _conversation

    _conversation.cell_context = _cell_context
    _configure_session(ipython)


_EXIT_HOOKED = False


def _close_at_exit() -> None:
    """When the kernel exits cleanly, close the store (SQLite folds its WAL file back into
    the database and removes it) and the HTTP client. Everything was committed already:
    this only tidies up."""
    global _EXIT_HOOKED
    if not _EXIT_HOOKED:
        import atexit

        atexit.register(SESSION.close)
        _EXIT_HOOKED = True


def _configure_session(ipython: Any) -> None:
    """The notebook's store (following renames), the cassette setting's cassette if
    there is one, and one line about an earlier session of this notebook if its store
    has one."""
    from nbconvo._notebook import NotebookLocator
    from nbconvo._store import store_path_for

    settings = SESSION.settings
    locator = NotebookLocator(ipython.user_ns, named=settings.notebook)
    SESSION.notebook = locator.path
    SESSION.locate_store = lambda: store_path_for(locator.path(), SESSION.settings)
    if settings.cassette:
        from pathlib import Path

        from nbconvo._cassette import Cassette
        from nbconvo._magics import notebook_name

        name = notebook_name(ipython.user_ns, settings)
        SESSION.set_cassette(Cassette(Path(settings.cassette), settings.cassette_mode, name))  # type: ignore[arg-type]
    if settings.load_notice:
        _announce_earlier_session()


def _announce_earlier_session() -> None:
    try:
        earlier = [s for s in SESSION.earlier_sessions() if s.turns]
    except NbconvoError as error:
        print(f"nbconvo: {error}")
        return
    for notice in SESSION.take_notices():
        print(f"nbconvo: {notice}")
    if earlier and not SESSION.conversations_with_turns():
        from nbconvo._render import earlier_session_line

        store = SESSION.writer().store
        latest = max(earlier, key=lambda s: s.updated_at)
        print(earlier_session_line(latest, len(earlier), store.path if store else None))


def unload_ipython_extension(ipython: Any) -> None:
    global _MAGICS
    if _MAGICS is None:
        return
    with contextlib.suppress(ValueError):
        ipython.events.unregister("pre_run_cell", _MAGICS.tracker.pre_run_cell)
    import nbconvo._conversation as _conversation

    _conversation.cell_context = _conversation._no_cell
    SESSION.locate_store = None
    SESSION.close()
    for kind in ("line", "cell"):
        for name in ("convo", "turn"):
            ipython.magics_manager.magics[kind].pop(name, None)
    _MAGICS = None


def _cell_context() -> tuple[str | None, object | None]:
    if _MAGICS is None:
        return None, None
    return _MAGICS.tracker.cell_id, _MAGICS.tracker.execution


__all__ = [
    "ConfigurationError",
    "ContextWindowExceeded",
    "Conversation",
    "ConversationError",
    "ConversationTree",
    "ImagePart",
    "NbconvoError",
    "PersistenceError",
    "ProviderError",
    "ReplayMiss",
    "StreamInterrupted",
    "StreamSink",
    "TextPart",
    "Turn",
    "TurnInterrupted",
    "TurnOptions",
    "UsageError",
    "compact",
    "current",
    "fork",
    "load_ipython_extension",
    "summarize",
    "tool",
    "unload_ipython_extension",
    "widget",
]
