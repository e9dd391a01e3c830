"""The one table of known models: context window, maximum output, price, whether sampling
parameters (temperature) are accepted, and which tokenizer estimates their tokens.

Figures come from the wire-format reference (§6, §9: the official SDKs as of late 2026);
``None`` means not published there. Rows match by exact name first, then by the longest
prefix, so ``anthropic:claude-sonnet-5`` also covers ``claude-sonnet-5-5``. Unknown models
still work: their window is unknown until ``%convo window N`` sets it, and a temperature
is sent to them as given.
"""

from __future__ import annotations

import dataclasses
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

# -- prices ------------------------------------------------------------------------------
# Dollars per million tokens, as each provider's pricing page listed them on the day read
# (through the copies of those pages the search corpus holds, each dated). A row's price
# covers every model its prefix matches, so a model priced apart from its family has a
# row of its own (copied from the family's); a family whose members differ is left None.
_READ = "2026-11-29"
_ANTHROPIC_PAGE = "https://platform.claude.com/docs/en/about-claude/pricing"
_OPENAI_PAGE = "https://developers.openai.com/api/docs/pricing"
_GEMINI_PAGE = "https://ai.google.dev/gemini-api/docs/pricing"


def _claude(fresh: float, read: float, output: float) -> Price:
    """Anthropic: a cache write costs 1.25× the input price for the default 5-minute TTL
    (2× for the 1-hour TTL: the meter prices every write at the 5-minute figure here);
    a read ("cache hits and refreshes") 0.1× on most models, less on the newest."""
    return Price(fresh, read, fresh * 1.25, output, _READ, _ANTHROPIC_PAGE)


def _openai(fresh: float, read: float, output: float, *, write: float | None = None) -> Price:
    """OpenAI: caching is automatic; a write costs nothing extra (the input price) before
    the GPT-5.6 family, 1.25× the input price from it on (``write``)."""
    return Price(fresh, read, fresh if write is None else write, output, _READ, _OPENAI_PAGE)


def _gemini(fresh: float, output: float) -> Price:
    """Gemini: implicit caching bills a hit at 10% of the input price and nothing to
    write (prompts up to 200k tokens; output includes thinking)."""
    return Price(fresh, round(fresh * 0.1, 6), fresh, output, _READ, _GEMINI_PAGE)


