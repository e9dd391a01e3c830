"""The in-process model's states kept by token prefix (issue #19), on the real 0.5B model:
answers with kept states equal answers without them at temperature 0, a seed repeats its
answer after a detour through another branch, the usage says how many prompt tokens were
reused and that is what llama skipped, the kept states stay within their budget, and
the Qwen template's prompt for turn N+1 extends turn N's prompt and answer token by
token (so the prefix matches). No timings here: `bench/bench_local_cache.py` measures."""

from __future__ import annotations

import random
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

from nbconvo._settings import Settings
from nbconvo._types import ChatRequest, Message, TextDelta, Usage
from nbconvo.providers import create_provider
from nbconvo.providers.llama import (
    LlamaProvider,
    _load,
    _LoadedModel,
    _state_cache_type,
    load_state,
    saved_bytes,
    state_bytes,
)
from nbconvo.providers.openai import OpenAICompatibleProvider
from tests.conftest import SERVER_MODEL_ALIAS
from tests.support.helpers import NotebookOutputs

pytestmark = pytest.mark.model

FILLER = " Answer in a few words."
SYSTEM = "You are a terse assistant."


def user(text: str) -> Message:
    return {"role": "user", "content": text + FILLER}


def assistant(text: str) -> Message:
    return {"role": "assistant", "content": text}


def loaded_model(provider: LlamaProvider) -> _LoadedModel:
    return _load(provider.path, provider.n_ctx)


@pytest.fixture
def fresh(local_model_path: Path) -> Iterator[_LoadedModel]:
    """The shared model with nothing evaluated and no states kept (earlier tests' KV
    cache would otherwise decide what is reused)."""
    loaded = _load(local_model_path, Settings().llama_n_ctx)
    loaded.states = None
    loaded.llm.reset()
    yield loaded
    loaded.states = None


def provider_with(path: Path, cache_mb: int) -> LlamaProvider:
    return LlamaProvider(model=str(path), settings=Settings(local_cache_mb=cache_mb))


class Chat:
    """Asks ``provider`` with ``messages`` and records each answer and usage."""

    def __init__(self, provider: LlamaProvider, *, seed: int | None = None) -> None:
        self.provider = provider
        self.seed = seed
        self.answers: list[str] = []
        self.usages: list[Usage] = []

    def ask(self, messages: list[Message], **options: Any) -> str:
        request = ChatRequest(
            provider="llama",
            model="test",
            messages=tuple(messages),
            system=options.get("system", SYSTEM),
            temperature=options.get("temperature", 0),
            max_tokens=options.get("max_tokens", 6),
            seed=options.get("seed", self.seed),
        )
        events = list(self.provider.stream(request))
        answer = "".join(e for e in events if isinstance(e, TextDelta))
        (usage,) = [e for e in events if isinstance(e, Usage)]
        self.answers.append(answer)
        self.usages.append(usage)
        return answer


def branching_session(chat: Chat) -> None:
    """Main for three turns, a fork at turn 1 for two, back to main, then a rerun of
    main's turn 2 (a new version of it after the fork's turns)."""
    main: list[Message] = []
    for question in ("Name a fruit.", "Name a colour.", "Name an animal."):
        main += [user(question)]
        main += [assistant(chat.ask(main))]
    fork = main[:2]
    for question in ("Name a planet.", "Name a metal."):
        fork += [user(question)]
        fork += [assistant(chat.ask(fork))]
    main += [user("Name a tree.")]
    chat.ask(main)  # back on main
    chat.ask(main[:3])  # turn 2 of main, again


def test_answers_with_kept_states_equal_answers_without(
    fresh: _LoadedModel, local_model_path: Path
) -> None:
    without = Chat(provider_with(local_model_path, 0))
    branching_session(without)
    fresh.llm.reset()
    kept = Chat(provider_with(local_model_path, 64))
    branching_session(kept)

    assert kept.answers == without.answers
    assert all(kept.answers)
    # The same prompts, and back on main the kept state of main's path was used: what
    # follows the fork point was not evaluated again.
    assert [u.input_tokens for u in kept.usages] == [u.input_tokens for u in without.usages]
    back = 5
    assert kept.usages[back].cached_input_tokens > without.usages[back].cached_input_tokens
    assert kept.usages[back].input_tokens - kept.usages[back].cached_input_tokens < 40
    assert fresh.states is not None and len(fresh.states) >= 1


