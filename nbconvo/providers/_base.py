"""The provider protocol: neutral request in, neutral events out.

A provider only translates between ``ChatRequest``/``ProviderEvent`` and one vendor's
wire format. Buffering, usage accounting, display and the tree are the caller's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from nbconvo._types import ChatRequest, ProviderEvent


class Provider(Protocol):
    """One configured backend. ``stream`` yields the answer's text as plain ``str`` pieces,
    and ``Usage``, ``Finish`` and ``Notice`` events.

    It raises ``ProviderError`` (or a subclass) on failure; it must stop cleanly when the
    caller stops iterating (the generator is closed on interrupt).
    """

    name: str

    def stream(self, request: ChatRequest) -> Iterator[ProviderEvent]: ...
