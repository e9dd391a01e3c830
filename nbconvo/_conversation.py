"""A conversation: the tree plus its settings, and ``ask`` — one turn end to end.

No IPython here: display and cell ids come in through arguments and callbacks, so the
same code serves ``%%turn``, ``Conversation.ask`` and ``nbconvo run``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from nbconvo._errors import NbconvoError, ProviderError, TurnInterrupted, UsageError
from nbconvo._tokens import count_messages, count_text
from nbconvo._tree import MAIN, ConversationTree, Status, Turn
from nbconvo._types import ChatRequest, Finish, Message, Notice, ProviderEvent, TextDelta, Usage
from nbconvo.providers import Provider, create_provider, default_model_spec

Listener = Callable[[str, dict[str, Any]], None]


def _no_cell() -> tuple[str | None, object | None]:
    return None, None


# Set by the IPython extension: the (cell id, execution) of the cell running now, so that
# ``Conversation.ask`` in a code cell follows the same rerun contract as ``%%turn``.
cell_context: Callable[[], tuple[str | None, object | None]] = _no_cell


@dataclass
class TurnOptions:
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    fork: int | None = None
    cell_id: str | None = None
    execution: object | None = None  # identifies one cell execution (several asks share it)
    source: str = ""


@dataclass
class StreamSink:
    """Where a streaming turn reports: text as it arrives, notes, and the end."""

    on_text: Callable[[str], None] = lambda text: None
    on_notice: Callable[[str], None] = lambda text: None


@dataclass
class Conversation:
    """A tree of turns with its model, system prompt, goal and budget."""

    name: str = "default"
    tree: ConversationTree = field(default_factory=ConversationTree)
    model: str | None = None
    base_url: str | None = None
    system: str | None = None
    goal: str | None = None
    budget: int | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    listeners: list[Listener] = field(default_factory=list, repr=False)
    _providers: dict[tuple[str, str | None], Provider] = field(default_factory=dict, repr=False)
    _last_execution: tuple[str | None, object] | None = field(default=None, repr=False)

    # --- reading -------------------------------------------------------------------
    @property
    def turns(self) -> list[Turn]:
        return list(self.tree.turns.values())

    @property
    def path(self) -> list[Turn]:
        return self.tree.path()

    @property
    def head(self) -> Turn | None:
        head = self.tree.head
        return None if head is None else self.tree.turns[head]

    @property
    def branches(self) -> dict[str, int | None]:
        return dict(self.tree.branches)

    @property
    def branch(self) -> str:
        return self.tree.current

    def model_spec(self, override: str | None = None) -> str:
        return override or self.model or default_model_spec()

    def system_text(self) -> str | None:
        parts = [self.system] if self.system else []
        if self.goal:
            parts.append(f"The goal of this conversation: {self.goal}")
        return "\n\n".join(parts) or None

    def messages(self, path: list[Turn] | None = None) -> list[Message]:
        """The active path as provider-neutral messages (no system text)."""
        out: list[Message] = []
        for turn in self.path if path is None else path:
            if not turn.answer:  # an exchange that produced nothing had no effect
                continue
            out.append({"role": "user", "content": turn.prompt})
            out.append({"role": "assistant", "content": turn.answer})
        return out

    # --- changing ------------------------------------------------------------------
    def _changed(self, kind: str, **payload: Any) -> None:
        for listener in list(self.listeners):
            listener(kind, payload)

    def fork(self, position: int, name: str | None = None) -> str:
        branch = self.tree.fork(position, name)
        self._changed("fork", branch=branch)
        return branch

    def switch(self, target: str) -> str:
        branch = self.tree.switch(target)
        self._changed("switch", branch=branch)
        return branch

    def undo(self) -> Turn:
        turn = self.tree.undo()
        self._changed("undo", turn=turn.id)
        return turn

    def provider(self, spec: str) -> Provider:
        key = (spec, self.base_url if spec == self.model else None)
        if key not in self._providers:
            self._providers[key] = create_provider(spec, base_url=key[1])
        return self._providers[key]

    # --- one turn ------------------------------------------------------------------
    def plan(self, text: str, options: TurnOptions) -> tuple[int | None, Turn | None, str | None]:
        """Where the next turn goes, without changing anything:
        (parent id, turn being rerun or None, fork branch name or None)."""
        if options.fork is not None:
            parent = self.tree.at_position(options.fork)
            return parent, None, self.tree.default_fork_name()
        path = self.path
        same_execution = options.execution is not None and self._last_execution == (
            options.cell_id,
            options.execution,
        )
        if options.cell_id and not same_execution:
            rerun = self.tree.owned_on_path(options.cell_id, path)
            if rerun is not None:
                return rerun.parent, rerun, None
        return self.tree.head, None, None

    def request(self, text: str, options: TurnOptions | None = None) -> ChatRequest:
        """The exact request the next turn would send."""
        options = options or TurnOptions()
        spec = self.model_spec(options.model)
        prefix, _, model = spec.partition(":")
        parent, _, _ = self.plan(text, options)
        history = self.messages(self.tree.ancestry(parent))
        return ChatRequest(
            provider=prefix,
            model=model,
            messages=(*history, {"role": "user", "content": text}),
            system=self.system_text(),
            temperature=options.temperature
            if options.temperature is not None
            else self.temperature,
            max_tokens=options.max_tokens if options.max_tokens is not None else self.max_tokens,
            seed=self.seed,
        )

    def ask(
        self,
        text: str,
        *,
        sink: StreamSink | None = None,
        options: TurnOptions | None = None,
        **kwargs: Any,
    ) -> Turn:
        """Send one turn and record it. Keyword options as in ``TurnOptions``."""
        if options is None:
            if "cell_id" not in kwargs:
                kwargs["cell_id"], kwargs["execution"] = cell_context()
            options = TurnOptions(**kwargs)
        sink = sink or StreamSink()
        if not text.strip():
            raise UsageError("the turn is empty: write a prompt in the cell below %%turn")
        spec = self.model_spec(options.model)
        provider = self.provider(spec)  # unknown provider or missing key: nothing changed yet
        request = self.request(text, options)
        parent, rerun, fork_name = self.plan(text, options)
        started = time.time()
        parts: list[str] = []
        usage: Usage | None = None
        finish: Finish | None = None
        events: Iterator[ProviderEvent] = provider.stream(request)
        try:
            for event in events:
                if isinstance(event, TextDelta):
                    parts.append(event.text)
                    sink.on_text(event.text)
                elif isinstance(event, Usage):
                    usage = event
                elif isinstance(event, Finish):
                    finish = event
                    if event.notice:
                        sink.on_notice(event.notice)
                elif isinstance(event, Notice):
                    sink.on_notice(event.text)
        except KeyboardInterrupt:
            close = getattr(events, "close", None)
            if close is not None:
                close()
            turn = self._record(
                text,
                "".join(parts),
                "interrupted",
                request,
                options,
                spec,
                usage,
                started,
                parent,
                rerun,
                fork_name,
                None,
            )
            raise TurnInterrupted(
                f"interrupted: the partial answer is kept as turn {self.tree.label(turn.id)} "
                "(interrupted); the next turn continues from it"
            ) from None
        except ProviderError as error:
            partial = "".join(parts) or error.partial
            if not partial:
                raise  # nothing arrived: nothing changed
            turn = self._record(
                text,
                partial,
                "error",
                request,
                options,
                spec,
                usage,
                started,
                parent,
                rerun,
                fork_name,
                str(error),
            )
            raise ProviderError(
                f"{error} — the partial answer is kept as turn {self.tree.label(turn.id)} (error)",
                partial=partial,
                status=error.status,
            ) from None
        if finish is not None and finish.reason == "length":
            sink.on_notice("the answer was cut at the max-tokens limit")
        return self._record(
            text,
            "".join(parts),
            "ok",
            request,
            options,
            spec,
            usage,
            started,
            parent,
            rerun,
            fork_name,
            None,
        )

    def _record(
        self,
        text: str,
        answer: str,
        status: Status,
        request: ChatRequest,
        options: TurnOptions,
        spec: str,
        usage: Usage | None,
        started: float,
        parent: int | None,
        rerun: Turn | None,
        fork_name: str | None,
        error: str | None,
    ) -> Turn:
        kept: str | None = None
        if fork_name is not None:
            self.tree.fork(options.fork or 0, fork_name)
        elif rerun is not None:
            kept = self.tree.rewind_for_rerun(rerun.id)
        if self.tree.head != parent:  # defensive: plan and tree agree unless changed meanwhile
            raise NbconvoError("the conversation changed while the turn ran; run the cell again")
        if usage is not None:
            input_tokens, output_tokens, exact = usage.input_tokens, usage.output_tokens, True
        else:
            messages = request.all_messages()
            input_tokens, output_tokens, exact = count_messages(messages), count_text(answer), False
        params = {
            k: v
            for k, v in (("temperature", request.temperature), ("max_tokens", request.max_tokens))
            if v is not None
        }
        turn = self.tree.append(
            Turn(
                id=self.tree.new_turn_id(),
                parent=parent,
                prompt=text,
                answer=answer,
                status=status,
                source=options.source,
                provider=spec.partition(":")[0],
                model=spec.partition(":")[2],
                params=params,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                usage_exact=exact,
                started_at=started,
                finished_at=time.time(),
                cell_id=options.cell_id,
                error=error,
            )
        )
        self._last_execution = (options.cell_id, options.execution)
        self._changed("turn", turn=turn.id, kept_branch=kept, fork=fork_name)
        return turn

    def reset_tree(self) -> ConversationTree:
        old = self.tree
        self.tree = ConversationTree()
        self._last_execution = None
        self._changed("reset")
        return old

    def _repr_markdown_(self) -> str:
        from nbconvo._render import transcript_markdown

        return transcript_markdown(self)

    def __repr__(self) -> str:
        return (
            f"<Conversation {self.name!r}: {len(self.tree)} turns, branch {self.branch!r}, "
            f"head {self.tree.label(self.tree.head) if self.tree.head else '(root)'}>"
        )


__all__ = ["MAIN", "Conversation", "StreamSink", "TurnOptions"]
