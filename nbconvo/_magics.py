"""IPython magics: ``%%turn`` and ``%convo``. An edge module: it parses, calls the
conversation, and displays; it knows no provider."""

from __future__ import annotations

import argparse
import functools
import getpass
import itertools
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import (
    argument,
    magic_arguments,
    parse_argstring,
)
from IPython.utils.text import dedent
from traitlets import Bool, Float, Int, observe

import nbconvo._errors as _errors
from nbconvo._commands import CONVO_PARSER, KEY_VARIABLES, RAW_TEXT_COMMANDS, split_line
from nbconvo._conversation import Conversation, StreamSink, TurnOptions
from nbconvo._display import StreamingMarkdown, show_html, show_markdown, update_html
from nbconvo._errors import NbconvoError, UsageError
from nbconvo._interpolate import Filled, attachment, fill
from nbconvo._parts import DataPart, TextPart, text_of
from nbconvo._render import (
    branches_markdown,
    footer_html,
    footer_text,
    history_markdown,
    turn_html,
    turn_text,
)
from nbconvo._session import SESSION, Session
from nbconvo._settings import (
    DEFAULT_LLAMA_N_CTX,
    DEFAULT_LOCAL_CACHE_MB,
    DEFAULT_MAX_RETRIES,
    DEFAULT_RETRY_MAX_WAIT,
    Settings,
)
from nbconvo._toolloop import Toolbox
from nbconvo._tools import Shape, Tool, ToolInputError, is_tool, shape_of, tools_of
from nbconvo._transcript import answer_markdown, md_escape, tool_line


def _names(text: str) -> list[str]:
    """``"add, mul"`` or ``"add mul"`` as names; ``none`` as no names."""
    names = [n for n in text.replace(",", " ").split() if n]
    return [] if names == ["none"] else names


def _render_result(value: Any, budget: int) -> tuple[str, str]:
    """A tool's result that is not JSON, as a notebook value is shown to the model."""
    from nbconvo._values import render_value

    rendered = render_value("result", value, budget)
    kind = type(value).__name__
    about = f"{'an' if kind[:1].lower() in 'aeiou' else 'a'} {kind}"
    if rendered.summary and rendered.summary != kind:
        about += f" ({rendered.summary})"
    return rendered.text, about


def _parse(func: Callable[..., Any], line: str) -> argparse.Namespace:
    """The magic's arguments; argparse takes ~40 µs a call, so a line seen before (most
    cells repeat theirs, often the empty one) is answered from a cache, as a copy."""
    parsed = _parse_cached(getattr(func, "__func__", func), line)
    return argparse.Namespace(
        **{k: list(v) if isinstance(v, list) else v for k, v in vars(parsed).items()}
    )


@functools.lru_cache(maxsize=256)
def _parse_cached(func: Callable[..., Any], line: str) -> argparse.Namespace:
    try:
        args: argparse.Namespace = parse_argstring(func, line)
        return args
    except ValueError as error:  # unbalanced quotes from the argument splitter
        raise UsageError(f"could not read the arguments: {error}") from None
    except Exception as error:
        if type(error).__name__ == "UsageError":  # IPython's: re-raise as ours, one line
            raise UsageError(f"{error} (see `{func.__name__}?` for help)") from None
        raise


# The settings `%config ConvoMagics.NAME = VALUE` changes (the rest are for the environment).
SETTING_TRAITS = (
    "stream",
    "max_retries",
    "retry_max_wait",
    "llama_n_ctx",
    "local_cache_mb",
    "auto_compact",
    "auto_compact_keep",
    "value_tokens",
    "tool_timeout",
    "tool_max_steps",
    "tool_result_chars",
)


class CellTracker:
    """Remembers the cell id of the execution in progress (IPython ``pre_run_cell``)."""

    def __init__(self) -> None:
        self.cell_id: str | None = None
        self.execution: object | None = None
        self._counter = itertools.count(1)

    def pre_run_cell(self, info: Any) -> None:
        self.cell_id = getattr(info, "cell_id", None)
        self.execution = next(self._counter)