def test_answers_equal_a_fresh_evaluation_of_each_prompt(
    fresh: _LoadedModel, local_model_path: Path
) -> None:
    kept = Chat(provider_with(local_model_path, 64))
    branching_session(kept)
    messages: list[Message] = [
        user("Name a fruit."),
        assistant(kept.answers[0]),
        user("Name a planet."),
        assistant(kept.answers[3]),
        user("Name a metal."),
    ]
    fresh.llm.reset()
    alone = Chat(provider_with(local_model_path, 0))
    assert alone.ask(messages) == kept.answers[4]
    assert alone.usages[0].cached_input_tokens == 0  # evaluated from the first token


def test_a_seed_repeats_its_answer_after_a_detour(
    fresh: _LoadedModel, local_model_path: Path
) -> None:
    chat = Chat(provider_with(local_model_path, 64))
    main = [user("Name a fruit."), assistant("Mango."), user("Invent a name for a cat.")]
    first = chat.ask(main, temperature=1.0, max_tokens=8, seed=11)
    chat.ask([user("Name a planet.")])  # another branch, unseeded
    chat.ask([*main[:2], user("Name a colour.")])  # a fork of main, unseeded
    again = chat.ask(main, temperature=1.0, max_tokens=8, seed=11)
    assert again == first
    assert chat.usages[-1].cached_input_tokens == 0  # a seeded prompt is evaluated afresh


