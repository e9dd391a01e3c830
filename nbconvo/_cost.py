"""What turns cost in money: each turn's tokens (fresh input, input read from and written
to the prompt cache, output) times its model's price, summed over a branch or a tree.

A turn whose model has no known price has an unknown cost, never 0; a sum with such a
turn says how many turns it could not price. Local models are free. Prices come from the
known-models table (``_models.Price``) unless the user set one (``%convo price``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from nbconvo._models import Price, price_for
from nbconvo._tree import ConversationTree, Turn


@dataclass(frozen=True)
class Cost:
    """Dollars, split as a provider bills them; ``unpriced``: turns left out (no price)."""

    fresh: float = 0.0
    cache_reads: float = 0.0
    cache_writes: float = 0.0
    output: float = 0.0
    turns: int = 0
    unpriced: int = 0

    @property
    def total(self) -> float:
        return self.fresh + self.cache_reads + self.cache_writes + self.output

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.fresh + other.fresh,
            self.cache_reads + other.cache_reads,
            self.cache_writes + other.cache_writes,
            self.output + other.output,
            self.turns + other.turns,
            self.unpriced + other.unpriced,
        )

    def describe(self) -> str:
        """ "$0.0312 (input $0.0105, cache reads $0.0021, cache writes $0.0026, output
        $0.0160)", "cost unknown", or the priced part and how many turns are not."""
        if self.turns and self.unpriced == self.turns:
            return "cost unknown"
        parts = [
            f"{name} {money(value)}"
            for name, value in (
                ("input", self.fresh),
                ("cache reads", self.cache_reads),
                ("cache writes", self.cache_writes),
                ("output", self.output),
            )
            if value
        ]
        text = money(self.total) + (f" ({', '.join(parts)})" if len(parts) > 1 else "")
        if self.unpriced:
            text += f" + {self.unpriced} turn{'s' if self.unpriced != 1 else ''} of unknown cost"
        return text


def short(cost: Cost) -> str:
    """The total alone: "$0.031", "cost unknown", "$0.031 + 2 unknown"."""
    if cost.turns and cost.unpriced == cost.turns:
        return "cost unknown"
    return money(cost.total) + (f" + {cost.unpriced} unknown" if cost.unpriced else "")


def money(dollars: float) -> str:
    """Dollars with the precision a turn's cost needs: $0.0031, $1.24."""
    if dollars == 0:
        return "$0"
    if dollars < 0.0001:
        return "<$0.0001"
    if dollars < 0.01:
        return f"${dollars:.4f}"
    if dollars < 1:
        return f"${dollars:.3f}"
    return f"${dollars:,.2f}"


def tokens_billed(turn: Turn) -> tuple[int, int, int, int]:
    """(fresh input, cache reads, cache writes, output) the turn was billed, over every
    request it made (a turn that called tools made several)."""
    billed = turn.billed
    if billed:
        cached, written = billed.get("cached", 0), billed.get("written", 0)
        fresh = max(billed.get("input", 0) - cached - written, 0)
        return fresh, cached, written, billed.get("output", 0)
    fresh = max(turn.input_tokens - turn.cached_tokens - turn.cache_write_tokens, 0)
    return fresh, turn.cached_tokens, turn.cache_write_tokens, turn.output_tokens


def turn_cost(turn: Turn, prices: Mapping[str, Price] | None = None) -> Cost:
    """The turn's cost (a summary or a copy made by compaction costs nothing again)."""
    if turn.kind != "turn" or not turn.provider:
        return Cost()
    spec = f"{turn.provider}:{turn.model}"
    price = (prices or {}).get(spec) or price_for(spec)
    if price is None:
        return Cost(turns=1, unpriced=1)
    fresh, cached, written, output = tokens_billed(turn)
    million = 1_000_000
    return Cost(
        fresh * price.input / million,
        cached * price.cached_input / million,
        written * price.cache_write / million,
        output * price.output / million,
        turns=1,
    )


def total_cost(turns: Iterable[Turn], prices: Mapping[str, Price] | None = None) -> Cost:
    out = Cost()
    for turn in turns:
        out = out + turn_cost(turn, prices)
    return out


def user_price(values: list[float], as_of: str) -> Price:
    """``%convo price MODEL IN OUT [CACHED]``: a price the user gives (cache writes at the
    input price, cache reads at CACHED or the input price)."""
    fresh, output = values[0], values[1]
    cached = values[2] if len(values) > 2 else fresh
    return Price(fresh, cached, fresh, output, as_of, "set with %convo price")


@dataclass
class CostLedger:
    """Costs of one tree under one price table, kept as turns arrive: a branch's cost is
    its tip's running total (computed once per turn, like the token meter's), the tree's a
    sum kept up to date; so the widget's update costs the same at 10,000 turns as at 10."""

    prices: Mapping[str, Price]
    _own: dict[int, Cost] = field(default_factory=dict)
    _through: dict[int, Cost] = field(default_factory=dict)
    _tree: Cost = field(default_factory=Cost)
    _counted: int = 1  # turns with smaller ids are in _tree

    def own(self, turn: Turn) -> Cost:
        if turn.id not in self._own:
            self._own[turn.id] = turn_cost(turn, self.prices)
        return self._own[turn.id]

    def through(self, tree: ConversationTree, turn_id: int | None) -> Cost:
        """The cost of the path from the root through ``turn_id``."""
        pending: list[Turn] = []
        node = turn_id
        while node is not None and node not in self._through:
            pending.append(tree.turns[node])
            node = tree.turns[node].parent
        total = self._through[node] if node is not None else Cost()
        for turn in reversed(pending):
            total = total + self.own(turn)
            self._through[turn.id] = total
        return total

    def tree(self, tree: ConversationTree) -> Cost:
        for turn_id in range(self._counted, tree.next_id):
            if turn_id in tree.turns:
                self._tree = self._tree + self.own(tree.turns[turn_id])
        self._counted = max(self._counted, tree.next_id)
        return self._tree