_PRICES: dict[str, Price] = {
    # OpenAI. The GPT-6 and GPT-5.6 families' members are priced apart (so the family rows
    # stay None, as GPT-5.6 Sol's, whose promotional rate had no published end). GPT-5's
    # row would also match gpt-5.1 to gpt-5.3, priced otherwise: left None. Prompts over
    # 272K input tokens cost more on GPT-5.5 and later; the table holds the shorter tier.
    "openai:gpt-6-astra": _openai(10.0, 1.0, 50.0, write=12.5),
    "openai:gpt-6-sol": _openai(2.0, 0.2, 10.0, write=2.5),
    "openai:gpt-6-luna": _openai(0.1, 0.01, 0.5, write=0.125),
    "openai:gpt-6.1-sol": _openai(2.0, 0.1, 10.0, write=2.5),
    "openai:gpt-6.2-astra": _openai(8.0, 0.4, 40.0, write=10.0),
    "openai:gpt-6.2-sol": _openai(2.0, 0.1, 10.0, write=2.5),
    "openai:gpt-5.6-terra": _openai(2.0, 0.2, 12.0, write=2.5),
    "openai:gpt-5.6-luna": _openai(0.2, 0.02, 1.2, write=0.25),
    "openai:gpt-5.5": _openai(5.0, 0.5, 30.0),
    "openai:gpt-5.5-pro": _openai(30.0, 30.0, 180.0),  # no cached-input rate: no discount
    "openai:gpt-5.4": _openai(2.5, 0.25, 15.0),
    "openai:gpt-5.4-mini": _openai(0.75, 0.075, 4.5),
    "openai:gpt-5.4-nano": _openai(0.2, 0.02, 1.25),
    "openai:gpt-5.4-pro": _openai(30.0, 30.0, 180.0),
    "openai:gpt-4.1": _openai(2.0, 0.5, 8.0),
    "openai:gpt-4.1-mini": _openai(0.4, 0.1, 1.6),
    "openai:gpt-4.1-nano": _openai(0.1, 0.025, 0.4),
    "openai:gpt-4o": _openai(2.5, 1.25, 10.0),
    "openai:gpt-4o-mini": _openai(0.15, 0.075, 0.6),
    "openai:o3": _openai(2.0, 0.5, 8.0),
    "openai:o4-mini": _openai(1.1, 0.275, 4.4),
    # Anthropic. Cache reads are 0.1× input but on Sonnet 5.5 and Opus 5.5 (0.05×, Sonnet
    # 5.5's since 2026-10-07) and the 5.1 models (0.025×). Haiku 5.5: prompts up to 100K
    # tokens (longer ones cost $0.50 / $2.50, every token of the request). No price is
    # published for a "Haiku 5", so that row stays None.
    "anthropic:claude-fable-5": _claude(10.0, 1.0, 50.0),
    "anthropic:claude-fable-5-1": _claude(10.0, 0.25, 50.0),
    "anthropic:claude-mythos-5": _claude(10.0, 1.0, 50.0),
    "anthropic:claude-mythos-5-1": _claude(10.0, 0.25, 50.0),
    "anthropic:claude-opus-5": _claude(5.0, 0.5, 25.0),
    "anthropic:claude-opus-5-5": _claude(4.0, 0.2, 20.0),
    "anthropic:claude-sonnet-5": _claude(2.0, 0.2, 10.0),
    "anthropic:claude-sonnet-5-5": _claude(2.0, 0.1, 10.0),
    "anthropic:claude-haiku-5-5": _claude(0.1, 0.01, 0.5),
    "anthropic:claude-opus-4": _claude(15.0, 1.5, 75.0),  # Opus 4 and 4.1 (retired)
    "anthropic:claude-opus-4-5": _claude(5.0, 0.5, 25.0),
    "anthropic:claude-opus-4-6": _claude(5.0, 0.5, 25.0),
    "anthropic:claude-opus-4-7": _claude(5.0, 0.5, 25.0),
    "anthropic:claude-opus-4-8": _claude(5.0, 0.5, 25.0),
    "anthropic:claude-sonnet-4": _claude(3.0, 0.3, 15.0),  # Sonnet 4, 4.5 and 4.6
    "anthropic:claude-haiku-4-5": _claude(1.0, 0.1, 5.0),
    # Gemini (prompts up to 200k tokens). Gemini 3.8 Flash: the rate through 2026-12-31
    # ($1.50 / $7.50 from 2027-01-01). Gemini 3 Pro and 3.1 Flash-Lite: no price found.
    "gemini:gemini-3.8-flash": _gemini(0.75, 3.75),
    "gemini:gemini-3.5-flash": _gemini(1.5, 9.0),
    "gemini:gemini-3.5-flash-lite": _gemini(0.3, 2.5),
    "gemini:gemini-3.1-pro": _gemini(2.0, 12.0),
    "gemini:gemini-2.5-pro": _gemini(1.25, 10.0),
    "gemini:gemini-2.5-flash": _gemini(0.3, 2.5),
    "gemini:gemini-2.5-flash-lite": _gemini(0.1, 0.4),
}


def _priced(rows: dict[str, ModelInfo], prices: dict[str, Price]) -> dict[str, ModelInfo]:
    """The rows with their prices; a priced model without a row gets a copy of the row of
    its family (the longest prefix)."""
    out = dict(rows)
    for spec, price in prices.items():
        family = max((key for key in rows if spec.startswith(key)), key=len)
        out[spec] = dataclasses.replace(rows[family], price=price)
    return out


KNOWN_MODELS = _priced(KNOWN_MODELS, _PRICES)

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
    prefix = "openai" if prefix == "openai-responses" else prefix  # the same models
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