class Footers:
    """The footer each ``%%turn`` cell showed, kept true while the kernel lives: when its
    turn leaves the active path (a cell above was rerun, a branch switched), the footer
    says where the turn is now, in its own cell; back on the path, it reads as before."""

    def __init__(self) -> None:
        # (conversation, turn id) → (display id, footer text, the note shown now)
        self._shown: dict[tuple[str, int], tuple[str, str, str | None]] = {}
        # conversation → its branch and the other branches' tips at the last refresh
        self._world: dict[str, tuple[object, ...]] = {}

    def show(self, convo: Conversation, turn_id: int, text: str) -> None:
        display_id = uuid.uuid4().hex
        show_html(footer_html(text), text, display_id=display_id)
        self._shown[(convo.name, turn_id)] = (display_id, text, None)
        self.refresh(convo)

    def refresh(self, convo: Conversation) -> None:
        tree = convo.tree
        on_path = {t.id for t in convo.path}
        others = sorted((b, tip) for b, tip in tree.branches.items() if b != convo.branch)
        world = (convo.branch, *others)
        same_world = self._world.get(convo.name) == world
        self._world[convo.name] = world
        for key, (display_id, text, shown) in list(self._shown.items()):
            name, turn_id = key
            if name != convo.name:
                continue
            if turn_id not in tree.turns:  # the conversation was reset or replaced
                del self._shown[key]
                continue
            if turn_id in on_path:
                note = None
            elif shown is not None and same_world:
                # Off the path before and now, the other branches where they were: where
                # it lives is unchanged (only the active branch moved, and not through it).
                note = shown
            else:
                note = self._where(convo, turn_id)
            if note != shown:
                line = text if note is None else f"{text} · ⟲ {note}"
                update_html(footer_html(line), line, display_id)
                self._shown[key] = (display_id, text, note)

    @staticmethod
    def _where(convo: Conversation, turn_id: int) -> str:
        tree = convo.tree
        depth = tree.depth(turn_id)
        holders = []
        for branch, tip in tree.branches.items():
            node = tip
            while node is not None and tree.depth(node) > depth:
                node = tree.turns[node].parent
            if node == turn_id:
                holders.append(branch)
        place = f"now on {holders[0]}" if holders else "an earlier version, on no branch"
        # Nothing here moves with the head: a new turn changes no footer off the path (a
        # notebook rerun many times holds many), only leaving or joining the path does.
        return f"{place} — not the active path of {convo.branch}; rerun to continue there"


