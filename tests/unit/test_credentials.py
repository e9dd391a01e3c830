"""Each provider's key variable is named once (nbconvo/_credentials.py) and everything
else reads it from there: the providers, `%convo key`, the default model choice."""

from __future__ import annotations

import pytest

from nbconvo import _credentials
from nbconvo._commands import KEY_VARIABLES
from nbconvo.providers import create_provider, default_model_spec


@pytest.mark.parametrize(
    ("spec", "provider"),
    [
        ("openai:gpt-test", "openai"),
        ("anthropic:claude-sonnet-5-5", "anthropic"),
        ("gemini:gemini-3.5-flash", "gemini"),
        ("azure:deployment", "azure"),
        ("copilot:chat", "copilot"),
        ("openai-compatible:local", "openai-compatible"),
    ],
)
def test_providers_read_their_variable_from_one_table(spec: str, provider: str) -> None:
    built = create_provider(spec, base_url="http://127.0.0.1:9")
    assert built.key_variable == _credentials.KEYS[provider].variable  # type: ignore[attr-defined]
    assert KEY_VARIABLES[provider] == _credentials.KEYS[provider].variable


def test_a_typed_key_wins_and_the_default_model_follows_the_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for source in _credentials.KEYS.values():
        for name in (source.variable, *source.alternatives):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("NBCONVO_MODEL", raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", "from-the-environment")
    assert default_model_spec() == "gemini:gemini-3.5-flash"  # an alternative counts
    monkeypatch.setitem(_credentials.TYPED, "ANTHROPIC_API_KEY", "typed")
    assert _credentials.key_for("ANTHROPIC_API_KEY") == "typed"
    assert default_model_spec() == "anthropic:claude-sonnet-5-5"  # KEYS order: anthropic first
    monkeypatch.setenv("OPENAI_API_KEY", " ")  # blank is no key
    assert _credentials.key_for("OPENAI_API_KEY") is None
