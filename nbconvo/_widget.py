"""``ConvoWidget``: the conversation tree and context meter as an anywidget.

An edge module, imported only when a widget is first shown (``%convo``,
``nbconvo.widget()``), so ``%load_ext nbconvo`` never loads anywidget. One widget per
conversation: it listens to ``Conversation.listeners`` and keeps every display in step —
small state as synced traits, turns as custom messages (see ``_widget_protocol``). The
front end is ``js/``, bundled into ``nbconvo/static/`` at install time.
"""

from __future__ import annotations

import logging
import weakref
from pathlib import Path
from typing import Any, ClassVar

from nbconvo._conversation import Conversation
from nbconvo._errors import ConfigurationError, NbconvoError, UsageError
from nbconvo._events import ConversationEvent
from nbconvo._tree import ConversationTree
from nbconvo._widget_protocol import (
    ActionResultMessage,
    ErrorMessage,
    KernelMessage,
    NodeInfo,
    NodesMessage,
    ResetMessage,
    details,
    meter_info,
    node_info,
    snapshot,
)

STATIC = Path(__file__).parent / "static"
_BUNDLE = STATIC / "widget.js"
_STYLES = STATIC / "widget.css"

if not (_BUNDLE.is_file() and _STYLES.is_file()):
    raise ConfigurationError(
        f"the widget's front end is not built ({_BUNDLE} is missing): run `make setup`, "
        "or `npm ci && npm run build` in js/ (needs Node.js and npm)"
    )

import anywidget  # noqa: E402  (after the check: it reads the bundle when the class is made)
import traitlets  # noqa: E402

_log = logging.getLogger(__name__)


def cost_line(convo: Conversation) -> str:
    """The branch's and the tree's cost, for the meter line ("" while all is free)."""
    tree = convo.cost()
    if not tree.total and not tree.unpriced:
        return ""
    from nbconvo._cost import short

    if tree.unpriced == tree.turns:
        return "cost unknown"  # no turn has a price: said once
    return f"branch {short(convo.branch_cost())} · tree {short(tree)}"


