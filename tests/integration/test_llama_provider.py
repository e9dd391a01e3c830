"""The in-process llama provider on the real 0.5B model, and the llama.cpp server fixture."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import httpx
import pytest

from nbconvo._errors import ConfigurationError, StreamInterrupted
from nbconvo._settings import read_environment
from nbconvo._types import (
    ChatRequest,
    Finish,
    Message,
    ProviderEvent,
    TextDelta,
    Usage,
)
from nbconvo.providers import create_provider
from nbconvo.providers._base import Provider
from nbconvo.providers.llama import LlamaProvider

pytestmark = pytest.mark.model

ADA: tuple[Message, ...] = (
    {"role": "user", "content": "My name is Ada. Reply OK."},
    {"role": "assistant", "content": "OK."},
    {"role": "user", "content": "What is my name? Answer with one word."},
)
LONG = "Count from 1 to 40, one number per line."


@pytest.fixture(scope="module")
def provider(local_model_path: Path) -> LlamaProvider:
    return LlamaProvider(model=str(local_model_path))


def request(
    *messages: Message,
    temperature: float | None = 0,
    max_tokens: int | None = None,
    seed: int | None = None,
) -> ChatRequest:
    return ChatRequest(
        provider="llama",
        model="test",
        messages=messages,
        temperature=temperature,
        max_tokens=max_tokens,
        seed=seed,
    )


def user(text: str) -> Message:
    return {"role": "user", "content": text}


def answer(events: list[ProviderEvent]) -> str:
    return "".join(e for e in events if isinstance(e, TextDelta))


def test_is_a_provider(provider: LlamaProvider) -> None:
    checked: Provider = provider
    assert checked.name == "llama"
    assert provider.context_window == 8192


def test_short_answer_streams_deltas_finish_and_usage(provider: LlamaProvider) -> None:
    events = list(provider.stream(request(user("Name three colors, comma separated."))))
    deltas = [e for e in events if isinstance(e, TextDelta)]
    finishes = [e for e in events if isinstance(e, Finish)]
    usages = [e for e in events if isinstance(e, Usage)]
    assert len(deltas) >= 3
    assert all(deltas)
    assert [f.reason for f in finishes] == ["stop"]
    assert len(usages) == 1
    assert usages[0].input_tokens > 10  # the chat template adds a default system prompt
    assert 3 <= usages[0].output_tokens <= len(deltas) + 2


def test_usage_matches_llama_own_count(provider: LlamaProvider) -> None:
    from nbconvo.providers.llama import _load

    messages = list(ADA)
    llm = _load(provider.path, provider.n_ctx).llm
    reference = llm.create_chat_completion(messages=messages, temperature=0)  # type: ignore[arg-type]
    assert isinstance(reference, dict)
    events = list(provider.stream(request(*ADA)))
    (usage,) = [e for e in events if isinstance(e, Usage)]
    assert usage.input_tokens == reference["usage"]["prompt_tokens"]
    assert usage.output_tokens == reference["usage"]["completion_tokens"]


def test_multi_turn_recall(provider: LlamaProvider) -> None:
    assert "Ada" in answer(list(provider.stream(request(*ADA))))


def test_no_recall_without_the_first_exchange(provider: LlamaProvider) -> None:
    assert "Ada" not in answer(list(provider.stream(request(ADA[-1]))))


def test_max_tokens_finishes_with_length(provider: LlamaProvider) -> None:
    events = list(provider.stream(request(user(LONG), max_tokens=5)))
    assert [e.reason for e in events if isinstance(e, Finish)] == ["length"]
    (usage,) = [e for e in events if isinstance(e, Usage)]
    assert usage.output_tokens == 5


def test_seed_makes_sampling_repeatable(provider: LlamaProvider) -> None:
    def sample() -> str:
        req = request(user("Invent a name for a cat."), temperature=1.0, max_tokens=12, seed=7)
        return answer(list(provider.stream(req)))

    assert sample() == sample()


def test_early_close_leaves_the_model_usable(provider: LlamaProvider) -> None:
    stream = provider.stream(request(user(LONG)))
    assert isinstance(stream, Generator)
    taken: list[TextDelta] = []
    for event in stream:
        if isinstance(event, TextDelta):
            taken.append(event)
            if len(taken) == 3:
                break
    stream.close()  # what an interrupt in the caller's loop does
    assert len(taken) == 3

    events = list(provider.stream(request(*ADA)))
    assert "Ada" in answer(events)
    assert [e.reason for e in events if isinstance(e, Finish)] == ["stop"]


def test_a_suspended_stream_loses_the_model(provider: LlamaProvider) -> None:
    stale = provider.stream(request(user(LONG)))
    first = next(e for e in stale if isinstance(e, TextDelta))
    # A second stream starts while the first is suspended (never closed).
    assert "Ada" in answer(list(provider.stream(request(*ADA))))
    with pytest.raises(StreamInterrupted) as info:
        list(stale)
    assert info.value.partial.startswith(first)


def test_models_are_cached_across_providers(local_model_path: Path) -> None:
    from nbconvo.providers import llama

    one = create_provider("llama:qwen2.5-coder-0.5b")
    two = LlamaProvider(model=str(local_model_path))
    assert isinstance(one, LlamaProvider)
    list(one.stream(request(user("Hi"), max_tokens=2)))
    list(two.stream(request(user("Hi"), max_tokens=2)))
    keys = [key for key in llama._MODELS if key[1] == 8192]
    assert len(keys) == 1


def test_llama_server_answers(llama_server: str) -> None:
    response = httpx.post(
        f"{llama_server}/chat/completions",
        json={
            "model": "qwen-local",
            "messages": list(ADA),
            "temperature": 0,
            "max_tokens": 16,
        },
        timeout=120,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "Ada" in body["choices"][0]["message"]["content"]
    assert body["usage"]["prompt_tokens"] > 0


def test_configuration_errors_are_one_line(
    local_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model" * 100)
    with pytest.raises(ConfigurationError, match="could not load") as info:
        list(LlamaProvider(model=str(bad)).stream(request(user("Hi"))))
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigurationError, match="--base-url"):
        LlamaProvider(model=str(local_model_path), base_url="http://127.0.0.1:1/v1")
    settings, problems = read_environment({"NBCONVO_LLAMA_N_CTX": "many"})
    assert problems == [
        "NBCONVO_LLAMA_N_CTX='many' is not a whole number > 0, e.g. 8192: using 8192; "
        "set it to a whole number > 0, e.g. 8192 or unset it"
    ]
    assert LlamaProvider(model=str(local_model_path), settings=settings).context_window == 8192
    monkeypatch.setenv("NBCONVO_LLAMA_N_CTX", "4096")  # used as a library: read as it is now
    assert LlamaProvider(model=str(local_model_path)).context_window == 4096
