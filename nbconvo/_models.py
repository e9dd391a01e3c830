"""The one table of known models: context window, maximum output, whether sampling
parameters (temperature) are accepted, and which tokenizer estimates their tokens.

Figures come from the wire-format reference (§6, §9: the official SDKs as of late 2026);
``None`` means not published there. Rows match by exact name first, then by the longest
prefix, so ``anthropic:claude-sonnet-5`` also covers ``claude-sonnet-5-5``. Unknown models
still work: their window is unknown until ``%convo window N`` sets it, and a temperature
is sent to them as given.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens: fresh input, input read from the prompt cache,
    input written to it, and output (reasoning included); with the date the figures were
    read and where (a provider's pricing page)."""

    input: float
    cached_input: float
    cache_write: float
    output: float
    as_of: str  # "2026-11-29"
    source: str  # the page's address

    def cost(self, fresh: int, cached: int, written: int, output: int) -> float:
        per = 1_000_000
        return (
            fresh * self.input + cached * self.cached_input + written * self.cache_write
            + output * self.output
        ) / per  # fmt: skip


@dataclass(frozen=True)
class ModelInfo:
    context_window: int | None
    max_output: int | None = None
    sampling: bool = True  # accepts temperature (reasoning models and Anthropic do not)
    tokenizer: str = "estimate"  # a tiktoken encoding name, or "estimate" (provider-specific)
    default_max_tokens: int | None = None  # sent when the user sets none (Anthropic needs one)
    price: Price | None = None  # None: not known (a cost is then "unknown", never 0)
    reasoning: bool = False  # takes an effort setting (--effort)


_O200K = "o200k_base"
_CLAUDE_5 = ModelInfo(1_000_000, 128_000, sampling=False, default_max_tokens=16_384, reasoning=True)
_GEMINI_1M = ModelInfo(1_048_576, 65_536, reasoning=True)
# Every model listed below, but GPT-4.1 and GPT-4o, reasons and takes an effort setting.
_O_SERIES = ModelInfo(200_000, 100_000, sampling=False, tokenizer=_O200K, reasoning=True)
_CLAUDE = ModelInfo(None, None, sampling=False, reasoning=True)
_CLAUDE_16K = ModelInfo(None, None, sampling=False, default_max_tokens=16_384, reasoning=True)
_GEMINI = ModelInfo(None, None, reasoning=True)

KNOWN_MODELS: dict[str, ModelInfo] = {
    # OpenAI: the GPT-5 family and later, and the o-series, take no temperature.
    "openai:gpt-6": ModelInfo(None, None, sampling=False, tokenizer=_O200K, reasoning=True),
    "openai:gpt-5.6": ModelInfo(None, None, sampling=False, tokenizer=_O200K, reasoning=True),
    "openai:gpt-5.5": ModelInfo(
        1_050_000, 128_000, sampling=False, tokenizer=_O200K, reasoning=True
    ),
    "openai:gpt-5.4": ModelInfo(
        1_050_000, 128_000, sampling=False, tokenizer=_O200K, reasoning=True
    ),
    "openai:gpt-5": ModelInfo(400_000, 128_000, sampling=False, tokenizer=_O200K, reasoning=True),
    "openai:gpt-4.1": ModelInfo(1_047_576, 32_768, tokenizer=_O200K),
    "openai:gpt-4o": ModelInfo(128_000, 16_384, tokenizer=_O200K),
    "openai:o4-mini": _O_SERIES,
    "openai:o3": _O_SERIES,
    # Anthropic: API version 2026-10-21 accepts no sampling parameters at all, for any model.
    "anthropic:": _CLAUDE,
    "anthropic:claude-opus-5": _CLAUDE_5,
    "anthropic:claude-sonnet-5": _CLAUDE_5,
    "anthropic:claude-fable-5": _CLAUDE_5,
    "anthropic:claude-mythos-5": _CLAUDE_16K,
    "anthropic:claude-haiku-5": _CLAUDE_16K,
    "anthropic:claude-opus-4": _CLAUDE_16K,
    "anthropic:claude-sonnet-4": _CLAUDE_16K,
    "anthropic:claude-haiku-4-5": ModelInfo(
        200_000, 64_000, sampling=False, default_max_tokens=8_192, reasoning=True
    ),
    # Gemini
    "gemini:gemini-3.8": _GEMINI,
    "gemini:gemini-3.5": _GEMINI,
    "gemini:gemini-3.1-flash-lite": _GEMINI,
    "gemini:gemini-3.1-pro": _GEMINI_1M,
    "gemini:gemini-3-pro": _GEMINI_1M,
    "gemini:gemini-2.5": _GEMINI_1M,
    # Microsoft 365 Copilot chooses its own model and publishes no window.
    "copilot:": ModelInfo(None, None, sampling=False),
}

# Anthropic requires max_tokens on every request; this is sent for models not listed above.
DEFAULT_MAX_TOKENS = 8_192


@functools.lru_cache(maxsize=256)  # the table is fixed; a turn asks several times
def lookup(spec: str) -> ModelInfo | None:
    """The row for ``PROVIDER:MODEL``. An Azure deployment named after an OpenAI model
    (``azure:gpt-4o``) uses that model's row, as does OpenAI's Responses API
    (``openai-responses:gpt-5.5``)."""
    spec = spec.strip()
    if spec in KNOWN_MODELS:
        return KNOWN_MODELS[spec]
    matches = [key for key in KNOWN_MODELS if spec.startswith(key)]
    if matches:
        return KNOWN_MODELS[max(matches, key=len)]
    prefix, _, model = spec.partition(":")
    if prefix in ("azure", "openai-responses") and model:
        return lookup(f"openai:{model}")
    return None


def known_names(prefix: str) -> list[str]:
    """The model names (or name prefixes) the table knows for a provider, for messages."""
    names = (key.partition(":")[2] for key in KNOWN_MODELS if key.startswith(f"{prefix}:"))
    return [name for name in names if name]


def accepts_sampling(spec: str) -> bool:
    """False when the model is known to reject temperature; unknown models get it."""
    info = lookup(spec)
    return info.sampling if info else True


def default_max_tokens(spec: str) -> int:
    info = lookup(spec)
    if info and info.default_max_tokens:
        return info.default_max_tokens
    return DEFAULT_MAX_TOKENS


def tokenizer_hint(spec: str) -> str:
    info = lookup(spec)
    return info.tokenizer if info else "estimate"


def context_window(spec: str, provider: object | None = None) -> int | None:
    """The window from the provider when it knows (local models), else from the table."""
    window = getattr(provider, "context_window", None)
    if isinstance(window, int) and window > 0:
        return window
    info = lookup(spec)
    return info.context_window if info else None


# Models run on the user's own machine: no price per token.
LOCAL_PREFIXES = frozenset({"llama", "ollama", "vllm", "llamacpp", "lmstudio"})
FREE = Price(0.0, 0.0, 0.0, 0.0, "", "runs locally")


def price_for(spec: str) -> Price | None:
    """The model's price, FREE for a local model, None when not known."""
    if spec.partition(":")[0] in LOCAL_PREFIXES:
        return FREE
    info = lookup(spec)
    return info.price if info else None


def takes_effort(spec: str) -> bool:
    """Whether the model is known to take a reasoning effort setting."""
    info = lookup(spec)
    return bool(info and info.reasoning)
