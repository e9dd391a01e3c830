"""A conversation: the tree plus its settings, and ``ask`` — one turn end to end.

No IPython here: display and cell ids come in through arguments and callbacks, so the
same code serves ``%%turn``, ``Conversation.ask`` and ``nbconvo run``.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import nbconvo._compact as _compact
from nbconvo._cost import Cost, CostLedger
from nbconvo._errors import (
    ContextWindowExceeded,
    NbconvoError,
    ProviderError,
    ReplayMiss,
    TurnInterrupted,
    UsageError,
)
from nbconvo._events import (
    Compacted,
    ConversationEvent,
    Forked,
    Listener,
    SettingChanged,
    Switched,
    TreeReset,
    TurnAdded,
    Undone,
)
from nbconvo._images import rule_for
from nbconvo._meter import TokenLedger, TokenMeter
from nbconvo._models import Price, context_window, price_for, takes_effort
from nbconvo._parts import (
    Content,
    Part,
    Parts,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    content_of,
    sendable,
    text_of,
)
from nbconvo._settings import Settings, process_settings
from nbconvo._stream import Collected, StreamSink, collect
from nbconvo._tokens import count_content, count_messages, encoding_for
from nbconvo._toolloop import Toolbox
from nbconvo._tools import Shape
from nbconvo._tree import MAIN, ConversationTree, Status, Turn
from nbconvo._types import EFFORTS, CachePolicy, ChatRequest, Message
from nbconvo.providers import (
    Provider,
    create_provider,
    default_model_spec,
    refuse_what_it_cannot_take,
    split_spec,
)

if TYPE_CHECKING:
    import httpx

    from nbconvo._cassette import Cassette


def _no_cell() -> tuple[str | None, object | None]:
    return None, None


# Set by the IPython extension: the (cell id, execution) of the cell running now, so that
# ``Conversation.ask`` in a code cell follows the same rerun contract as ``%%turn``.
cell_context: Callable[[], tuple[str | None, object | None]] = _no_cell


def answer_messages(parts: Sequence[Part]) -> list[Message]:
    """An answer's parts as messages: the assistant's text and tool calls, and after each
    round of calls a ``tool`` message with their results."""
    out: list[Message] = []
    group: list[Part] = []
    role: str = "assistant"
    for part in parts:
        kind = "tool" if isinstance(part, ToolResultPart) else "assistant"
        if kind != role and group:
            out.append({"role": role, "content": content_of(tuple(group))})  # type: ignore[typeddict-item]
            group = []
        role = kind
        group.append(part)
    if group:
        out.append({"role": role, "content": content_of(tuple(group))})  # type: ignore[typeddict-item]
    return out


def answered(
    calls: Sequence[ToolCallPart], results: Sequence[ToolResultPart], why: str
) -> list[ToolResultPart]:
    """``results`` and, for each call without one, an error result saying ``why``: every
    call in a kept turn has its result, as every provider requires of the history."""
    done = {r.call_id for r in results}
    return list(results) + [
        ToolResultPart(c.call_id, why, is_error=True, name=c.name)
        for c in calls
        if c.call_id not in done
    ]


def prompt_of(text: str | Sequence[Part]) -> Parts:
    """A prompt as parts: a string is one text part."""
    if isinstance(text, str):
        return (TextPart(text),)
    parts = tuple(text)
    for part in parts:
        if not isinstance(part, Part.__args__):
            raise UsageError(
                f"a prompt is text or a list of parts (TextPart, ImagePart, …), not "
                f"{type(part).__name__}"
            )
    return parts


@dataclass
class TurnOptions:
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    fork: int | None = None
    cell_id: str | None = None
    execution: object | None = None  # identifies one cell execution (several asks share it)
    source: str = ""
    tools: Toolbox | None = None  # functions the model may call, and who approves a call
    effort: str | None = None  # low, medium or high: a reasoning model's effort this turn
    schema: Shape | None = None  # the answer is JSON of this shape


@dataclass
class _Plan:
    """Where the next turn goes, decided before anything changes."""

    parent: int | None
    rerun: Turn | None = None
    branch: str | None = None  # switch to this branch before the rerun
    fork_position: int | None = None
    fork_name: str | None = None


_ANNOUNCED_SETTINGS = frozenset(
    {"model", "system", "goal", "budget", "window", "tools", "effort", "cache", "cost_budget",
     "prices"}
)  # fmt: skip


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
    window: int | None = None  # overrides the known-models table
    temperature: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    cell: str | None = None  # the `%convo new` cell that made it: its rerun starts it afresh
    tools: list[str] | None = None  # `%convo tools`: names offered (None: every @nbconvo.tool)
    effort: str | None = None  # `%convo effort`: a reasoning model's effort for every turn
    cache: bool = True  # ask providers to cache the prompt's prefix (`%convo cache off`)
    cache_ttl: str = "auto"  # "5m", "1h", or "auto": 1h once the user's pauses pass 5 min
    # Names the tree for providers that route a cache by key (OpenAI's prompt_cache_key).
    cache_key: str = field(default_factory=lambda: "nbconvo-" + uuid.uuid4().hex[:16])
    cost_budget: float | None = None  # `%convo budget --cost D`: dollars for the whole tree
    prices: dict[str, list[float]] = field(default_factory=dict)  # `%convo price`: $/M tokens
    auto_compact: float | None = None  # compact before a turn past this fraction of the window
    auto_compact_keep: int = 2
    listeners: list[Listener] = field(default_factory=list, repr=False)
    cassette: Cassette | None = field(default=None, repr=False)  # when recording or replaying
    # The session's shared HTTP client, made on first use; None: each provider its own.
    http_client: Callable[[], httpx.Client] | None = field(default=None, repr=False)
    # The session's settings (read once when the extension loads); alone, the environment's.
    settings: Callable[[], Settings] = field(default=process_settings, repr=False)
    _providers: dict[tuple[str, str | None], Provider] = field(default_factory=dict, repr=False)
    _last_execution: tuple[str | None, object] | None = field(default=None, repr=False)
    _ledger: TokenLedger = field(default_factory=TokenLedger, repr=False)

    def __setattr__(self, name: str, value: Any) -> None:
        # Settings users see (footer, widget, autosave) announce their change.
        object.__setattr__(self, name, value)
        if name in _ANNOUNCED_SETTINGS and "_ledger" in self.__dict__:
            self._changed(SettingChanged(name))

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
        return override or self.model or default_model_spec(self.settings())

    def base_system_text(self) -> str | None:
        """System prompt and pinned goal: sent with every request."""
        parts = [self.system] if self.system else []
        if self.goal:
            parts.append(f"The goal of this conversation: {self.goal}")
        return "\n\n".join(parts) or None

    def system_text(self, path: list[Turn] | None = None) -> str | None:
        """The base system text plus the summary a compacted path starts with."""
        path = self.path if path is None else path
        base = self.base_system_text()
        summary = next((t.answer for t in path if t.kind == "summary"), None)
        if not summary:
            return base
        note = f"Summary of the earlier conversation:\n{summary}"
        return f"{base}\n\n{note}" if base else note

    def messages(self, path: list[Turn] | None = None) -> list[Message]:
        """The active path as provider-neutral messages (no system text)."""
        out: list[Message] = []
        for turn in self.path if path is None else path:
            if turn.kind != "turn" or not (turn.answer or turn.answer_parts):
                continue  # summaries go in the system text
            # The text itself unless the turn has parts (inline: once per turn of history).
            prompt = sendable(turn.prompt_parts) if turn.prompt_parts else turn.prompt
            out.append({"role": "user", "content": prompt})
            if turn.answer_parts:
                out.extend(answer_messages(turn.answer_parts))
            else:
                out.append({"role": "assistant", "content": turn.answer})
        return out

    def context_window(self, spec: str | None = None) -> int | None:
        if self.window:
            return self.window
        try:
            spec = self.model_spec(spec)
            provider: Provider | None = self.provider(spec)
        except NbconvoError:
            return None
        return context_window(spec, provider)

    def meter_at(
        self,
        head: int | None,
        pending: Content | None = None,
        spec: str | None = None,
        *,
        bound: bool = False,
    ) -> TokenMeter:
        """The meter with ``head`` as the last turn and ``pending`` as the next prompt.
        A summary turn's text is counted as that turn's own tokens (see ``_meter``);
        ``bound`` bounds the system text and prompt from above instead of counting them."""
        try:
            model = self.model_spec(spec)
        except NbconvoError:
            model = ""
        encoding, images = encoding_for(model), rule_for(model.partition(":")[0])
        if (self._ledger.encoding, self._ledger.images) != (encoding, images):
            self._ledger = TokenLedger(encoding=encoding, images=images)  # count afresh
        return self._ledger.reading(
            self.tree,
            head,
            system=self.base_system_text(),
            pending=pending,
            window=self.context_window(spec),
            model=model,
            bound=bound,
        )

    @property
    def meter(self) -> TokenMeter:
        """Tokens the next request will use (before its prompt) against the window."""
        return self.meter_at(self.tree.head)

    def exchanges(self) -> int:
        """Exchanges on the active path: turns with an answer (one interrupted before any
        text was not an exchange, and is not sent as history either)."""
        return self.tree.exchanges(self.tree.head)

    # --- changing ------------------------------------------------------------------
    def _changed(self, event: ConversationEvent) -> None:
        for listener in list(self.listeners):
            listener(event)

    def fork(self, position: int, name: str | None = None, *, cell: str | None = None) -> str:
        """Branch at ``position`` of the active path; ``cell``, the cell id of a `%convo
        fork` cell, makes its rerun re-create the branch (the old one kept as NAME@k)."""
        branch = self.tree.fork(position, name, cell)
        self._changed(Forked(branch))
        return branch

    def fork_at(self, turn_id: int | None, name: str | None = None) -> str:
        branch = self.tree.fork_at(turn_id, name)
        self._changed(Forked(branch))
        return branch

    def switch(self, target: str) -> str:
        branch = self.tree.switch(target)
        self._changed(Switched(branch))
        return branch

    def undo(self) -> Turn:
        turn = self.tree.undo()
        self._changed(Undone(turn.id))
        return turn

    def provider(self, spec: str) -> Provider:
        base_url = self.base_url if spec == self.model else None
        if self.cassette is not None:
            split_spec(spec)  # an unknown provider fails here, with or without a cassette
            from nbconvo._cassette import CassetteProvider

            cached = self._providers.get((spec, base_url))
            return CassetteProvider(
                spec,
                (lambda: cached) if cached else (lambda: self._live_provider(spec, base_url)),
                self.cassette,
            )
        return self._live_provider(spec, base_url)

    def _live_provider(self, spec: str, base_url: str | None) -> Provider:
        key = (spec, base_url)
        if key not in self._providers:
            client = self.http_client() if self.http_client is not None else None
            self._providers[key] = create_provider(
                spec, base_url=base_url, client=client, settings=self.settings()
            )
        return self._providers[key]

    def close_providers(self) -> None:
        """Let go of the providers (and the connections of those that own theirs)."""
        providers, self._providers = self._providers, {}
        for provider in providers.values():
            close = getattr(provider, "close", None)
            if close is not None:
                close()

    # --- one turn ------------------------------------------------------------------
    def _plan(self, options: TurnOptions) -> _Plan:
        if options.fork is not None:
            parent = self.tree.at_position(options.fork)
            return _Plan(
                parent, fork_position=options.fork, fork_name=self.tree.default_fork_name()
            )
        same_execution = options.execution is not None and self._last_execution == (
            options.cell_id,
            options.execution,
        )
        if options.cell_id and not same_execution:
            # A new version on the branch the cell's turn was made on (switching there),
            # else of its turn on the active path.
            rerun = self.tree.owned_on_its_branch(options.cell_id)
            if rerun is not None:
                return _Plan(rerun.parent, rerun=rerun, branch=rerun.branch)
            rerun = self.tree.owned_on_path(options.cell_id)
            if rerun is not None:
                return _Plan(rerun.parent, rerun=rerun)
        return _Plan(self.tree.head)

    def request(
        self, text: str | Sequence[Part], options: TurnOptions | None = None
    ) -> ChatRequest:
        """The exact request the next turn would send."""
        options = options or TurnOptions()
        return self._request(prompt_of(text), options, self._plan(options).parent)

    def _request(self, prompt: Parts, options: TurnOptions, parent: int | None) -> ChatRequest:
        spec = self.model_spec(options.model)
        prefix, _, model = spec.partition(":")
        path = self.tree.ancestry(parent)
        temperature = options.temperature if options.temperature is not None else self.temperature
        return ChatRequest(
            provider=prefix,
            model=model,
            messages=(*self.messages(path), {"role": "user", "content": sendable(prompt)}),
            system=self.system_text(path),
            temperature=temperature,
            max_tokens=options.max_tokens if options.max_tokens is not None else self.max_tokens,
            seed=self.seed,
            tools=tuple(t.spec for t in options.tools.tools.values()) if options.tools else (),
            schema=options.schema.schema if options.schema else None,
            effort=options.effort or self.effort,  # type: ignore[arg-type]
            cache=CachePolicy(self.cache_key, self._cache_ttl()) if self.cache else None,
        )

    def _cache_ttl(self) -> Literal["5m", "1h"]:
        """The cache lifetime to ask for: the setting, or with "auto" one hour once the
        user's last two pauses between turns both passed five minutes (a cache of five
        minutes would have expired by the next turn; a write for an hour costs more)."""
        if self.cache_ttl in ("5m", "1h"):
            return self.cache_ttl  # type: ignore[return-value]
        made = sorted(
            (t for t in self.tree.turns.values() if t.finished_at), key=lambda t: t.started_at
        )
        pauses = [b.started_at - a.finished_at for a, b in itertools.pairwise(made)]
        return "1h" if len(pauses) >= 2 and min(pauses[-2:]) > 300 else "5m"

    def price_table(self) -> dict[str, Price]:
        """The prices `%convo price` set, by model spec."""
        from nbconvo._cost import user_price

        return {spec: user_price(values, "") for spec, values in self.prices.items()}

    def cost(self, turns: Sequence[Turn] | None = None) -> Cost:
        """What ``turns`` cost (default: the whole tree), in dollars."""
        from nbconvo._cost import total_cost

        if turns is None:
            return self._cost_ledger().tree(self.tree)
        return total_cost(turns, self.price_table())

    def branch_cost(self) -> Cost:
        """What the active path cost, root to head."""
        return self._cost_ledger().through(self.tree, self.tree.head)

    def _cost_ledger(self) -> CostLedger:
        key = (id(self.tree), repr(sorted(self.prices.items())))
        ledger = self.__dict__.get("_costs")
        if ledger is None or ledger[0] != key:
            ledger = (key, CostLedger(self.price_table()))
            self.__dict__["_costs"] = ledger
        return ledger[1]

    def check_fits(self, text: Content, parent: int | None, spec: str) -> None:
        # Most prompts fit by far: when even an upper bound of the new text fits, the
        # turn need not wait for the tokenizer to load (a provider that reports usage
        # then never needs it).
        if self.meter_at(parent, pending=text, spec=spec, bound=True).state != "over":
            return
        meter = self.meter_at(parent, pending=text, spec=spec)
        if meter.state == "over":
            raise ContextWindowExceeded(
                f"the next request is ≈{meter.used:,} tokens but the window of {spec} is "
                f"{meter.window:,}: run `%convo compact` to summarize earlier turns "
                "(or `%convo window N` if the window is larger); nothing was sent"
            )

    def ask(
        self,
        text: str | Sequence[Part],
        *,
        sink: StreamSink | None = None,
        options: TurnOptions | None = None,
        **kwargs: Any,
    ) -> Turn:
        """Send one turn and record it: ``text``, or parts (text, images, …). Keyword
        options as in ``TurnOptions``; ``tools=[f, g]`` offers notebook functions (each
        call asked about on stdin, unless ``approve="all"`` or ``approve=["f"]``)."""
        sink = sink or StreamSink()
        if options is None:
            if "cell_id" not in kwargs:
                kwargs["cell_id"], kwargs["execution"] = cell_context()
            approve = kwargs.pop("approve", None)
            if kwargs.get("tools") is not None and not isinstance(kwargs["tools"], Toolbox):
                kwargs["tools"] = self.toolbox(kwargs["tools"], approve, sink.on_notice)
            options = TurnOptions(**kwargs)
        prompt = prompt_of(text)
        text = text_of(prompt)
        if not text.strip() and all(isinstance(p, TextPart) for p in prompt):
            raise UsageError("the turn is empty: write a prompt in the cell below %%turn")
        spec = self.model_spec(options.model)
        refuse_what_it_cannot_take(spec, [{"role": "user", "content": sendable(prompt)}])
        provider = self.provider(spec)  # unknown provider or missing key: nothing changed yet
        plan = self._plan(options)
        sent = sendable(prompt)  # with the data parts' text, and the images
        if self._should_auto_compact(sent, plan, spec):
            branch = self.compact(keep=self.auto_compact_keep, model=options.model)
            sink.on_notice(f"context was past {self.auto_compact:.0%}: compacted into {branch}")
            plan = self._plan(options)
        self.check_fits(sent, plan.parent, spec)
        self._check_effort(options.effort or self.effort, spec)
        request = self._request(prompt, options, plan.parent)
        self._check_cost_budget(request, spec)
        started = time.time()
        got = Collected()
        try:
            request = self._stream_with_tools(provider, request, options, sink, got)
        except KeyboardInterrupt:
            got.next_step(answered(got.calls, [], "interrupted by the user before it ran"))
            turn = self._record(prompt, got, "interrupted", request, options, spec, started, plan)
            label = self.tree.label(turn.id)
            if not got.answer_parts():
                raise TurnInterrupted(
                    f"interrupted before any answer: turn {label} keeps the prompt with no "
                    "answer and is not sent as history; run the cell again to ask"
                ) from None
            raise TurnInterrupted(
                f"interrupted: the partial answer is kept as turn {label} (interrupted); "
                "the next turn continues from it"
            ) from None
        except ProviderError as error:
            if not got.parts and error.partial:
                got.parts.append(error.partial)
            if not got.answer_parts():
                raise  # nothing arrived: nothing changed
            got.next_step(answered(got.calls, [], "not run: the answer failed"))
            turn = self._record(
                prompt, got, "error", request, options, spec, started, plan, str(error)
            )
            raise ProviderError(
                f"{error} — the partial answer is kept as turn {self.tree.label(turn.id)} (error)",
                partial=got.text,
                status=error.status,
            ) from None
        if got.finish is not None and got.finish.reason == "length" and not got.finish.notice:
            sink.on_notice("the answer was cut at the max-tokens limit")
        turn = self._record(prompt, got, "ok", request, options, spec, started, plan)
        if self.budget and turn.kind == "turn" and self.exchanges() > self.budget:
            sink.on_notice(
                f"past the budget of {self.budget} exchanges: time to wrap up "
                "(ask for the final answer, or raise it with `%convo budget N`)"
            )
        return turn

    def _stream_with_tools(
        self,
        provider: Provider,
        request: ChatRequest,
        options: TurnOptions,
        sink: StreamSink,
        got: Collected,
    ) -> ChatRequest:
        """Stream the answer; while the model calls tools, run them and send their results
        back (at most ``max_steps`` rounds). Returns the last request sent."""
        collect(provider, request, sink, got)
        box = options.tools
        while got.calls:
            if box is None or got.steps >= box.max_steps:
                limit = box.max_steps if box is not None else 0
                why = (
                    f"not run: the turn reached its limit of {limit} tool steps"
                    if box is not None
                    else "not run: no tools were offered"
                )
                if box is not None:
                    sink.on_notice(
                        f"stopped after {limit} tool steps: the model's last calls were not "
                        "run (raise the limit with --max-steps N, or ask it to go on)"
                    )
                got.next_step(answered(got.calls, [], why))
                break
            step = got.step_parts()
            results: list[ToolResultPart] = []
            try:
                for call in got.calls:
                    result = self._tool_result(request, call, box)
                    sink.on_tool_result(call, result)
                    results.append(result)
            except KeyboardInterrupt:
                got.next_step(answered(got.calls, results, "interrupted by the user"))
                got.calls = []
                raise
            got.next_step(results)
            request = dataclasses.replace(
                request, messages=(*request.messages, *answer_messages([*step, *results]))
            )
            collect(provider, request, sink, got)
        return request

    def _tool_result(
        self, request: ChatRequest, call: ToolCallPart, box: Toolbox
    ) -> ToolResultPart:
        """The call's result: recorded in the cassette (a replay runs nothing), or run."""
        cassette = self.cassette
        if cassette is not None and cassette.mode != "record":
            recorded = cassette.result(request, call.call_id)
            if recorded is not None:
                return recorded
            if cassette.mode == "replay":
                raise ReplayMiss(
                    f"cassette {cassette.path} has no result for the call {call.name} the "
                    "model made: record it with `--mode auto` or `--mode record`"
                )
        result = box.run(call)
        if cassette is not None:
            cassette.record_result(request, result)
        return result

    def _check_effort(self, effort: str | None, spec: str) -> None:
        if effort is None:
            return
        if effort not in EFFORTS:
            raise UsageError(f"effort is low, medium or high, not {effort!r}; nothing was sent")
        from nbconvo._models import lookup

        if lookup(spec) is not None and not takes_effort(spec):
            raise UsageError(
                f"{spec} takes no reasoning effort: remove --effort (or `%convo effort "
                "--clear`), or choose a reasoning model; nothing was sent"
            )

    def _check_cost_budget(self, request: ChatRequest, spec: str) -> None:
        """Refuse a turn whose prompt alone would take the tree past its cost budget."""
        if self.cost_budget is None:
            return
        from nbconvo._cost import money

        spent = self.cost()
        price = self.price_table().get(spec) or price_for(spec)
        if price is None:
            raise UsageError(
                f"the cost budget needs {spec}'s price, which nbconvo does not know: set it "
                f"with `%convo price {spec} INPUT OUTPUT` ($ per million tokens); nothing "
                "was sent"
            )
        encoding = encoding_for(spec)
        prompt = count_messages(request.all_messages(), encoding, rule_for(request.provider))
        next_cost = prompt * price.input / 1_000_000
        if spent.total + next_cost > self.cost_budget:
            raise UsageError(
                f"this turn's prompt alone (≈{prompt:,} tokens, ≈{money(next_cost)}) would "
                f"take the tree past its cost budget of {money(self.cost_budget)} "
                f"({money(spent.total)} spent): raise it with `%convo budget --cost D` or "
                "clear it; nothing was sent"
            )

    def toolbox(
        self,
        functions: Sequence[Callable[..., Any]],
        approve: str | Sequence[str] | None = None,
        on_notice: Callable[[str], None] = lambda text: None,
    ) -> Toolbox:
        """The tools ``ask(…, tools=[f, g])`` offers: each call asked about on stdin,
        unless ``approve`` is "all" or names the function."""
        from nbconvo._tools import tools_of

        made = {t.name: t for t in tools_of(functions)}
        names = [approve] if isinstance(approve, str) else list(approve or ())
        settings = self.settings()
        return Toolbox(
            tools=made,
            approve_all="all" in names or settings.approve_tools,
            approved={n for n in names if n != "all"},
            ask=lambda question: input(question),
            timeout=settings.tool_timeout,
            max_steps=settings.tool_max_steps,
            result_chars=settings.tool_result_chars,
            on_notice=on_notice,
        )

    def _should_auto_compact(self, text: Content, plan: _Plan, spec: str) -> bool:
        if not self.auto_compact or plan.rerun is not None or plan.fork_name is not None:
            return False
        if len(self.path) <= self.auto_compact_keep:
            return False
        fraction = self.meter_at(plan.parent, pending=text, spec=spec).fraction
        return fraction is not None and fraction >= self.auto_compact

    def _record(
        self,
        prompt: Parts,
        got: Collected,
        status: Status,
        request: ChatRequest,
        options: TurnOptions,
        spec: str,
        started: float,
        plan: _Plan,
        error: str | None = None,
    ) -> Turn:
        kept: str | None = None
        if plan.fork_name is not None:
            self.tree.fork(plan.fork_position or 0, plan.fork_name)
        elif plan.rerun is not None:
            if plan.branch is not None and plan.branch in self.tree.branches:
                self.tree.current = plan.branch
            kept = self.tree.rewind_for_rerun(plan.rerun.id)
        if self.tree.head != plan.parent:  # plan and tree agree unless changed meanwhile
            raise NbconvoError("the conversation changed while the turn ran; run the cell again")
        answer = got.text
        parts = tuple(got.answer_parts())
        answer_parts = () if all(isinstance(p, TextPart) for p in parts) else parts
        if got.usage is not None:
            input_tokens, output_tokens = got.usage.input_tokens, got.usage.output_tokens
        else:
            encoding = encoding_for(spec)
            images = rule_for(spec.partition(":")[0])
            input_tokens = count_messages(request.all_messages(), encoding, images)
            said = [m["content"] for m in answer_messages(parts) if m["role"] == "assistant"]
            output_tokens = count_content(said[-1] if said else "", encoding, images)
        params = {
            k: v
            for k, v in (("temperature", request.temperature), ("max_tokens", request.max_tokens))
            if v is not None
        }
        turn = self.tree.append(
            Turn(
                id=self.tree.new_turn_id(),
                parent=plan.parent,
                prompt=text_of(prompt),
                answer=answer,
                prompt_parts=() if isinstance(content_of(prompt), str) else prompt,
                answer_parts=answer_parts,
                status=status,
                source=options.source,
                provider=spec.partition(":")[0],
                model=spec.partition(":")[2],
                params=params,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                usage_exact=got.usage is not None,
                cached_tokens=got.usage.cached_input_tokens if got.usage else 0,
                cache_write_tokens=got.usage.cache_write_tokens if got.usage else 0,
                first_token_s=got.first_token_s,
                billed=got.billed(),
                started_at=started,
                finished_at=time.time(),
                cell_id=options.cell_id,
                error=error,
            )
        )
        self._last_execution = (options.cell_id, options.execution)
        self._changed(TurnAdded(turn.id, kept_branch=kept, fork=plan.fork_name))
        return turn

    # --- summaries -----------------------------------------------------------------
    def summarize(
        self,
        *,
        sink: StreamSink | None = None,
        path: list[Turn] | None = None,
        model: str | None = None,
    ) -> str:
        """Ask the model for the key decisions and context so far; changes nothing."""
        return _compact.summarize(self, sink=sink or StreamSink(), path=path, model=model)

    def compact(
        self,
        keep: int = 2,
        *,
        name: str | None = None,
        sink: StreamSink | None = None,
        model: str | None = None,
        cell: str | None = None,
    ) -> str:
        """A new branch: a summary turn, then copies of the last ``keep`` turns (``cell``:
        see ``_compact.compact``)."""
        branch = _compact.compact(
            self, keep=keep, name=name, sink=sink or StreamSink(), model=model, cell=cell
        )
        self._changed(Compacted(branch))
        return branch

    def export(self, fmt: str = "md", *, all_branches: bool = False) -> str:
        """The conversation as text: ``md`` (transcript), ``json`` (the whole tree) or
        ``openai`` (the active path as an OpenAI-style messages list)."""
        import json

        if fmt == "md":
            from nbconvo._transcript import transcript_markdown

            return transcript_markdown(self, all_branches=all_branches)
        if fmt == "json":
            from nbconvo._document import conversation_to_dict

            return json.dumps(conversation_to_dict(self), ensure_ascii=False, indent=1)
        if fmt == "openai":
            from nbconvo._parts import content_to_json

            system = self.system_text()
            head: list[Message] = [{"role": "system", "content": system}] if system else []
            listed = [
                {"role": m["role"], "content": content_to_json(m["content"])}
                for m in head + self.messages()
            ]
            return json.dumps(listed, ensure_ascii=False, indent=1)
        raise UsageError(f"unknown export format {fmt!r}: use md, json or openai")

    def reset_tree(self) -> ConversationTree:
        old = self.tree
        self.tree = ConversationTree()
        self._ledger = TokenLedger()
        self._last_execution = None
        self._changed(TreeReset())
        return old

    def _repr_html_(self) -> str:
        from nbconvo._html import render_markdown
        from nbconvo._transcript import transcript_markdown

        return render_markdown(transcript_markdown(self))

    def __repr__(self) -> str:
        head = self.tree.head
        where = self.tree.label(head) if head is not None else "(root)"
        size = len(self.tree)
        return f"<Conversation {self.name!r}: {size} turns, branch {self.branch!r}, head {where}>"


__all__ = ["MAIN", "Conversation", "StreamSink", "TurnOptions", "collect"]
