"""nbconvo's settings in one place: every ``NBCONVO_*`` environment variable is read
here, once, into a frozen ``Settings``. The extension reads them when it loads; the
magics' traitlets (``%config ConvoMagics.NAME = VALUE``) change them afterwards, and
whoever needs a setting is handed this object. Keys are not settings: they live in
``_credentials``. Nor are a provider's endpoint variables (``OPENAI_BASE_URL``,
``NBCONVO_BASE_URL``, ``NBCONVO_M365_*``): each provider reads its own, with its key,
when it is made.

A variable with a value that cannot be used does not stop the extension: it is
reported in one line naming the variable and the value used instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

DEFAULT_MAX_RETRIES = 2
DEFAULT_RETRY_MAX_WAIT = 60.0  # seconds: the longest single wait between attempts
DEFAULT_LLAMA_N_CTX = 8192
DEFAULT_LOCAL_CACHE_MB = 256  # the in-process model's saved states (0: none)
CASSETTE_MODES = ("auto", "record", "replay")
_OFF = ("0", "off", "false", "no")


@dataclass(frozen=True)
class Settings:
    """What nbconvo does where a cell says nothing (the environment variable in brackets)."""

    model: str | None = None  # the default PROVIDER:MODEL (NBCONVO_MODEL)
    stream: bool = True  # show the answer as it arrives (NBCONVO_STREAM)
    max_retries: int = DEFAULT_MAX_RETRIES  # retries of a failed request (NBCONVO_MAX_RETRIES)
    retry_max_wait: float = DEFAULT_RETRY_MAX_WAIT  # (NBCONVO_RETRY_MAX_WAIT)
    autosave: str | None = None  # the store's file, or "off" (NBCONVO_AUTOSAVE)
    home: str | None = None  # a folder for every notebook's store (NBCONVO_HOME)
    notebook: str | None = None  # the notebook's name where the front end sends none
    cassette: str | None = None  # record or replay every turn here (NBCONVO_CASSETTE)
    cassette_mode: str = "auto"  # (NBCONVO_CASSETTE_MODE)
    load_notice: bool = True  # mention an earlier session at load (NBCONVO_LOAD_NOTICE)
    cache: str | None = None  # where local models are kept (NBCONVO_CACHE)
    local_model: str | None = None  # a GGUF file to use as the local model
    llama_n_ctx: int = DEFAULT_LLAMA_N_CTX  # the in-process model's window
    # MB of the in-process model's states kept by token prefix, so a turn on any branch
    # resumes where its path was left (NBCONVO_LOCAL_CACHE_MB; 0: off)
    local_cache_mb: int = DEFAULT_LOCAL_CACHE_MB
    auto_compact: float = 0.0  # compact before a turn past this fraction (0: off)
    auto_compact_keep: int = 2  # turns kept verbatim by automatic compaction
    value_tokens: int = 1500  # each {value}'s budget in a prompt (NBCONVO_VALUE_TOKENS)
    tool_timeout: float = 60.0  # seconds a tool call may run before it is stopped
    tool_max_steps: int = 8  # model requests one turn may make while it calls tools
    tool_result_chars: int = 20_000  # characters of a tool's result the model is sent
    approve_tools: bool = False  # run every tool call unasked (`nbconvo run --allow-tools`)

    @property
    def autosave_off(self) -> bool:
        return (self.autosave or "").lower() in _OFF

    def changed(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (unknown names are a programming error)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise TypeError(f"no such setting: {', '.join(sorted(unknown))}")
        return replace(self, **changes)


def _text(value: str) -> str | None:
    return value.strip() or None


def _flag(value: str) -> bool:
    return value.strip().lower() not in _OFF


def _whole(minimum: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        number = int(value)
        if number < minimum:
            raise ValueError
        return number

    return parse


def _seconds(value: str) -> float:
    number = float(value)
    if not number >= 0:  # also refuses NaN
        raise ValueError
    return number


def _fraction(value: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise ValueError
    return number


def _mode(value: str) -> str:
    mode = value.strip().lower()
    if mode not in CASSETTE_MODES:
        raise ValueError
    return mode


# Each setting's variable, how its text is read, and what a usable value looks like.
_VARIABLES: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "model": ("NBCONVO_MODEL", _text, "PROVIDER:MODEL"),
    "stream": ("NBCONVO_STREAM", _flag, "1 or 0"),
    "max_retries": ("NBCONVO_MAX_RETRIES", _whole(0), "a whole number ≥ 0"),
    "retry_max_wait": ("NBCONVO_RETRY_MAX_WAIT", _seconds, "seconds ≥ 0"),
    "autosave": ("NBCONVO_AUTOSAVE", _text, "a file or off"),
    "home": ("NBCONVO_HOME", _text, "a folder"),
    "notebook": ("NBCONVO_NOTEBOOK", _text, "a notebook name"),
    "cassette": ("NBCONVO_CASSETTE", _text, "a file"),
    "cassette_mode": ("NBCONVO_CASSETTE_MODE", _mode, " or ".join(CASSETTE_MODES)),
    "load_notice": ("NBCONVO_LOAD_NOTICE", _flag, "on or off"),
    "cache": ("NBCONVO_CACHE", _text, "a folder"),
    "local_model": ("NBCONVO_LOCAL_MODEL", _text, "a GGUF file"),
    "llama_n_ctx": ("NBCONVO_LLAMA_N_CTX", _whole(1), "a whole number > 0, e.g. 8192"),
    "local_cache_mb": (
        "NBCONVO_LOCAL_CACHE_MB",
        _whole(0),
        "a whole number of MB ≥ 0 (0: off), e.g. 256",
    ),
    "auto_compact": ("NBCONVO_AUTO_COMPACT", _fraction, "a fraction from 0 to 1"),
    "auto_compact_keep": ("NBCONVO_AUTO_COMPACT_KEEP", _whole(0), "a whole number ≥ 0"),
    "value_tokens": ("NBCONVO_VALUE_TOKENS", _whole(50), "a whole number ≥ 50, e.g. 1500"),
    "tool_timeout": ("NBCONVO_TOOL_TIMEOUT", _seconds, "seconds ≥ 0, e.g. 60"),
    "tool_max_steps": ("NBCONVO_TOOL_MAX_STEPS", _whole(1), "a whole number ≥ 1, e.g. 8"),
    "tool_result_chars": (
        "NBCONVO_TOOL_RESULT_CHARS",
        _whole(100),
        "a whole number ≥ 100, e.g. 20000",
    ),
    "approve_tools": ("NBCONVO_APPROVE_TOOLS", _flag, "1 or 0"),
}


def variable_for(name: str) -> str:
    """The environment variable of setting ``name``."""
    return _VARIABLES[name][0]


def read_environment(environ: Mapping[str, str] | None = None) -> tuple[Settings, list[str]]:
    """The settings the environment gives, and one line for each variable whose value
    cannot be used (the default is used instead)."""
    env = os.environ if environ is None else environ
    defaults = Settings()
    values: dict[str, Any] = {}
    problems: list[str] = []
    for name, (variable, parse, expected) in _VARIABLES.items():
        raw = env.get(variable)
        if raw is None or (raw.strip() == "" and parse is not _text):
            continue
        try:
            values[name] = parse(raw)
        except ValueError:
            default = getattr(defaults, name)
            problems.append(
                f"{variable}={raw!r} is not {expected}: using {default}; "
                f"set it to {expected} or unset it"
            )
    return defaults.changed(**values), problems


def process_settings() -> Settings:
    """The environment's settings as they are now, for nbconvo used as a library outside
    a session (the extension reads them once, when it loads, into its session)."""
    return read_environment()[0]