def test_reused_tokens_are_the_ones_llama_did_not_evaluate(
    fresh: _LoadedModel, local_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm = fresh.llm
    evaluated: list[int] = []  # the tokens evaluated before the first token is sampled
    sampled = [False]
    original_eval, original_sample = llm.eval, llm.sample

    def counting_eval(tokens: Any) -> None:
        if not sampled[0]:
            evaluated[-1] += len(tokens)
        original_eval(tokens)

    def noting_sample(*args: Any, **kwargs: Any) -> Any:
        sampled[0] = True
        return original_sample(*args, **kwargs)

    monkeypatch.setattr(llm, "eval", counting_eval)
    monkeypatch.setattr(llm, "sample", noting_sample)
    chat = Chat(provider_with(local_model_path, 64))

    def ask(messages: list[Message]) -> str:
        evaluated.append(0)
        sampled[0] = False
        return chat.ask(messages)

    main = [user("Name a fruit.")]
    main += [assistant(ask(main)), user("Name a colour.")]
    main += [assistant(ask(main)), user("Name an animal.")]
    ask(main)
    ask([*main[:2], user("Name a planet.")])  # a fork at turn 1
    ask(main)  # back on main: resumes from the kept state
    ask(main)  # the same prompt again: only its last token is evaluated

    reused = [u.cached_input_tokens for u in chat.usages]
    assert [u.input_tokens - r for u, r in zip(chat.usages, reused, strict=True)] == evaluated
    assert reused[0] == 0
    assert reused[-2] > reused[-3]  # back on main: more than the fork shared
    assert evaluated[-1] == 1


NOTES = (
    "the dataset holds weekly sales per store with promotions holidays weather and "
    "returns; a model forecasts demand for each product line while analysts compare "
    "regions check outliers and explain which features matter most to the planners"
)


def notes(seed: int) -> str:
    """bench/bench_local_cache.py's turn 201: a prompt of 250 tokens whose answer at
    temperature 0 changed when its last token was evaluated alone (a rerun) instead of
    in one batch with the rest (its first run)."""
    rng, vocabulary = random.Random(seed), NOTES.split()
    words = " ".join(rng.choice(vocabulary) for _ in range(225))
    return f"Notes {seed}: {words}\nQuestion {seed}: which word do these notes use most? One word."


def test_a_rerun_at_temperature_0_answers_as_the_first_run(
    fresh: _LoadedModel, local_model_path: Path
) -> None:
    chat = Chat(provider_with(local_model_path, 64))
    first: list[Message] = [{"role": "user", "content": notes(201)}]
    answer = chat.ask(first, max_tokens=8, system=None)  # Qwen's own system text
    assert chat.ask(first, max_tokens=8, system=None) == answer  # the prompt in the KV cache
    chat.ask([user("Name a planet.")])  # elsewhere; the first path is kept
    assert chat.ask(first, max_tokens=8, system=None) == answer  # from the kept state
    fresh.llm.reset()
    fresh.states = None
    assert chat.ask(first, max_tokens=8, system=None) == answer  # evaluated afresh
    # Run All: the cells again, each a rerun; the answers repeat, so each prompt is found
    # in the kept path and only its last token is evaluated.
    fresh.llm.reset()
    cells = [notes(202), notes(203), notes(204)]
    path: list[Message] = []
    for text in cells:
        path += [{"role": "user", "content": text}]
        path += [assistant(chat.ask(path, max_tokens=8))]
    answers = [m["content"] for m in path[1::2]]
    again: list[Message] = []
    for text in cells:
        again += [{"role": "user", "content": text}]
        again += [assistant(chat.ask(again, max_tokens=8))]
    assert [m["content"] for m in again[1::2]] == answers
    assert [u.input_tokens - u.cached_input_tokens for u in chat.usages[-3:]] == [1, 1, 1]


def test_kept_states_stay_within_the_budget(fresh: _LoadedModel, local_model_path: Path) -> None:
    budget_mb = 3  # two or three states of this size
    chat = Chat(provider_with(local_model_path, budget_mb))
    trunk = [user("Name a fruit."), assistant("Mango.")]
    questions = [
        f"Which {thing} would you pick for a long summer picnic by the lake, and why?"
        for thing in ("colour", "planet", "metal", "tree", "fish", "song")
    ]
    kept = 0
    for question in questions:
        chat.ask([*trunk, user(question)], max_tokens=4)
        states = fresh.states
        assert states is not None
        assert states.cache_size <= budget_mb << 20
        held = states.cache_state.values()  # type: ignore[attr-defined]
        assert states.cache_size == sum(state_bytes(s) for s in held)
        kept = max(kept, len(states))
    assert kept >= 2  # each branch left was kept, the oldest let go past the budget

    Chat(provider_with(local_model_path, 0)).ask([user("Name a fish.")])
    assert fresh.states is None  # a budget of 0 lets them all go


def test_kept_states_stay_within_the_budget_while_one_is_saved_or_loaded(
    fresh: _LoadedModel,
) -> None:
    """Room is made before a state is saved, llama.cpp writes the state once into the
    buffer kept, and a state is loaded from that buffer in place: the memory the states
    hold (traced by tracemalloc: ctypes buffers and numpy arrays are) never passes the
    budget, not even while a state is saved, and loading one copies none of it.
    (llama-cpp's own save_state passes a state through three copies.)"""
    llm = fresh.llm

    def evaluate(n: int) -> list[int]:
        words = " ".join(f"word{n * j % 97}" for j in range(40))
        tokens: list[int] = llm.tokenize(f"Notes {n}: {words}".encode(), add_bos=False)
        llm.reset()
        llm.eval(tokens)
        return tokens

    evaluate(1)
    one = saved_bytes(llm)  # each path's state is about as large
    states = _state_cache_type()(int(2.5 * one))  # room for two
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(1, 6):
            tokens = evaluate(n)
            tracemalloc.reset_peak()
            states.keep(llm)
            held = tracemalloc.get_traced_memory()[1] - before  # the most while saving
            assert states.cache_size <= states.capacity_bytes
            # beyond what is kept, only the key and such: no copy of a state, and no state
            # let go after the new one was saved
            assert held - states.cache_size < one // 10, (n, held, states.cache_size)
        assert len(states) == 2
        state, length = states.longest(tokens)
        assert state is not None and length == len(tokens)
        assert state_bytes(state) == saved_bytes(llm)  # what room was made for is what was kept
        llm.reset()
        loading = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        load_state(llm, state)
        assert tracemalloc.get_traced_memory()[1] - loading < one // 10
    finally:
        tracemalloc.stop()
    assert list(llm.input_ids[: llm.n_tokens]) == tokens  # the state loaded is that path's


def test_each_prompt_extends_the_last_prompt_and_answer(
    fresh: _LoadedModel, local_model_path: Path
) -> None:
    """Qwen2.5's template renders turn N+1 as turn N's prompt, its answer and what follows
    (no text that moves, no dates): after each answer, every token the model evaluated is
    the start of the next prompt, so the next turn evaluates only the new tokens."""
    llm, formatter = fresh.llm, fresh.formatter
    assert formatter is not None  # the GGUF template drives the chat
    chat = Chat(provider_with(local_model_path, 0))
    messages: list[Message] = []
    evaluated: list[int] = []
    for question in ("Write a Python one-liner that sums a list.", "Name a colour.", "Why?"):
        messages.append(user(question))
        prompt = LlamaProvider._prompt_tokens(fresh, [system(), *messages])
        assert prompt is not None
        text = formatter(messages=[system(), *messages]).prompt  # type: ignore[arg-type]
        answer = chat.ask(messages, max_tokens=24)
        # All the last turn evaluated was reused.
        assert chat.usages[-1].cached_input_tokens == len(evaluated)
        evaluated = [int(t) for t in llm.input_ids[: llm.n_tokens]]
        messages.append(assistant(answer))
        nxt = [system(), *messages, user("Go on.")]
        following = LlamaProvider._prompt_tokens(fresh, nxt)
        assert following is not None
        # The text: this prompt, the answer, then the next turn.
        assert formatter(messages=nxt).prompt.startswith(text + answer + "<|im_end|>\n")  # type: ignore[arg-type]
        # The tokens: what the model evaluated (prompt and answer) starts the next prompt,
        # and so does this prompt followed by the answer's tokens.
        assert following[: len(evaluated)] == evaluated
        answer_tokens = llm.tokenize(answer.encode("utf-8"), add_bos=False, special=True)
        assert following[: len(prompt) + len(answer_tokens)] == prompt + answer_tokens


def test_the_footer_says_how_many_prompt_tokens_were_reused(
    fresh: _LoadedModel, local_model_path: Path, shell: InteractiveShell
) -> None:
    assert shell.run_cell(f"%convo model llama:{local_model_path}").success
    outputs = shell.display_pub
    assert isinstance(outputs, NotebookOutputs)
    for n, question in enumerate(("Name a fruit.", "Name a colour.", "Name a fruit again.")):
        cell = f"%%turn -t 0 --max-tokens 4\n{question}"
        assert shell.run_cell(cell, cell_id=f"c{n}").success
    assert shell.run_cell("%convo fork 1").success
    outputs.reset()
    assert shell.run_cell("%%turn -t 0 --max-tokens 4\nName a planet.", cell_id="f1").success
    assert shell.run_cell("%convo switch main").success
    assert shell.run_cell("%%turn -t 0 --max-tokens 4\nName a tree.", cell_id="c9").success
    footers = [t for t in outputs.plain() if t.startswith("turn ")]
    assert len(footers) == 2
    # Back on main, all of main's path was reused: the new prompt's own tokens were not.
    assert "reused " in footers[1] and " prompt tokens" in footers[1]
    reused, total = (int(n.replace(",", "")) for n in footers[1].split("reused ")[1].split()[0:3:2])
    assert 0 < total - reused < 30, footers[1]


def system() -> Message:
    return {"role": "system", "content": SYSTEM}


# -- llama servers ---------------------------------------------------------------------------


def test_llama_servers_are_asked_to_keep_the_prompt(llama_server: str) -> None:
    """``llamacpp:`` sends llama.cpp's ``cache_prompt`` (and no slot); llama-cpp-python's
    server takes the field and answers, turn after turn."""
    provider = create_provider(f"llamacpp:{SERVER_MODEL_ALIAS}", base_url=llama_server)
    assert isinstance(provider, OpenAICompatibleProvider)
    messages: list[Message] = [user("Name a fruit.")]
    request = ChatRequest(
        provider="llamacpp", model=SERVER_MODEL_ALIAS, messages=tuple(messages), max_tokens=6
    )
    body = provider.body(request)
    assert body["cache_prompt"] is True
    assert "id_slot" not in body and "slot_id" not in body
    first = "".join(e for e in provider.stream(request) if isinstance(e, TextDelta))
    messages += [assistant(first), user("Name a colour.")]
    request = ChatRequest(
        provider="llamacpp", model=SERVER_MODEL_ALIAS, messages=tuple(messages), max_tokens=6
    )
    assert "".join(e for e in provider.stream(request) if isinstance(e, TextDelta))
