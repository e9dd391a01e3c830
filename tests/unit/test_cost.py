"""Cost in money (#18): each turn's tokens times its model's price, split as providers
bill them; an unknown price is "cost unknown", never 0; a cost budget refuses a turn
that would pass it; effort only for models that take it; caching asked for by default."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell

import nbconvo
from nbconvo._conversation import Conversation
from nbconvo._cost import Cost, money, total_cost, turn_cost
from nbconvo._models import Price
from nbconvo._tree import Turn
from nbconvo._types import ChatRequest, Finish, ProviderEvent, Usage
from tests.support.helpers import one_line_error

PRICE = Price(3.0, 0.3, 3.75, 15.0, "2026-11-29", "test")


def turn(**fields: object) -> Turn:
    base: dict[str, object] = {"id": 1, "parent": None, "prompt": "p", "answer": "a",
                               "provider": "anthropic", "model": "claude-test"}  # fmt: skip
    return Turn(**{**base, **fields})  # type: ignore[arg-type]


def test_a_turns_cost_splits_fresh_input_cache_reads_writes_and_output() -> None:
    billed = {"input": 10_000, "cached": 8_000, "written": 1_000, "output": 500}
    cost = turn_cost(turn(billed=billed), {"anthropic:claude-test": PRICE})
    assert cost.fresh == pytest.approx(1_000 * 3.0 / 1e6)
    assert cost.cache_reads == pytest.approx(8_000 * 0.3 / 1e6)
    assert cost.cache_writes == pytest.approx(1_000 * 3.75 / 1e6)
    assert cost.output == pytest.approx(500 * 15.0 / 1e6)
    assert cost.describe() == (
        "$0.017 (input $0.0030, cache reads $0.0024, cache writes $0.0037, output $0.0075)"
    )


def test_an_unknown_price_is_never_zero() -> None:
    unknown = turn_cost(turn(model="nobody-knows", billed={"input": 10, "output": 10}))
    assert unknown.describe() == "cost unknown" and unknown.unpriced == 1
    both = total_cost(
        [turn(billed={"input": 1_000_000, "output": 0}), turn(id=2, model="nobody-knows")],
        {"anthropic:claude-test": PRICE},
    )
    assert both.describe() == "$3.00 + 1 turn of unknown cost"
    assert turn_cost(turn(provider="llama", model="x")).describe() == "$0"  # local: free


def test_money_reads_at_every_scale() -> None:
    assert [money(v) for v in (0, 0.00001, 0.0031, 0.25, 1234.5)] == [
        "$0", "<$0.0001", "$0.0031", "$0.250", "$1,234.50"
    ]  # fmt: skip
    assert Cost().describe() == "$0"


class Usaged:
    """A provider that reports what a prompt cache would: 900 of 1,000 input tokens read."""

    name = "anthropic"

    def __init__(self) -> None:
        self.requests: list[ChatRequest] = []

    def stream(self, request: ChatRequest) -> Iterator[ProviderEvent]:
        self.requests.append(request)
        yield "an answer"
        yield Usage(1_000, 50, cached_input_tokens=900)
        yield Finish("stop")


def priced(spec: str = "anthropic:claude-test") -> tuple[Conversation, Usaged]:
    convo = Conversation(model=spec)
    provider = Usaged()
    convo._providers[(spec, None)] = provider  # type: ignore[assignment]
    convo.prices = {spec: [3.0, 15.0, 0.3]}
    return convo, provider


def test_the_engine_asks_for_caching_by_default_with_a_key_per_tree() -> None:
    convo, provider = priced()
    convo.ask("one")
    policy = provider.requests[-1].cache
    assert policy is not None and policy.key == convo.cache_key and policy.ttl == "5m"
    assert Conversation().cache_key != convo.cache_key
    convo.cache = False
    convo.ask("two")
    assert provider.requests[-1].cache is None


def test_the_cache_lifetime_grows_to_an_hour_when_the_user_pauses_long() -> None:
    convo, _ = priced()
    for n, started in enumerate((0.0, 400.0, 800.0), 1):
        convo.tree.append(turn(id=n, parent=n - 1 or None, started_at=started,
                               finished_at=started + 10))  # fmt: skip
    convo.tree.branches["main"] = 3
    assert convo._cache_ttl() == "1h"  # two pauses of 390 s
    convo.tree.append(turn(id=4, parent=3, started_at=830.0, finished_at=840.0))
    convo.tree.branches["main"] = 4
    assert convo._cache_ttl() == "5m"  # the last pause was 20 s
    convo.cache_ttl = "1h"
    assert convo._cache_ttl() == "1h"


def test_a_turn_keeps_what_it_was_billed_and_costs_it() -> None:
    convo, _ = priced()
    done = convo.ask("one")
    assert done.billed == {"input": 1_000, "cached": 900, "output": 50}
    cost = convo.cost([done])
    assert cost.total == pytest.approx((100 * 3 + 900 * 0.3 + 50 * 15) / 1e6)


def test_a_cost_budget_refuses_the_turn_that_would_pass_it() -> None:
    convo, provider = priced()
    convo.ask("one")
    convo.cost_budget = convo.cost().total + 1e-9  # nothing left
    with pytest.raises(nbconvo.UsageError) as caught:
        convo.ask("two")
    assert "would take the tree past its cost budget of" in str(caught.value)
    assert str(caught.value).endswith("nothing was sent")
    assert len(provider.requests) == 1 and len(convo.turns) == 1


def test_a_cost_budget_needs_a_price() -> None:
    convo, provider = priced("anthropic:nobody-knows")
    convo.prices = {}
    convo.cost_budget = 2.0
    with pytest.raises(nbconvo.UsageError, match="needs anthropic:nobody-knows's price"):
        convo.ask("one")
    assert provider.requests == []


def test_effort_on_a_model_that_has_none_is_refused_before_sending() -> None:
    convo, provider = priced("openai:gpt-4.1")
    with pytest.raises(nbconvo.UsageError) as caught:
        convo.ask("one", effort="high")
    assert str(caught.value) == (
        "openai:gpt-4.1 takes no reasoning effort: remove --effort (or `%convo effort "
        "--clear`), or choose a reasoning model; nothing was sent"
    )
    assert provider.requests == []


# -- through a real shell --------------------------------------------------------------


def footer(shell: InteractiveShell) -> str:
    return next(p for p in reversed(shell.display_pub.plain()) if p.startswith("turn "))


def test_price_meter_and_budget_through_the_magics(
    convo_shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    assert convo_shell.run_cell("%%turn\none", cell_id="c1").success
    assert "cost unknown" in footer(convo_shell)  # the fake's model has no price
    assert convo_shell.run_cell("%convo price openai:gpt-test 2.5 10 0.25").success
    assert convo_shell.run_cell("%%turn\ntwo", cell_id="c2").success
    assert "<$0.0001" in footer(convo_shell) and "cost unknown" not in footer(convo_shell)
    convo_shell.display_pub.reset()
    assert convo_shell.run_cell("%convo meter").success
    meter = convo_shell.display_pub.plain()[-1]
    assert "last turn: <$0.0001" in meter
    # A price is the model's: turn 1, sent before it was set, is priced by it too.
    assert "tree: $0.0001 (input <$0.0001, output <$0.0001)" in meter
    assert convo_shell.run_cell("%convo budget --cost 0.00001").success
    message = one_line_error(convo_shell, "%%turn\nthree", capsys)
    assert "would take the tree past its cost budget of <$0.0001" in message
    assert len(nbconvo.current().turns) == 2


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("%convo price openai:gpt-test 2.5", "%convo price MODEL INPUT OUTPUT [CACHED]"),
        ("%convo price openai:gpt-test cheap 10", "a price is dollars per million tokens"),
        ("%convo price openai:gpt-test -1 10", "a price cannot be negative"),
        ("%convo price nope:model 1 2", "nope"),
        ("%convo budget --cost lots", "--cost needs an amount in dollars"),
        ("%convo budget --cost 0", "--cost must be more than 0 dollars"),
        ("%convo effort extreme", "invalid choice"),
        ("%%turn --effort extreme\nhi", "invalid choice"),
    ],
)
def test_bad_cost_and_effort_input_is_one_line(
    convo_shell: InteractiveShell, capsys: pytest.CaptureFixture[str], source: str, says: str
) -> None:
    convo = nbconvo.current()
    before = (convo.prices, convo.cost_budget, convo.effort, len(convo.turns))
    message = one_line_error(convo_shell, source, capsys)
    assert says in message and "\n" not in message
    assert (convo.prices, convo.cost_budget, convo.effort, len(convo.turns)) == before


def test_cache_and_effort_commands(convo_shell: InteractiveShell) -> None:
    convo = nbconvo.current()
    assert convo_shell.run_cell("%convo cache off").success and convo.cache is False
    assert convo.request("x").cache is None
    assert convo_shell.run_cell("%convo cache 1h").success
    assert convo.cache and convo.request("x").cache.ttl == "1h"  # type: ignore[union-attr]
    assert convo_shell.run_cell("%convo effort high").success and convo.effort == "high"
    assert convo.request("x").effort == "high"
    assert convo_shell.run_cell("%convo effort --clear").success and convo.effort is None


def test_branch_and_tree_costs_are_kept_as_turns_arrive() -> None:
    """The ledger prices each turn once: the branch's cost is its tip's running total and
    the tree's a running sum, whatever the tree's size; a new price starts afresh."""
    convo, _ = priced()
    for text in ("one", "two", "three"):
        convo.ask(text)
    convo.fork(1, "side")
    convo.ask("four")
    each = convo.cost([convo.turns[0]]).total
    assert convo.branch_cost().total == pytest.approx(2 * each)  # one, four
    assert convo.cost().total == pytest.approx(4 * each)
    convo.switch("main")
    assert convo.branch_cost().total == pytest.approx(3 * each)
    convo.prices = {"anthropic:claude-test": [6.0, 30.0, 0.6]}  # twice the price
    assert convo.cost().total == pytest.approx(8 * each)
    from nbconvo._widget import cost_line

    assert cost_line(convo).startswith("branch $")
    assert " · tree $" in cost_line(convo)