@magics_class
class ConvoMagics(Magics):
    """``%%turn`` sends the cell as one turn; ``%convo`` manages conversations.

    Settings: ``%config ConvoMagics`` lists them; ``%config ConvoMagics.auto_compact = 0.9``
    changes one (here: compact automatically when the next request would use 90% of the
    window; 0 turns it off, the default). Each starts from its environment variable
    (``NBCONVO_AUTO_COMPACT``, ...), read once when the extension loads.
    """

    stream = Bool(True, help="show the answer as it arrives (NBCONVO_STREAM)").tag(config=True)
    max_retries = Int(
        DEFAULT_MAX_RETRIES, min=0, help="retries of a request that failed before any text"
    ).tag(config=True)
    retry_max_wait = Float(
        DEFAULT_RETRY_MAX_WAIT, min=0.0, help="the longest wait between retries, in seconds"
    ).tag(config=True)
    llama_n_ctx = Int(
        DEFAULT_LLAMA_N_CTX, min=1, help="the context window of the in-process llama: model"
    ).tag(config=True)
    local_cache_mb = Int(
        DEFAULT_LOCAL_CACHE_MB,
        min=0,
        help="MB of the llama: model's states kept so any branch resumes where it was (0: off)",
    ).tag(config=True)
    auto_compact = Float(
        0.0, min=0.0, max=1.0, help="compact before a turn past this fraction of the window"
    ).tag(config=True)
    auto_compact_keep = Int(2, min=0, help="turns kept verbatim by automatic compaction").tag(
        config=True
    )
    value_tokens = Int(
        1500, min=50, help="tokens each {value} of a prompt may take ({name!full} lifts it)"
    ).tag(config=True)
    tool_timeout = Float(
        60.0, min=0.0, help="seconds a tool call may run before it is stopped (0: no limit)"
    ).tag(config=True)
    tool_max_steps = Int(
        8, min=1, help="rounds of tool calls one turn may make (--max-steps N for one turn)"
    ).tag(config=True)
    tool_result_chars = Int(
        20_000, min=100, help="characters of a tool's result the model is sent"
    ).tag(config=True)

    def __init__(self, shell: Any, session: Session | None = None) -> None:
        super().__init__(shell)  # applies the `%config` values given so far
        self.session = session or SESSION
        self.tracker = CellTracker()
        self.footers = Footers()
        # A setting `%config` did not give keeps the environment's value (the session
        # read it at load); one `%config` gave goes to the session.
        given = set(self.config["ConvoMagics"]) if "ConvoMagics" in self.config else set()
        settings = self.session.settings
        for name in SETTING_TRAITS:
            if name not in given:
                setattr(self, name, getattr(settings, name))
        self.session.configure(settings.changed(**{n: getattr(self, n) for n in SETTING_TRAITS}))

    @observe(*SETTING_TRAITS)
    def _setting_changed(self, change: Any) -> None:
        if "session" in self.__dict__:  # after __init__: `%config ConvoMagics.NAME = VALUE`
            self.session.configure(self.session.settings.changed(**{change.name: change.new}))

    def _user_ns(self) -> dict[str, Any]:
        namespace: dict[str, Any] = self.shell.user_ns if self.shell is not None else {}
        return namespace

    # --- %%turn --------------------------------------------------------------------
    @magic_arguments()
    @argument("-m", "--model", help="PROVIDER:MODEL for this turn only")
    @argument("-c", "--convo", help="the named conversation to add to (default: current)")
    @argument("-t", "--temperature", type=float, help="sampling temperature for this turn")
    @argument("--max-tokens", type=int, help="maximum answer length in tokens")
    @argument("-o", "--out", help="also store the answer text in this variable")
    @argument("--raw", action="store_true", help="send the cell as written: no {var} interpolation")
    @argument("--error", action="store_true", help="add the notebook's last error and its cell")
    @argument(
        "-a",
        "--attach",
        action="append",
        default=[],
        metavar="PATH",
        help="add a file: an image, or a text or code file (repeatable)",
    )
    @argument("--id", help="stable identity for this cell where the front end sends no cell id")
    @argument("--fork", type=int, metavar="N", help="fork at turn N first, then send")
    @argument("--no-stream", action="store_true", help="wait for the whole answer")
    @argument(
        "--tools",
        metavar="F,G",
        help="notebook functions the model may call this turn (none: no tools; default: "
        "`%%convo tools`, else every @nbconvo.tool)",
    )
    @argument(
        "--approve",
        metavar="all|F,G",
        help="run these tools' calls without asking (all: every call this turn)",
    )
    @argument("--max-steps", type=int, metavar="N", help="rounds of tool calls (default 8)")
    @argument(
        "--effort",
        choices=("low", "medium", "high"),
        help="a reasoning model's effort for this turn (default: `%%convo effort`)",
    )
    @argument(
        "--schema",
        metavar="TYPE",
        help="the answer is JSON of this pydantic model, dataclass or TypedDict (with -o: "
        "the checked object)",
    )
    @cell_magic
    def turn(self, line: str, cell: str) -> None:
        """Send the cell as one turn of the conversation and stream the answer.

        `{name}`, `{name.attr}`, `{name[0]}` and `{name["key"]}` are replaced with values
        from the notebook; everything else in braces is sent as written; `{{name}}` sends
        `{name}`. Rerunning a cell makes a new version of its turn.
        """
        args = _parse(self.turn, line)
        if args.out is not None and not args.out.isidentifier():
            raise UsageError(f"-o/--out needs a Python variable name, not {args.out!r}")
        if args.max_tokens is not None and args.max_tokens < 1:
            raise UsageError("--max-tokens must be a positive whole number")
        if args.max_steps is not None and args.max_steps < 1:
            raise UsageError("--max-steps must be a positive whole number")
        convo = self.session.get(args.convo)
        notices: list[str] = []
        toolbox = self._toolbox(convo, args, notices.append)
        shape = self._shape(args.schema)
        cell = cell.strip("\n")
        settings = self.session.settings
        if args.raw:
            filled = Filled((TextPart(cell),))
        else:
            filled = fill(cell, self._user_ns(), settings.value_tokens)
        if args.error:
            filled = self._with_last_error(filled, settings.value_tokens)
        for path in args.attach:
            part, line = attachment(path)
            filled = Filled((*filled.parts, part), (*filled.attached, line), filled.warnings)
        text = text_of(filled.parts)
        options = TurnOptions(
            model=args.model,
            temperature=args.temperature,
            max_tokens=args.max_tokens,
            fork=args.fork,
            cell_id=args.id or self.tracker.cell_id,
            execution=self.tracker.execution,
            source=cell,
            tools=toolbox,
            schema=shape,
            effort=args.effort,
        )
        if not text.strip() and all(isinstance(p, TextPart) for p in filled.parts):
            raise UsageError("the turn is empty: write a prompt in the cell below %%turn")
        if args.fork is not None:
            convo.tree.at_position(args.fork)  # out of range: fail before anything is sent
        convo.provider(convo.model_spec(args.model))  # unknown model or no key: fail first
        convo.auto_compact = self.session.settings.auto_compact or None
        convo.auto_compact_keep = self.session.settings.auto_compact_keep
        output = StreamingMarkdown(stream=not args.no_stream and self.session.settings.stream)
        notices[:0] = filled.warnings
        output.start()
        sink = StreamSink(
            on_text=output.feed,
            on_notice=notices.append,
            on_tool_result=lambda call, result: output.feed(tool_line(call, result)),
            on_thinking=output.think,
        )
        try:
            turn = convo.ask(filled.parts, sink=sink, options=options)
        except NbconvoError:
            if output.text:
                output.finish()
            else:
                output.discard()  # nothing arrived: the error alone says what happened
            raise
        output.finish(answer_markdown(turn))
        mismatch: str | None = None
        if shape is not None:
            try:
                value: Any = shape.validate(turn.answer)
            except ToolInputError as error:
                mismatch = (
                    f"the answer does not match {shape.name}: {error}; it is kept as text in "
                    f"turn {convo.tree.label(turn.id)}"
                    + (f" and {args.out} was not changed" if args.out else "")
                )
        if args.out and mismatch is None:
            self._user_ns()[args.out] = value if shape is not None else turn.answer
        footer = footer_text(convo, turn, convo.meter)
        for line in filled.attached:
            footer += f" · {line}"
        notices.extend(self.session.take_notices())
        for notice in notices:
            footer += f" · ⚠ {notice}"
        self.footers.show(convo, turn.id, footer)
        if mismatch is not None:
            raise UsageError(mismatch)

    def _toolbox(
        self, convo: Conversation, args: argparse.Namespace, notice: Callable[[str], None]
    ) -> Toolbox | None:
        """The tools this turn offers: ``--tools``, else `%convo tools`, else every
        ``@nbconvo.tool`` function in the notebook; None when there are none."""
        names = _names(args.tools) if args.tools is not None else convo.tools
        tools = self._resolve_tools(names)
        if not tools:
            if args.approve or args.max_steps:
                raise UsageError(
                    "--approve and --max-steps are for tools, and this turn offers none: "
                    "name them with --tools F,G (or mark them @nbconvo.tool)"
                )
            return None
        approve = _names(args.approve or "")
        unknown = [n for n in approve if n != "all" and n not in tools]
        if unknown:
            raise UsageError(
                f"--approve {unknown[0]}: the turn offers no tool of that name (it offers "
                f"{', '.join(tools)}); nothing was sent"
            )
        settings = self.session.settings
        approved = self.session.approved_tools
        approved.update(n for n in approve if n != "all")
        return Toolbox(
            tools=tools,
            approve_all="all" in approve or settings.approve_tools,
            approved=approved,
            ask=lambda question: input(question),
            render=lambda value: _render_result(value, settings.value_tokens),
            timeout=settings.tool_timeout,
            max_steps=args.max_steps or settings.tool_max_steps,
            result_chars=settings.tool_result_chars,
            on_notice=notice,
        )

    def _resolve_tools(self, names: list[str] | None) -> dict[str, Tool]:
        namespace = self._user_ns()
        if names is None:
            marked = [v for k, v in list(namespace.items()) if not k.startswith("_") and is_tool(v)]
            return {t.name: t for t in tools_of(marked)}
        found: list[Any] = []
        cassette = self.session.cassette
        for name in names:
            value = namespace.get(name)
            if value is None and cassette is not None and cassette.tool_spec(name) is not None:
                spec = cassette.tool_spec(name)
                assert spec is not None
                found.append(Tool.recorded(spec))  # a replay needs its definition only
                continue
            if value is None:
                raise UsageError(
                    f"there is no function {name!r} in the notebook to offer as a tool: define "
                    "it first (or fix the name); nothing was sent"
                )
            if not callable(value):
                raise UsageError(
                    f"{name} is a {type(value).__name__}, not a function: a tool is a "
                    "function the model may call; nothing was sent"
                )
            found.append(value)
        return {t.name: t for t in tools_of(found)}

    def _shape(self, name: str | None) -> Shape | None:
        if name is None:
            return None
        import builtins

        target = self._user_ns().get(name, getattr(builtins, name, None))
        if target is None:
            raise UsageError(
                f"--schema {name}: there is no {name} in the notebook: define the pydantic "
                "model, dataclass or TypedDict first; nothing was sent"
            )
        return shape_of(target)

    def _with_last_error(self, filled: Filled, budget: int) -> Filled:
        """``filled`` with the notebook's last error (and its cell) after the text."""
        import sys

        from nbconvo._values import render_exception

        error = getattr(sys, "last_value", None)
        if error is None:
            raise UsageError("--error: there is no error in this kernel yet; nothing was sent")
        cells = getattr(getattr(self.shell, "compile", None), "_filename_map", {})
        rendered = render_exception(error, cells.__contains__, budget)
        part = DataPart("last error", rendered.text, summary=rendered.summary, placeholder=False)
        attached = (*filled.attached, rendered.note("last error"))
        return Filled((*filled.parts, part), attached, filled.warnings)

    # --- %convo --------------------------------------------------------------------
    @line_magic
    def convo(self, line: str = "") -> None:
        words = line.strip().split(None, 1)
        if not words:
            from IPython.display import display

            from nbconvo._render import static_tree_html
            from nbconvo._widget import ConvoWidget

            convo = self.session.current()
            display(ConvoWidget.for_conversation(convo))
            # The picture a saved notebook keeps; the live widget hides it while it runs.
            show_html(
                static_tree_html(convo), f"conversation {convo.name}: {len(convo.tree)} turns"
            )
            return
        command, rest = words[0], (words[1] if len(words) > 1 else "")
        if command in RAW_TEXT_COMMANDS:
            self._raw_text_command(command, rest)
            return
        try:
            args = CONVO_PARSER.parse_args(split_line(line))
        except Exception as error:
            if type(error).__name__ != "UsageError":
                raise
            raise UsageError(f"%convo: {error} (see `%convo?`)") from None
        handler = getattr(self, f"_cmd_{args.command}")
        convo = self.session.get(args.convo)
        try:
            handler(convo, args)
        finally:
            self.footers.refresh(self.session.current())

    def _raw_text_command(self, command: str, rest: str) -> None:
        # system/goal take the rest of the line verbatim: apostrophes and quotes are text.
        convo_name = None
        if rest.startswith(("-c ", "--convo ")):
            _, convo_name, rest = ([*rest.split(None, 2), "", ""])[:3]
        convo = self.session.get(convo_name or None)
        text = rest.strip()
        if text == "--clear":
            setattr(convo, command, None)
            show_markdown(f"*{command} cleared*")
        elif not text:
            current = getattr(convo, command)
            show_markdown(
                f"*{command}:* {md_escape(current)}" if current else f"*no {command} set*"
            )
        else:
            setattr(convo, command, text)
            show_markdown(f"*{command} set*")

    def _cmd_model(self, convo: Conversation, args: argparse.Namespace) -> None:
        if args.spec is None:
            try:
                spec = convo.model_spec()
            except NbconvoError as error:
                spec = f"none ({error})"
            show_markdown(f"*model:* `{spec}`")
            return
        from nbconvo.providers import split_spec

        split_spec(args.spec)  # unknown prefix: one-line error, nothing changed
        convo.model, convo.base_url = args.spec, args.base_url
        show_markdown(f"*model set to* `{args.spec}`")

    def _cmd_budget(self, convo: Conversation, args: argparse.Namespace) -> None:
        from nbconvo._cost import money

        if args.clear:
            convo.budget = None
            convo.cost_budget = None
            show_markdown("*budget cleared*")
            return
        if args.cost is not None:
            try:
                dollars = float(args.cost.lstrip("$"))
            except ValueError:
                raise UsageError(
                    f"--cost needs an amount in dollars, like 2.00, not {args.cost!r}"
                ) from None
            if not dollars > 0:
                raise UsageError(f"--cost must be more than 0 dollars, not {args.cost}")
            convo.cost_budget = dollars
            spent = convo.cost()
            show_markdown(f"*cost budget set to {money(dollars)}* ({spent.describe()} spent)")
            if args.n is None:
                return
        if args.n is None:
            cost = f" · cost budget {money(convo.cost_budget)}" if convo.cost_budget else ""
            show_markdown(f"*budget:* {convo.budget or 'none'}{cost}")
            return
        try:
            budget = int(args.n)
        except ValueError:
            raise UsageError(f"budget needs a whole number of exchanges, not {args.n!r}") from None
        if budget < 1:
            raise UsageError(f"budget must be at least 1 exchange, not {budget}")
        convo.budget = budget
        show_markdown(f"*budget set to {budget} exchanges*")

    def _cmd_save(self, convo: Conversation, args: argparse.Namespace) -> None:
        path = Path(args.path)
        self.session.save_to(path)
        show_markdown(f"*saved {len(self.session.conversations)} conversation(s) to* `{path}`")

    def _cmd_load(self, convo: Conversation, args: argparse.Namespace) -> None:
        where = args.path
        if where is None or (where.isdigit() and not Path(where).exists()):
            chosen = self.session.restore(int(where) if where else None)
            from nbconvo._render import when

            source = f"session {chosen.number} ({when(chosen.updated_at)})"
        else:
            self.session.load(Path(where))
            source = f"`{where}`"
        current = self.session.current()
        show_markdown(
            f"*restored {len(self.session.conversations)} conversation(s) from* {source}; "
            f"*current:* **{md_escape(current.name)}**, {len(current.turns)} turn(s), "
            f"branch **{md_escape(current.branch)}**"
        )

    def _cmd_sessions(self, convo: Conversation, args: argparse.Namespace) -> None:
        from nbconvo._render import sessions_markdown

        store = self.session.open_store()
        if store is None:
            raise UsageError("autosave is off (NBCONVO_AUTOSAVE=off): no store to list")
        show_markdown(
            sessions_markdown(store.sessions(), self.session.writer().session_id, store.path)
        )

    def _cmd_export(self, convo: Conversation, args: argparse.Namespace) -> None:
        text = convo.export(args.to, all_branches=args.all)
        if args.path:
            from nbconvo._document import write_atomic

            write_atomic(Path(args.path), text + "\n")
            show_markdown(f"*exported {args.to} to* `{args.path}`")
        elif args.to == "md":
            show_markdown(text)
        else:
            show_markdown(f"```json\n{text}\n```", text)

    def _cmd_replay(self, convo: Conversation, args: argparse.Namespace) -> None:
        if args.path == "off":
            self.session.set_cassette(None)
            show_markdown("*replay off: turns go to the model*")
            return
        from nbconvo._cassette import Cassette

        name = notebook_name(self._user_ns(), self.session.settings)
        cassette = Cassette(Path(args.path), args.mode, name)
        self.session.set_cassette(cassette)
        show_markdown(f"*cassette* `{cassette.describe()}`")

    def _cmd_window(self, convo: Conversation, args: argparse.Namespace) -> None:
        if args.clear:
            convo.window = None
            show_markdown("*window override cleared*")
            return
        if args.n is None:
            show_markdown(f"*window:* {convo.context_window() or 'unknown'}")
            return
        try:
            window = int(str(args.n).replace(",", "").replace("_", ""))
        except ValueError:
            raise UsageError(f"window needs a whole number of tokens, not {args.n!r}") from None
        if window < 1:
            raise UsageError(f"window must be a positive number of tokens, not {window}")
        convo.window = window
        show_markdown(f"*context window set to {window:,} tokens*")

    def _cmd_tools(self, convo: Conversation, args: argparse.Namespace) -> None:
        if args.clear:
            convo.tools = None
        elif args.names:
            names = _names(" ".join(args.names))
            self._resolve_tools(names)  # an unknown name fails here, nothing changed
            convo.tools = names
        tools = self._resolve_tools(convo.tools)
        where = "every @nbconvo.tool" if convo.tools is None else "`%convo tools`"
        if not tools:
            show_markdown(f"*no tools offered* ({where})")
            return
        lines = [f"*tools offered* ({where}):", ""]
        for tool in tools.values():
            approved = " · runs unasked" if tool.name in self.session.approved_tools else ""
            summary = tool.spec.description.split("\n")[0]
            lines.append(f"- `{tool.name}` — {md_escape(summary)}{approved}")
        show_markdown("\n".join(lines))

    def _cmd_price(self, convo: Conversation, args: argparse.Namespace) -> None:
        from nbconvo._cost import money
        from nbconvo._models import price_for
        from nbconvo.providers import split_spec

        if not args.values:
            spec = convo.model_spec()
            price = convo.price_table().get(spec) or price_for(spec)
            if price is None:
                show_markdown(
                    f"*price of* `{spec}`: *unknown* — set it with `%convo price {spec} "
                    "INPUT OUTPUT [CACHED]` ($ per million tokens)"
                )
                return
            where = f" ({price.source}, {price.as_of})" if price.as_of else f" ({price.source})"
            show_markdown(
                f"*price of* `{spec}` per million tokens: input {money(price.input)}, cache "
                f"reads {money(price.cached_input)}, cache writes {money(price.cache_write)}, "
                f"output {money(price.output)}{md_escape(where)}"
            )
            return
        spec, *numbers = args.values
        split_spec(spec)  # an unknown provider: one line, nothing changed
        if len(numbers) not in (2, 3):
            raise UsageError(
                "%convo price MODEL INPUT OUTPUT [CACHED]: dollars per million tokens, e.g. "
                "`%convo price openai:gpt-5 1.25 10 0.125`"
            )
        try:
            values = [float(n.lstrip("$")) for n in numbers]
        except ValueError:
            raise UsageError(
                f"a price is dollars per million tokens, like 1.25, not {' '.join(numbers)!r}"
            ) from None
        if any(not v >= 0 for v in values):
            raise UsageError("a price cannot be negative")
        convo.prices = {**convo.prices, spec: values}
        show_markdown(f"*price of* `{spec}` *set*")

    def _cmd_effort(self, convo: Conversation, args: argparse.Namespace) -> None:
        if args.clear:
            convo.effort = None
            show_markdown("*effort cleared: each model's default*")
        elif args.level is None:
            show_markdown(f"*effort:* {convo.effort or 'the model default'}")
        else:
            convo.effort = args.level
            show_markdown(f"*effort set to {args.level}*")

    def _cmd_cache(self, convo: Conversation, args: argparse.Namespace) -> None:
        if args.mode in ("on", "off"):
            convo.cache = args.mode == "on"
        elif args.mode is not None:
            convo.cache, convo.cache_ttl = True, args.mode
        if not convo.cache:
            show_markdown("*prompt caching off*")
        else:
            ttl = (
                "auto: 1 h once pauses pass 5 min" if convo.cache_ttl == "auto" else convo.cache_ttl
            )
            show_markdown(f"*prompt caching on* (lifetime {ttl})")

    def _cmd_meter(self, convo: Conversation, args: argparse.Namespace) -> None:
        meter = convo.meter
        markdown, plain = meter._repr_markdown_(), str(meter)
        head = convo.head
        if head is not None and head.first_token_s:
            last = f"last turn: first token after {head.first_token_s:.2f} s"
            if head.cached_tokens:
                word = "reused" if head.provider == "llama" else "read from cache"
                last += f", {word} {head.cached_tokens:,} of {head.input_tokens:,} prompt tokens"
            markdown, plain = f"{markdown}  \n{last}", f"{plain}\n{last}"
        tree_cost = convo.cost()
        if head is not None and (tree_cost.total or tree_cost.unpriced):  # local: free, unsaid
            costs = [
                ("last turn", convo.cost([head])),
                (f"branch {convo.branch}", convo.branch_cost()),
                ("tree", tree_cost),
            ]
            for name, cost in costs:
                line = f"{name}: {cost.describe()}"
                markdown, plain = f"{markdown}  \n{md_escape(line)}", f"{plain}\n{line}"
        show_markdown(markdown, plain)

    def _cmd_summarize(self, convo: Conversation, args: argparse.Namespace) -> None:
        if args.into is not None and not args.into.isidentifier():
            raise UsageError(f"--into needs a Python variable name, not {args.into!r}")
        output = StreamingMarkdown(stream=self.session.settings.stream)
        summary = convo.summarize(sink=StreamSink(on_text=output.feed))
        output.finish(summary)
        if args.into:
            self._user_ns()[args.into] = summary

    def _cmd_compact(self, convo: Conversation, args: argparse.Namespace) -> None:
        before, origin = convo.meter, convo.branch
        output = StreamingMarkdown(stream=self.session.settings.stream)
        sink = StreamSink(on_text=output.feed)
        branch = convo.compact(args.keep, name=args.name, sink=sink, cell=self.tracker.cell_id)
        output.finish()
        after = convo.meter
        show_markdown(
            f"*compacted into branch* **{md_escape(branch)}**: *a summary turn, then the last "
            f"{args.keep} turn(s); context {before.used:,} → {after.used:,} tokens. The "
            f"original turns stay on branch {md_escape(origin)}.*"
        )

    def _cmd_compare(self, convo: Conversation, args: argparse.Namespace) -> None:
        from nbconvo._render import compare_html, compare_text

        bundle = {
            "text/html": compare_html(convo, args.a, args.b),
            "text/plain": compare_text(convo, args.a, args.b),
        }
        from IPython.display import display

        display(bundle, raw=True)

    def _cmd_fork(self, convo: Conversation, args: argparse.Namespace) -> None:
        branch = convo.fork(args.n, args.name, cell=self.tracker.cell_id)
        show_markdown(
            f"*forked at turn {args.n}: now on branch* **{md_escape(branch)}**"
            f" *(the next turn follows turn {args.n})*"
        )

    def _cmd_switch(self, convo: Conversation, args: argparse.Namespace) -> None:
        branch = convo.switch(args.target)
        head = convo.tree.head
        where = convo.tree.label(head) if head is not None else "the root"
        show_markdown(f"*now on branch* **{md_escape(branch)}** *at turn {where}*")

    def _cmd_branches(self, convo: Conversation, args: argparse.Namespace) -> None:
        show_markdown(branches_markdown(convo))

    def _cmd_history(self, convo: Conversation, args: argparse.Namespace) -> None:
        show_markdown(history_markdown(convo))

    def _cmd_show(self, convo: Conversation, args: argparse.Namespace) -> None:
        target = convo.tree.resolve(args.turn) if args.turn else convo.tree.head
        if target is None:
            raise _errors.ConversationError("no turn to show: the active path is empty")
        turn = convo.tree.turn(target)
        show_html(turn_html(convo, turn), turn_text(convo, turn))

    def _cmd_new(self, convo: Conversation, args: argparse.Namespace) -> None:
        self.session.new(args.name, cell=self.tracker.cell_id)
        show_markdown(f"*new conversation* **{md_escape(args.name)}** *(now current)*")

    def _cmd_use(self, convo: Conversation, args: argparse.Namespace) -> None:
        self.session.use(args.name)
        show_markdown(f"*now using conversation* **{md_escape(args.name)}**")

    def _cmd_list(self, convo: Conversation, args: argparse.Namespace) -> None:
        rows = ["| | conversation | turns | branch | model |", "| --- | --- | --- | --- | --- |"]
        self.session.current()
        for name, c in sorted(self.session.conversations.items()):
            mark = "●" if name == self.session.current_name else ""
            rows.append(
                f"| {mark} | {md_escape(name)} | {len(c.tree)} | {md_escape(c.branch)} | "
                f"{md_escape(c.model or 'default')} |"
            )
        show_markdown("\n".join(rows))

    def _cmd_inspect(self, convo: Conversation, args: argparse.Namespace) -> None:
        from nbconvo.providers import wire_preview

        prompt = " ".join(args.prompt) or "(your next prompt)"
        request = convo.request(prompt, TurnOptions(cell_id=None))
        spec = convo.model_spec()
        try:
            provider = convo._live_provider(spec, convo.base_url if spec == convo.model else None)
        except NbconvoError:
            provider = None  # no key yet: the neutral request, which needs none
        text = json.dumps(wire_preview(provider, request), indent=2, ensure_ascii=False)
        fence = "````" if "```" in text else "```"
        show_markdown(f"{fence}json\n{text}\n{fence}", text)

    def _cmd_undo(self, convo: Conversation, args: argparse.Namespace) -> None:
        turn = convo.undo()
        show_markdown(f"*undid turn #{turn.id}; it stays in the tree (`%convo switch #{turn.id}`)*")

    def _cmd_reset(self, convo: Conversation, args: argparse.Namespace) -> None:
        self.session.reset(convo.name)
        show_markdown(f"*conversation {md_escape(convo.name)} reset; the old tree is kept*")

    def _cmd_key(self, convo: Conversation, args: argparse.Namespace) -> None:
        variable = KEY_VARIABLES.get(args.provider)
        if variable is None:
            raise UsageError(f"no key for {args.provider!r}: use one of {', '.join(KEY_VARIABLES)}")
        from nbconvo._credentials import TYPED

        key = getpass.getpass(f"{variable}: ").strip()
        if not key:
            raise UsageError("no key typed: nothing changed")
        TYPED[variable] = key
        convo._providers.clear()  # providers built without the key pick it up next turn
        show_markdown(f"*key for {args.provider} kept in memory for this session*")


def notebook_name(user_ns: dict[str, Any], settings: Settings) -> str | None:
    """The notebook's file name, where the front end (or `nbconvo run`) tells the kernel."""
    import os

    name = settings.notebook or user_ns.get("__session__")
    name = name or os.environ.get("JPY_SESSION_NAME")
    return Path(str(name)).name if name else None


ConvoMagics.convo.__doc__ = (
    dedent(
        """Manage conversations: `%convo COMMAND [options]`.

    """
    )
    + CONVO_PARSER.format_help()
    + "\n".join(
        f"\n%convo {name}:\n" + parser.format_help()
        for name, parser in CONVO_PARSER._subparsers._group_actions[0].choices.items()  # type: ignore[union-attr]
    )
)
