"""Where each provider's key comes from, named once: its environment variable (and the
alternatives it accepts), and the keys typed in this session with `%convo key`.

Keys live only here and in the environment: never in a conversation, a file, an output
or an error message (errors name the variable, not the value)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class KeySource:
    provider: str  # the model prefix, e.g. "anthropic"
    variable: str
    alternatives: tuple[str, ...] = ()
    default_model: str | None = None  # chosen when this key is set and no model is


KEYS: dict[str, KeySource] = {
    source.provider: source
    for source in (
        KeySource("openai", "OPENAI_API_KEY", default_model="openai:gpt-5.5"),
        KeySource("openai-responses", "OPENAI_API_KEY"),  # the same key, another API
        KeySource("anthropic", "ANTHROPIC_API_KEY", default_model="anthropic:claude-sonnet-5-5"),
        KeySource(
            "gemini", "GEMINI_API_KEY", ("GOOGLE_API_KEY",), default_model="gemini:gemini-3.5-flash"
        ),
        KeySource("azure", "AZURE_OPENAI_API_KEY", ("AZURE_OPENAI_AD_TOKEN",)),
        KeySource("copilot", "NBCONVO_M365_TOKEN"),
        KeySource("openai-compatible", "NBCONVO_API_KEY"),
    )
}

# Keys typed with `%convo key PROVIDER` (getpass), by variable: this process only.
TYPED: dict[str, str] = {}


def key_for(variable: str, environ: Mapping[str, str] | None = None) -> str | None:
    """A key by its variable: typed this session, else from the environment."""
    env = os.environ if environ is None else environ
    return TYPED.get(variable) or env.get(variable, "").strip() or None


def keyed_default_model(environ: Mapping[str, str] | None = None) -> str | None:
    """The model of the first provider (in KEYS order) whose key is set."""
    for source in KEYS.values():
        if source.default_model and any(
            key_for(name, environ) for name in (source.variable, *source.alternatives)
        ):
            return source.default_model
    return None
