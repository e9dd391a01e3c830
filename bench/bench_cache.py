"""Prompt caching across a conversation tree (issue #18), on the Anthropic and OpenAI
fakes, which cache as the providers describe (``tests/support/fakes``: breakpoints, the
minimum lengths, TTLs on a clock of their own, OpenAI's automatic 128-token steps).

The dialogue, driven as a user drives it (``nbconvo.Conversation``): a 2,000-token system
prompt, 20 turns (cells c1…c20), a fork at turn 10 with 3 turns on it, then a rerun of turn
5 (its cell run again: ``ask(text, cell_id="c5", …)``); 24 requests. Prompts of about 40
words, answers of about 120 (the fakes' count: a word a token in a prompt; an answer's
tokens are its streamed pieces, cut here to about a word each). The fakes' clock moves 30 s
between turns: a user reading and typing.

Printed for each provider, with caching on (the default) and off (``Conversation.cache =
False``: nothing asked for; OpenAI's caching is automatic, so off there still reads, only
without the tree's key): the share of input tokens read from the cache (goal ≥ 80% with
caching), and the dialogue's cost with caching over its cost without any (every input
token fresh: Anthropic's run with caching off), from each turn's usage and the model
table's price (``Price.cost(fresh, cached, written, output)``, fresh = input − cached −
written; goal ≤ 0.35 on Anthropic prices). A missed goal is printed, not failed on.

Run: ``.venv/bin/python bench/bench_cache.py``. Writes ``bench/out/cache.json``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from common import write

import nbconvo
from nbconvo._models import Price, price_for
from tests.support.fakes.anthropic_server import FakeAnthropic
from tests.support.fakes.base import FakeClock
from tests.support.fakes.openai_server import FakeOpenAI

SHARE_GOAL = 0.80
COST_GOAL = 0.35
PACE_S = 30.0
MODELS = {"anthropic": "anthropic:claude-sonnet-5", "openai": "openai:gpt-5.5"}
CHUNK = 9  # characters a streamed piece: about a word of this vocabulary
OPENAI_KEY = "sk-bench-fake-key-000000000000"

WORDS = [
    *("revenue", "churn", "cohort", "retention", "forecast", "region", "store", "week"),
    *("promotion", "holiday", "weather", "returns", "margin", "basket", "segment"),
    *("loyalty", "price", "elasticity", "inventory", "supplier", "lead", "time"),
]


def text(seed: int, words: int) -> str:
    return " ".join(WORDS[(seed * 7 + k * 3) % len(WORDS)] for k in range(words))


SYSTEM = "You are a careful analyst. " + text(0, 1_994)  # 2,000 tokens in the fakes' count


def prompt(n: int) -> str:
    return f"Question {n}: " + text(n, 38)


def answer(users: list[str]) -> str:
    return f"Answer {len(users)}: " + text(len(users) + 100, 118)


def dialogue(convo: nbconvo.Conversation, clock: FakeClock) -> None:
    def ask(words: str, cell: str) -> None:
        convo.ask(words, cell_id=cell, execution=object())
        clock.advance(PACE_S)

    for n in range(1, 21):
        ask(prompt(n), f"c{n}")
    convo.fork(10)
    for n in range(11, 14):
        ask(prompt(100 + n), f"f{n}")
    ask(prompt(5), "c5")  # the cell of turn 5, run again


def run(provider: str, cache: bool) -> dict[str, Any]:
    clock = FakeClock()
    spec = MODELS[provider]
    fake: Any
    if provider == "anthropic":
        fake = FakeAnthropic(clock=clock, answer=answer, chunk_size=CHUNK)
        env = {"ANTHROPIC_API_KEY": fake.api_key, "ANTHROPIC_BASE_URL": fake.base_url}
    else:
        fake = FakeOpenAI(
            api_key=OPENAI_KEY,
            clock=clock,
            chunk_size=CHUNK,
            answer=lambda messages: answer([m for m in messages if m["role"] == "user"]),
        )
        env = {"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": fake.base_url}
    with fake:
        os.environ.update(env)
        try:
            convo = nbconvo.Conversation(model=spec, system=SYSTEM)
            convo.cache = cache
            dialogue(convo, clock)
        finally:
            for name in env:
                os.environ.pop(name, None)
    price = price_for(spec)
    assert price is not None, spec
    turns = [t for t in convo.turns if t.kind == "turn"]
    total = {"input": 0, "cached": 0, "written": 0, "output": 0}
    cost = full = 0.0
    for turn in turns:
        fresh = turn.input_tokens - turn.cached_tokens - turn.cache_write_tokens
        cost += price.cost(fresh, turn.cached_tokens, turn.cache_write_tokens, turn.output_tokens)
        full += price.cost(turn.input_tokens, 0, 0, turn.output_tokens)  # nothing cached
        total["input"] += turn.input_tokens
        total["cached"] += turn.cached_tokens
        total["written"] += turn.cache_write_tokens
        total["output"] += turn.output_tokens
    fork = next(t for t in turns if t.cell_id == "f11")  # the fork's first turn
    rerun = [t for t in turns if t.cell_id == "c5"][-1]  # turn 5's second version
    return {
        "fork": [fork.cached_tokens, fork.input_tokens],
        "rerun": [rerun.cached_tokens, rerun.input_tokens],
        "requests": len(fake.requests),
        "turns": len(turns),
        **total,
        "share": total["cached"] / total["input"],
        "cost": cost,
        "cost_uncached": full,
        "price": price_text(price),
    }


def price_text(price: Price) -> str:
    return (
        f"${price.input:g} in, ${price.cached_input:g} read, ${price.cache_write:g} written, "
        f"${price.output:g} out per MTok ({price.as_of})"
    )


def main() -> int:
    results: dict[str, Any] = {"pace_s": PACE_S, "share_goal": SHARE_GOAL, "cost_goal": COST_GOAL}
    print(
        "Prompt caching on the fakes: 2,000-token system prompt, 20 turns 30 s apart, a fork "
        "at turn 10 (3 turns), a rerun of turn 5"
    )
    ok = True
    for provider, spec in MODELS.items():
        on, off = run(provider, True), run(provider, False)
        ratio = on["cost"] / on["cost_uncached"]
        share_met = on["share"] >= SHARE_GOAL
        cost_met = ratio <= COST_GOAL
        results[provider] = {"model": spec, "cached": on, "uncached": off, "ratio": ratio}
        print(f"\n{spec} — {on['price']}; {on['requests']} requests")
        for label, row in (("caching on ", on), ("caching off", off)):
            print(
                f"  {label}: input {row['input']:,} tokens, read from cache {row['cached']:,} "
                f"({row['share']:.1%}), written {row['written']:,}, output {row['output']:,}; "
                f"cost ${row['cost']:.4f}"
            )
        (fork_read, fork_in), (rerun_read, rerun_in) = on["fork"], on["rerun"]
        print(
            f"  the fork's first turn read {fork_read:,} of {fork_in:,} tokens from the cache, "
            f"the rerun of turn 5 {rerun_read:,} of {rerun_in:,}"
        )
        print(
            f"  share read from cache {on['share']:.1%} (goal ≥ {SHARE_GOAL:.0%}: "
            f"{'met' if share_met else 'MISSED'})"
        )
        goal = f"goal ≤ {COST_GOAL}: {'met' if cost_met else 'MISSED'}"
        if provider != "anthropic":
            goal = f"the goal of ≤ {COST_GOAL} is set on Anthropic prices"
        print(
            f"  cost with caching / without any: ${on['cost']:.4f} / "
            f"${on['cost_uncached']:.4f} = {ratio:.2f} ({goal})"
        )
        ok = ok and share_met and (cost_met or provider != "anthropic")
    write("cache", results)
    return 0 if ok or "--strict" not in sys.argv else 1


if __name__ == "__main__":
    sys.exit(main())
