"""The one table of known models: context window and maximum output.

Unknown models still work; their window is unknown until ``%convo window N`` sets it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelInfo:
    context_window: int
    max_output: int | None = None
    sampling: bool = True  # accepts temperature


# Matched by exact name first, then by the longest prefix.
KNOWN_MODELS: dict[str, ModelInfo] = {
    "openai:gpt-5.5": ModelInfo(1_050_000, 128_000, sampling=False),
    "openai:gpt-5.4": ModelInfo(1_050_000, 128_000, sampling=False),
    "openai:gpt-5": ModelInfo(400_000, 128_000, sampling=False),
    "openai:gpt-4.1": ModelInfo(1_047_576, 32_768),
    "openai:gpt-4o": ModelInfo(128_000, 16_384),
    "openai:o4-mini": ModelInfo(200_000, 100_000, sampling=False),
}


def lookup(spec: str) -> ModelInfo | None:
    if spec in KNOWN_MODELS:
        return KNOWN_MODELS[spec]
    matches = [key for key in KNOWN_MODELS if spec.startswith(key)]
    return KNOWN_MODELS[max(matches, key=len)] if matches else None


def context_window(spec: str, provider: object | None = None) -> int | None:
    """The window from the provider when it knows (local models), else from the table."""
    window = getattr(provider, "context_window", None)
    if isinstance(window, int) and window > 0:
        return window
    info = lookup(spec)
    return info.context_window if info else None
