"""The `%convo` command line: one `magic_arguments` parser with a subcommand each, so
`%convo?` shows generated help and a bad argument is a one-line usage error."""

from __future__ import annotations

from IPython.core.magic_arguments import MagicArgumentParser

from nbconvo._credentials import KEYS
from nbconvo._errors import UsageError


def _convo_parser() -> MagicArgumentParser:
    parser = MagicArgumentParser(
        prog="convo",  # IPython's help formatter writes the "%" of "%convo"
        description="Manage the conversation. Bare `%convo` shows the conversation.",
    )
    subs = parser.add_subparsers(
        dest="command", parser_class=MagicArgumentParser, metavar="COMMAND"
    )

    def sub(name: str, text: str) -> MagicArgumentParser:
        # argparse %-formats help (not descriptions): "%convo" must reach it as "%%convo".
        p: MagicArgumentParser = subs.add_parser(
            name, help=text.replace("%", "%%"), description=text
        )
        return p

    p = sub("model", "show or set the model, PROVIDER:MODEL (openai:…, ollama:…, llama:PATH)")
    p.add_argument("spec", nargs="?")
    p.add_argument("--base-url", help="server address for this provider (gateways, local servers)")
    p = sub("system", "set the system prompt (the rest of the line), or --clear")
    p.add_argument("text", nargs="*")
    p = sub("goal", "pin the objective, sent with every request (the rest of the line), or --clear")
    p.add_argument("text", nargs="*")
    p = sub("budget", "target number of exchanges (or --cost DOLLARS for the tree), or --clear")
    p.add_argument("n", nargs="?")
    p.add_argument("--cost", metavar="DOLLARS", help="refuse a turn that would pass this cost")
    p.add_argument("--clear", action="store_true")
    p = sub("price", "show the model's price, or set one: MODEL INPUT OUTPUT [CACHED] ($/M tokens)")
    p.add_argument("values", nargs="*")
    p = sub("effort", "a reasoning model's effort for every turn: low, medium, high, or --clear")
    p.add_argument("level", nargs="?", choices=("low", "medium", "high"))
    p.add_argument("--clear", action="store_true")
    p = sub("cache", "prompt caching: on (default), off, or the cache lifetime: 5m, 1h, auto")
    p.add_argument("mode", nargs="?", choices=("on", "off", "5m", "1h", "auto"))
    p = sub("fork", "branch at turn N of the active path (0: an empty branch) and switch to it")
    p.add_argument("n", type=int)
    p.add_argument("--name", help="branch name (default fork-1, fork-2, …)")
    p = sub("switch", "switch to a branch, or to a turn: #ID (stable id) or 3.2 (a version)")
    p.add_argument("target")
    sub("branches", "list the branches")
    sub("history", "the active path, turn by turn")
    p = sub("show", "one turn in full (default: the head)")
    p.add_argument("turn", nargs="?")
    p = sub("new", "start a new named conversation and make it current")
    p.add_argument("name")
    p = sub("use", "make a named conversation current")
    p.add_argument("name")
    sub("list", "list the conversations")
    p = sub("inspect", "show the exact next request (with an optional prompt)")
    p.add_argument("prompt", nargs="*")
    sub("undo", "move the head back one turn (the turn stays in the tree)")
    sub("reset", "start the current conversation afresh (the old tree is kept in the history)")
    p = sub("window", "override the model's context window (tokens), or --clear")
    p.add_argument("n", nargs="?")
    p.add_argument("--clear", action="store_true")
    p = sub("summarize", "ask the model for the key decisions so far, as bullets (changes nothing)")
    p.add_argument("--into", metavar="VAR", help="also store the summary in this variable")
    p = sub("compact", "new branch: a summary of earlier turns, then the last K turns")
    p.add_argument("--keep", type=int, default=2, help="turns to keep verbatim (default 2)")
    p.add_argument("--name", help="branch name (default compact-1, compact-2, …)")
    p = sub("compare", "the last answers of two branches side by side")
    p.add_argument("a")
    p.add_argument("b")
    sub("meter", "tokens the next request uses against the context window")
    p = sub(
        "tools",
        "show the tools turns offer, or offer these notebook functions (none: no tools; "
        "--clear: every @nbconvo.tool again)",
    )
    p.add_argument("names", nargs="*")
    p.add_argument("--clear", action="store_true")
    p = sub("save", "save every conversation (the whole tree) to a portable JSON file")
    p.add_argument("path", help="the file to write (NAME.json)")
    p = sub(
        "load",
        "restore an earlier session of this notebook (default: the latest), session N of "
        "`%convo sessions`, or a file written by `%convo save` (or a store, NAME.nbconvo.db)",
    )
    p.add_argument("path", nargs="?", metavar="N|PATH")
    sub("sessions", "list the earlier sessions of this notebook kept in its store")
    p = sub("export", "export the conversation: Markdown transcript, JSON tree, OpenAI messages")
    p.add_argument("path", nargs="?", help="write to this file (default: show it)")
    p.add_argument("--to", choices=("md", "json", "openai"), default="md")
    p.add_argument(
        "--all", action="store_true", help="Markdown: every branch, not only the active path"
    )
    p = sub(
        "replay", "deterministic reruns from a cassette: PATH --mode record|replay|auto, or off"
    )
    p.add_argument("path", help="the cassette file (JSON Lines), or `off`")
    p.add_argument("--mode", choices=("record", "replay", "auto"), default="auto")
    p = sub("key", "type an API key for a provider (kept in memory only)")
    p.add_argument("provider")
    for p in subs.choices.values():
        p.add_argument("-c", "--convo", help="the conversation to act on (default: current)")
    return parser


CONVO_PARSER = _convo_parser()
RAW_TEXT_COMMANDS = {"system", "goal"}
KEY_VARIABLES = {provider: source.variable for provider, source in KEYS.items()}


def split_line(line: str) -> list[str]:
    import shlex

    try:
        return shlex.split(line)
    except ValueError as error:
        raise UsageError(f"%convo: could not read the arguments: {error}") from None
