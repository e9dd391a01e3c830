"""The context meter: tokens of the next request against the model's window.

Counting is incremental. Each turn's tokens are counted once; a turn's running total
(everything from the root to it) is its parent's total plus its own, or, where the
provider reported usage, the reported input + output tokens (exact, and it already
includes the system text of that call). Turns never change, so totals are cached by turn
id and the meter costs the same at turn 1,000 as at turn 10.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from nbconvo._images import Rule
from nbconvo._parts import Content, TextPart, content_text, sendable
from nbconvo._tokens import PER_MESSAGE, REPLY_PRIMER, count_content, count_text
from nbconvo._tree import ConversationTree, Turn

State = Literal["ok", "warn", "over", "unknown"]
WARN_AT = 0.8


def upper_bound(text: str, encoding: str = "") -> int:
    """At least as many as any byte-level tokenizer (or the chars/4 estimate) counts."""
    return len(text.encode("utf-8", "surrogatepass"))


@dataclass(frozen=True)
class TokenMeter:
    """A reading of the meter: ``used`` tokens of ``window`` (None when unknown)."""

    used: int
    window: int | None
    exact: bool  # True when anchored on reported usage with nothing estimated after it
    model: str = ""

    @property
    def fraction(self) -> float | None:
        return self.used / self.window if self.window else None

    @property
    def state(self) -> State:
        fraction = self.fraction
        if fraction is None:
            return "unknown"
        if fraction > 1:
            return "over"
        return "warn" if fraction >= WARN_AT else "ok"

    def describe(self) -> str:
        approx = "" if self.exact else "≈"
        if self.window is None:
            return f"{approx}{self.used:,} tokens (window unknown: `%convo window N` sets it)"
        return f"{approx}{self.used:,} of {self.window:,} tokens ({self.fraction:.0%})"

    def bar(self, width: int = 20) -> str:
        fraction = min(self.fraction or 0.0, 1.0)
        filled = round(fraction * width)
        return "█" * filled + "░" * (width - filled)

    def _repr_markdown_(self) -> str:
        return f"`{self.bar()}` {self.describe()} · {self.state}"

    def __str__(self) -> str:
        return f"{self.bar()} {self.describe()} · {self.state}"


@dataclass
class TokenLedger:
    """Per-turn token totals, cached by turn id."""

    encoding: str = "cl100k_base"
    images: Rule = "openai"  # the provider's rule for an image's tokens
    own: dict[int, int] = field(default_factory=dict)
    total: dict[int, tuple[int, bool]] = field(default_factory=dict)  # (tokens, anchored)

    def own_tokens(self, turn: Turn) -> int:
        if turn.id not in self.own:
            if not turn.answer and not turn.answer_parts:
                self.own[turn.id] = 0
            elif turn.kind == "summary":  # sent inside the system text
                self.own[turn.id] = count_text(turn.answer, self.encoding) + PER_MESSAGE
            else:
                self.own[turn.id] = (
                    2 * PER_MESSAGE
                    + (
                        count_content(sendable(turn.prompt_parts), self.encoding, self.images)
                        if turn.prompt_parts
                        else count_text(turn.prompt, self.encoding)
                    )
                    + self._answer_tokens(turn)
                )
        return self.own[turn.id]

    def _answer_tokens(self, turn: Turn) -> int:
        if not turn.answer_parts:
            return count_text(turn.answer, self.encoding)
        # A turn that called tools: its text, each call and each result (one message each
        # round, as ``Conversation.messages`` sends them).
        return count_content(turn.answer_parts, self.encoding, self.images)

    def running_total(self, tree: ConversationTree, turn_id: int | None) -> tuple[int, bool]:
        """Tokens from the root through ``turn_id`` and whether an exact anchor is in it."""
        if turn_id is None:
            return 0, False
        if turn_id in self.total:
            return self.total[turn_id]
        pending: list[Turn] = []  # walk up only as far as the first cached ancestor
        node: int | None = turn_id
        while node is not None and node not in self.total:
            pending.append(tree.turns[node])
            node = tree.turns[node].parent
        tokens, anchored = self.total[node] if node is not None else (0, False)
        for turn in reversed(pending):
            if turn.usage_exact and turn.kind == "turn":
                tokens, anchored = turn.input_tokens + turn.output_tokens, True
            else:
                tokens += self.own_tokens(turn)
            self.total[turn.id] = (tokens, anchored)
        return tokens, anchored

    def reading(
        self,
        tree: ConversationTree,
        head: int | None,
        *,
        system: str | None,
        pending: Content | None,
        window: int | None,
        model: str = "",
        bound: bool = False,
    ) -> TokenMeter:
        """``bound``: count the system text and the pending prompt by their UTF-8 length,
        an upper bound that needs no tokenizer (no token is shorter than one byte)."""
        count = upper_bound if bound else count_text
        tokens, anchored = self.running_total(tree, head)
        if not anchored:  # an exact anchor already counted the system text
            tokens += REPLY_PRIMER + (PER_MESSAGE + count(system, self.encoding) if system else 0)
        exact = anchored and (head is None or tree.turns[head].usage_exact)
        if pending:
            text = content_text(pending)
            images = () if isinstance(pending, str) else pending
            tokens += PER_MESSAGE + count(text, self.encoding) if text else PER_MESSAGE
            tokens += count_content(
                tuple(p for p in images if not isinstance(p, TextPart)), self.encoding, self.images
            )
            exact = False
        return TokenMeter(used=tokens, window=window, exact=exact, model=model)