class ConvoWidget(anywidget.AnyWidget):
    """The tree of one conversation, its meter, goal and budget; "switch/fork here"."""

    _esm = _BUNDLE
    _css = _STYLES

    name = traitlets.Unicode("").tag(sync=True)
    head = traitlets.Int(None, allow_none=True).tag(sync=True)
    branch = traitlets.Unicode("main").tag(sync=True)
    branches = traitlets.Dict().tag(sync=True)  # name → tip turn id (None: the root)
    meter = traitlets.Dict().tag(sync=True)  # a MeterInfo
    goal = traitlets.Unicode(None, allow_none=True).tag(sync=True)
    budget = traitlets.Int(None, allow_none=True).tag(sync=True)
    exchanges = traitlets.Int(0).tag(sync=True)
    cost = traitlets.Unicode("").tag(sync=True)  # "branch $0.12 · tree $0.40" ("": free)

    _instances: ClassVar[dict[int, ConvoWidget]] = {}  # by id(conversation), see for_conversation

    @classmethod
    def for_conversation(cls, convo: Conversation) -> ConvoWidget:
        """The widget of ``convo``, made on first use. The conversation is held weakly: when
        it is gone, its widget closes."""
        widget = cls._instances.get(id(convo))
        if widget is not None and widget.conversation is convo and widget.comm is not None:
            return widget
        widget = cls(convo)
        cls._instances[id(convo)] = widget
        weakref.finalize(convo, _conversation_gone, id(convo), weakref.ref(widget))
        _watch_cells()
        return widget

    def __init__(self, convo: Conversation, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._conversation = weakref.ref(convo)
        self._tree: ConversationTree = convo.tree
        self._next_id = 1  # turns with lower ids have been sent
        self._seq = 0
        self.name = convo.name
        self.on_msg(self._on_message)
        convo.listeners.append(self._on_change)
        self.refresh()

    @property
    def conversation(self) -> Conversation | None:
        return self._conversation()

    def __repr__(self) -> str:  # the text/plain fallback where widgets do not render
        convo = self.conversation
        return f"ConvoWidget({convo!r})" if convo is not None else "ConvoWidget(closed)"

    def close(self) -> None:
        convo = self.conversation
        if convo is not None and self._on_change in convo.listeners:
            convo.listeners.remove(self._on_change)
        if ConvoWidget._instances.get(id(convo)) is self:
            del ConvoWidget._instances[id(convo)]
        super().close()

    # --- kernel → front end ----------------------------------------------------------
    def refresh(self) -> None:
        """Send the turns the front end lacks, then sync the small state (traitlets sends
        only the values that changed): cheap when nothing changed."""
        convo = self.conversation
        if convo is None or self.comm is None:
            return
        self._catch_up(convo)
        with self.hold_sync():
            self.head = convo.tree.head
            self.branch = convo.branch
            self.branches = convo.branches
            self.meter = dict(meter_info(convo.meter))
            self.goal = convo.goal
            self.budget = convo.budget
            self.exchanges = convo.exchanges()
            self.cost = cost_line(convo)

    def _send_message(self, message: KernelMessage) -> None:
        self.send(message)

    def _catch_up(self, convo: Conversation) -> None:
        """Send the turns the front end has not seen (a reset first if the tree was replaced)."""
        tree = convo.tree
        if tree is not self._tree:
            self._tree, self._next_id = tree, 1
            self._seq += 1
            self._send_message(ResetMessage(kind="reset", seq=self._seq))
        # Turn ids only grow, so the new turns are the ids from _next_id on: O(new turns).
        nodes: list[NodeInfo] = [
            node_info(tree.turns[turn_id])
            for turn_id in range(self._next_id, tree.next_id)
            if turn_id in tree.turns
        ]
        self._next_id = max(self._next_id, tree.next_id)
        if nodes:
            self._seq += 1
            self._send_message(NodesMessage(kind="nodes", seq=self._seq, nodes=nodes))

    def _on_change(self, event: ConversationEvent) -> None:
        # A listener runs inside Conversation methods: a widget failure must not fail a turn.
        try:
            self.refresh()
        except Exception:
            _log.exception("nbconvo widget: could not update after %r", event)

    # --- front end → kernel ----------------------------------------------------------
    def _on_message(self, _widget: object, content: Any, _buffers: object) -> None:
        request_id = str(content.get("id", "")) if isinstance(content, dict) else ""
        try:
            self._answer(content, request_id)
        except NbconvoError as error:
            self._send_message(ErrorMessage(kind="error", id=request_id, message=str(error)))
        except Exception as error:  # still an answer: the view must not wait forever
            _log.exception("nbconvo widget: request failed")
            message = f"{type(error).__name__}: {error}"
            self._send_message(ErrorMessage(kind="error", id=request_id, message=message))

    def _answer(self, content: Any, request_id: str) -> None:
        convo = self.conversation
        if convo is None:
            raise ConfigurationError("this conversation no longer exists")
        kind = content.get("kind") if isinstance(content, dict) else None
        if kind == "snapshot-request":
            self.refresh()  # other views get the newest turns as a delta first
            self._send_message(snapshot(convo.tree, request_id, self._seq))
            return
        if kind not in ("details-request", "switch", "fork"):
            raise UsageError(f"unknown request {kind!r}")
        turn_id = content.get("turn")
        if not isinstance(turn_id, int) or isinstance(turn_id, bool):
            raise UsageError(f"bad request {kind!r}: the turn must be a turn id")
        if kind == "details-request":
            self._send_message(details(convo.tree, request_id, turn_id))
            return
        convo.tree.turn(turn_id)  # unknown id: one-line error, nothing changed
        if kind == "switch":
            branch = convo.switch(f"#{turn_id}")
        else:
            name = content.get("name") or None
            if name is not None and not isinstance(name, str):
                raise UsageError("bad request 'fork': the name must be text")
            branch = convo.fork_at(turn_id, name.strip() if name else None)
        self._send_message(
            ActionResultMessage(
                kind="action-result",
                id=request_id,
                action=kind,
                branch=branch,
                head=convo.tree.head,
            )
        )


def _conversation_gone(key: int, widget_ref: weakref.ref[ConvoWidget]) -> None:
    widget = widget_ref()
    if ConvoWidget._instances.get(key) is widget:
        del ConvoWidget._instances[key]
    if widget is not None:
        widget.close()


_WATCHING: set[int] = set()


def _watch_cells() -> None:
    """Goal, budget and window are plain attributes that notify no listener, and a tree can
    change without an event (a load): refresh every widget after each cell (nothing goes on
    the wire when nothing changed)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or id(shell) in _WATCHING:
        return
    shell.events.register("post_run_cell", _refresh_all)
    _WATCHING.add(id(shell))


def _refresh_all(*_args: object) -> None:
    for widget in list(ConvoWidget._instances.values()):
        try:
            widget.refresh()
        except Exception:
            _log.exception("nbconvo widget: refresh failed")


__all__ = ["ConvoWidget"]
