"""Prompt caching (#18): the bodies that ask for it, checked against the official SDKs'
bodies; the cached, written and reasoning tokens parsed from each provider's usage as the
SDKs parse them; the fakes' cache rules (minimum lengths, TTLs on an injected clock,
breakpoints and their lookback, OpenAI's increments and routes); and, through a real
``nbconvo.Conversation`` on each fake, a stable prefix: turn N+1's request extends turn N's
unchanged (Anthropic's cache marks aside: they are no part of the prefix), so it reads
turn N's prompt from the cache, and so do a fork and a rerun of an earlier turn."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

import nbconvo
from nbconvo._parts import TextPart, ToolCallPart, ToolResultPart
from nbconvo._types import CachePolicy, ChatRequest, Message
from nbconvo.providers.anthropic import AnthropicProvider, cache_breakpoints
from tests.support.fakes import anthropic_server, openai_server
from tests.support.fakes.anthropic_server import PromptCache, cache_units
from tests.support.fakes.base import AutomaticPromptCache, Canned, FakeClock
from tests.support.provider_cases import BY_NAME, OPENAI_KEY, request, run

anthropic = pytest.importorskip("anthropic")
openai = pytest.importorskip("openai")
genai = pytest.importorskip("google.genai")
genai_types = pytest.importorskip("google.genai.types")

# 2,000 tokens as the fakes count them (a word a token, and one more).
LONG_SYSTEM = " ".join(f"rule{n}" for n in range(1_999))
KEY = "nbconvo-tree-0001"
MARK = {"type": "ephemeral"}
MARK_1H = {"type": "ephemeral", "ttl": "1h"}


def questions(n: int) -> list[str]:
    return [f"question number {k} about the data" for k in range(1, n + 1)]


def chat(case_name: str, n: int, system: str | None = LONG_SYSTEM, **options: Any) -> ChatRequest:
    options.setdefault("cache", CachePolicy(KEY))
    return request(BY_NAME[case_name], *questions(n), system=system, max_tokens=64, **options)


def sdk_messages(chat: ChatRequest, marked: set[int], marker: dict[str, Any]) -> list[Any]:
    """The conversation as the Anthropic SDK takes it, with ``cache_control`` on the last
    block of the messages in ``marked``."""
    out: list[Any] = []
    for i, m in enumerate(chat.messages):
        content: Any = m["content"]
        if i in marked:
            content = [{"type": "text", "text": content, "cache_control": marker}]
        out.append({"role": m["role"], "content": content})
    return out


def marked_messages(body: dict[str, Any]) -> list[int]:
    return [
        i
        for i, m in enumerate(body["messages"])
        if not isinstance(m["content"], str) and "cache_control" in m["content"][-1]
    ]


def plain(body: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic body without its cache marks, strings as the text blocks they are:
    the prompt the cache is keyed by."""
    body = copy.deepcopy(body)
    body.pop("cache_control", None)

    def blocks(content: Any) -> list[Any]:
        if isinstance(content, str):
            return [{"type": "text", "text": content}]
        return [{k: v for k, v in b.items() if k != "cache_control"} for b in content]

    if "system" in body:
        body["system"] = blocks(body["system"])
    body["messages"] = [{**m, "content": blocks(m["content"])} for m in body["messages"]]
    return body


def _anthropic() -> AnthropicProvider:
    return AnthropicProvider(prefix="anthropic", model="claude-sonnet-5-5")


# -- request bodies, as the official SDKs send them ------------------------------------


@pytest.mark.parametrize("ttl", ["5m", "1h"])
def test_anthropic_breakpoints_are_the_sdks(ttl: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long system prompt and 13 user turns: the system, the last message (top-level
    ``cache_control``: automatic caching) and the two latest milestones (user messages
    12 and 8; every 4th), four marks; the SDK sends the same body for the same marks."""
    case = BY_NAME["anthropic"]
    marker = MARK_1H if ttl == "1h" else MARK
    with case.running(monkeypatch) as fake:
        ours = chat("anthropic", 13, cache=CachePolicy(KEY, ttl))  # type: ignore[arg-type]
        assert run(case.provider(), ours).error is None
        client = anthropic.Anthropic(api_key=fake.api_key, base_url=fake.base_url, max_retries=0)
        with client.messages.stream(
            model=ours.model,
            max_tokens=64,
            system=[{"type": "text", "text": LONG_SYSTEM, "cache_control": marker}],
            messages=sdk_messages(ours, {14, 22}, marker),
            cache_control=marker,  # type: ignore[arg-type]
        ) as stream:
            "".join(stream.text_stream)
        our_body, sdk_body = fake.requests
        assert our_body == sdk_body
        assert marked_messages(our_body) == [14, 22]  # user messages 8 and 12
        assert our_body["cache_control"] == marker and len(our_body["messages"]) == 25


def test_anthropic_short_system_leaves_its_mark_to_a_milestone() -> None:
    """Below the model's minimum the system prompt gets no mark (it would write nothing):
    the slot goes to a third milestone."""
    body = _anthropic().body(chat("anthropic", 13, system="Be terse."))
    assert body["system"] == "Be terse."
    assert marked_messages(body) == [6, 14, 22]  # user messages 4, 8, 12
    assert body["cache_control"] == MARK
    none = _anthropic().body(chat("anthropic", 13, cache=None))
    assert "cache_control" not in none and marked_messages(none) == []
    assert none["system"] == LONG_SYSTEM  # no caching: nothing changes


def test_anthropic_a_wide_turn_marks_where_it_started() -> None:
    """A turn of many tool calls puts the previous request's end beyond the ~20-block
    lookback of the last mark: it gets a mark of its own."""
    calls = tuple(ToolCallPart(f"call_{k}", "lookup", f'{{"k": {k}}}') for k in range(12))
    results = tuple(ToolResultPart(f"call_{k}", f"value {k}") for k in range(12))
    messages: list[Message] = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "look everything up"},
        {"role": "assistant", "content": (TextPart("looking"), *calls)},
        {"role": "tool", "content": results},
    ]
    body = _anthropic().body(
        ChatRequest("anthropic", "claude-sonnet-5-5", tuple(messages), cache=CachePolicy(KEY))
    )
    assert marked_messages(body) == [2]  # where the previous request ended
    assert body["cache_control"] == MARK  # and the tool results, last
    narrow = cache_breakpoints([{"role": r, "content": "x"} for r in ["user", "assistant"] * 3], 4)
    assert narrow == [4]  # within the lookback: the last mark finds the previous end


@pytest.mark.parametrize("case_name", ["openai", "azure", "azure-v1"])
def test_prompt_cache_key_is_the_sdks(case_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    case = BY_NAME[case_name.removesuffix("-v1")]
    with case.running(monkeypatch) as fake:
        if case_name == "openai":
            client: Any = openai.OpenAI(api_key=OPENAI_KEY, base_url=fake.base_url, max_retries=0)
        elif case_name == "azure":
            client = openai.AzureOpenAI(
                azure_endpoint=fake.endpoint,
                api_key=fake.api_key,
                api_version="2024-10-21",
                max_retries=0,
            )
        else:
            endpoint = f"{fake.endpoint}/openai/v1"
            monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", endpoint)
            client = openai.OpenAI(api_key=fake.api_key, base_url=endpoint + "/", max_retries=0)
        ours = chat(case.name, 3)
        for cache in (CachePolicy(KEY), None):
            mine = ChatRequest(**{**ours.__dict__, "cache": cache})
            assert run(case.provider(), mine).error is None
            for _ in client.chat.completions.create(
                model=ours.model,
                messages=[dict(m) for m in ours.all_messages()],  # type: ignore[misc]
                stream=True,
                stream_options={"include_usage": True},
                max_completion_tokens=64,
                **({"prompt_cache_key": KEY} if cache else {}),
            ):
                pass
        cached_ours, cached_sdk, plain_ours, plain_sdk = (s.body for s in fake.seen)
        assert cached_ours == cached_sdk and cached_ours["prompt_cache_key"] == KEY
        assert plain_ours == plain_sdk and "prompt_cache_key" not in plain_ours
        assert "prompt_cache_retention" not in cached_ours


def test_local_servers_get_no_cache_key() -> None:
    from nbconvo.providers import create_provider

    with openai_server.FakeOpenAI(api_key=None) as fake:
        provider = create_provider("vllm:some-model", base_url=fake.base_url)
        outcome = run(provider, ChatRequest("vllm", "some-model", tuple(chat("openai", 2).messages),
                                            cache=CachePolicy(KEY)))  # fmt: skip
        assert outcome.error is None and "prompt_cache_key" not in fake.requests[0]


@pytest.mark.parametrize("case_name", ["azure", "openai-responses"])
def test_a_service_refusing_the_key_gets_the_request_without_it(
    case_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some models an Azure resource serves answer 400 to ``prompt_cache_key``: the turn is
    sent again without it, with one note, and the provider sends no key after (Chat
    Completions and the Responses API alike)."""
    case = BY_NAME[case_name]
    refused = {
        "error": {
            "code": "unrecognized_request_argument",
            "message": "Unrecognized request argument supplied: prompt_cache_key",
        }
    }
    with case.running(monkeypatch) as fake:
        fake.script.append(Canned(status=400, body=refused))
        provider = case.provider()
        first = run(provider, chat(case_name, 2))
        second = run(provider, chat(case_name, 3))
        assert first.error is None and second.error is None
        assert ["prompt_cache_key" in s.body for s in fake.seen] == [True, False, False]
        assert len([n for n in first.notices if "prompt_cache_key" in n]) == 1
        assert not second.notices


# -- usage, parsed as the SDKs parse it --------------------------------------------------


def test_openai_usage_is_the_sdks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cold (the prompt written: reported for GPT-5.6 and later), then warm (read); and the
    reasoning tokens, part of the output."""
    case = BY_NAME["openai"]
    with case.running(monkeypatch) as fake:
        client = openai.OpenAI(api_key=OPENAI_KEY, base_url=fake.base_url, max_retries=0)
        ours = chat("openai", 4)
        ours = ChatRequest(**{**ours.__dict__, "model": "gpt-6-sol"})

        def sdk() -> Any:
            usage = None
            for chunk in client.chat.completions.create(
                model="gpt-6-sol",
                messages=[dict(m) for m in ours.all_messages()],  # type: ignore[misc]
                stream=True,
                stream_options={"include_usage": True},
                prompt_cache_key=KEY,
            ):
                usage = chunk.usage or usage
            return usage

        for warm in (False, True):
            fake.script.extend([openai_server.Canned(options={"reasoning_tokens": 7})] * 2)
            if not warm:
                fake.prompt_cache.cache.clear()
            mine = run(case.provider(), ours).usage
            if not warm:
                fake.prompt_cache.cache.clear()
            theirs = sdk()
            assert mine is not None and theirs is not None
            assert mine.input_tokens == theirs.prompt_tokens > 2_000
            assert mine.cached_input_tokens == theirs.prompt_tokens_details.cached_tokens
            assert mine.cache_write_tokens == (theirs.prompt_tokens_details.cache_write_tokens or 0)
            assert mine.reasoning_tokens == theirs.completion_tokens_details.reasoning_tokens == 7
            assert mine.output_tokens == theirs.completion_tokens
            if warm:  # all but the part past the last 128-token step read
                assert mine.cached_input_tokens > mine.input_tokens - 128
                assert mine.cache_write_tokens == 0
            else:
                assert mine.cached_input_tokens == 0 and mine.cache_write_tokens > 2_000


def test_azure_usage_is_the_sdks(monkeypatch: pytest.MonkeyPatch) -> None:
    case = BY_NAME["azure"]
    with case.running(monkeypatch) as fake:
        client = openai.AzureOpenAI(
            azure_endpoint=fake.endpoint, api_key=fake.api_key, api_version="2024-10-21"
        )
        ours = chat("azure", 3)
        assert run(case.provider(), ours).error is None  # writes
        mine = run(case.provider(), ours).usage
        usage = None
        for chunk in client.chat.completions.create(
            model=ours.model,
            messages=[dict(m) for m in ours.all_messages()],  # type: ignore[misc]
            stream=True,
            stream_options={"include_usage": True},
            prompt_cache_key=KEY,
        ):
            usage = chunk.usage or usage
        assert mine is not None and usage is not None
        assert mine.cached_input_tokens == usage.prompt_tokens_details.cached_tokens >= 2_048
        assert mine.input_tokens == usage.prompt_tokens


def test_anthropic_usage_is_the_sdks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Anthropic's ``input_tokens`` leaves the cache's reads and writes out: nbconvo's is
    the three together (the whole prompt), of which it keeps the two."""
    case = BY_NAME["anthropic"]
    with case.running(monkeypatch) as fake:
        client = anthropic.Anthropic(api_key=fake.api_key, base_url=fake.base_url, max_retries=0)
        ours = chat("anthropic", 5)

        def sdk() -> Any:
            events = list(
                client.messages.create(
                    model=ours.model,
                    max_tokens=64,
                    system=[{"type": "text", "text": LONG_SYSTEM, "cache_control": MARK}],
                    messages=sdk_messages(ours, {6}, MARK),  # user message 4
                    cache_control=MARK,  # type: ignore[arg-type]
                    stream=True,
                )
            )
            return next(e.usage for e in events if e.type == "message_delta")

        for warm in (False, True):
            fake.script.extend([Canned(options={"thinking_tokens": 11})] * 2)
            if not warm:
                fake.prompt_cache.cache.clear()
            mine = run(case.provider(), ours).usage
            if not warm:
                fake.prompt_cache.cache.clear()
            theirs = sdk()
            assert mine is not None
            read, wrote = theirs.cache_read_input_tokens, theirs.cache_creation_input_tokens
            assert mine.input_tokens == theirs.input_tokens + read + wrote
            assert (mine.cached_input_tokens, mine.cache_write_tokens) == (read, wrote)
            assert mine.reasoning_tokens == theirs.output_tokens_details.thinking_tokens == 11
            assert mine.output_tokens == theirs.output_tokens
            if warm:
                assert (read, wrote, theirs.input_tokens) == (mine.input_tokens, 0, 0)
            else:
                assert (read, theirs.input_tokens) == (0, 0) and wrote > 2_000


def test_gemini_usage_is_the_sdks(monkeypatch: pytest.MonkeyPatch) -> None:
    case = BY_NAME["gemini"]
    usage = {"cachedContentTokenCount": 1_024, "thoughtsTokenCount": 9}
    with case.running(monkeypatch) as fake:
        fake.script.extend([Canned(options={"usage": usage})] * 2)
        ours = chat("gemini", 3)
        mine = run(case.provider(), ours).usage
        client = genai.Client(
            api_key=fake.api_key, http_options=genai_types.HttpOptions(base_url=fake.base_url)
        )
        theirs = None
        for chunk in client.models.generate_content_stream(
            model=ours.model,
            contents=[
                genai_types.Content(
                    role="model" if m["role"] == "assistant" else "user",
                    parts=[genai_types.Part(text=str(m["content"]))],
                )
                for m in ours.messages
            ],
            config=genai_types.GenerateContentConfig(system_instruction=LONG_SYSTEM),
        ):
            theirs = chunk.usage_metadata or theirs
        assert mine is not None and theirs is not None
        assert mine.input_tokens == theirs.prompt_token_count
        assert mine.cached_input_tokens == theirs.cached_content_token_count == 1_024
        assert mine.reasoning_tokens == theirs.thoughts_token_count == 9
        assert mine.output_tokens == theirs.candidates_token_count + 9
        sent_ours, sent_sdk = (s.body for s in fake.seen)
        assert sent_ours["contents"] == sent_sdk["contents"]  # nothing sent for caching


# -- the fakes' cache rules --------------------------------------------------------------


def anthropic_body(
    n: int, marks: dict[int, dict[str, Any]], system: str = LONG_SYSTEM, **extra: Any
) -> dict[str, Any]:
    """A Messages body of ``n`` user turns, ``marks`` by message index."""
    messages: list[dict[str, Any]] = []
    for k, text in enumerate(questions(n), start=1):
        messages.append({"role": "user", "content": text})
        if k < n:
            messages.append({"role": "assistant", "content": f"answer {k}"})
    for i, marker in marks.items():
        messages[i] = {
            **messages[i],
            "content": [{"type": "text", "text": messages[i]["content"], "cache_control": marker}],
        }
    return {"model": "claude-sonnet-5-5", "system": system, "messages": messages, **extra}


def test_anthropic_fake_writes_at_breakpoints_from_the_minimum() -> None:
    clock = FakeClock()
    cache = PromptCache(clock)
    body = anthropic_body(3, {2: MARK})
    whole = sum(u.tokens for u in cache_units(body))
    to_mark = sum(u.tokens for u in cache_units(body)[:4])  # system, u1, a1, u2
    first = cache.serve("k", body)
    assert (first.read, first.written_5m, first.uncached) == (0, to_mark, whole - to_mark)
    again = cache.serve("k", body)
    assert (again.read, again.written_5m) == (to_mark, 0)
    # No mark, no read: a prefix is found only from a breakpoint.
    assert cache.serve("k", anthropic_body(3, {})).read == 0
    # Too short for the model: written nothing (and no error).
    short = anthropic_body(3, {2: MARK}, system="Be terse.")
    assert cache.serve("k", short).written_5m == 0 and cache.serve("k", short).read == 0
    # A model's own minimum (Opus 4.6: 4,096 tokens; Opus 5: 512), its own cache.
    assert cache.serve("k", {**body, "model": "claude-opus-4-6"}).written_5m == 0
    opus5 = {**anthropic_body(3, {2: MARK}, system=" ".join(["w"] * 600)), "model": "claude-opus-5"}
    assert cache.serve("k", opus5).written_5m > 600
    assert cache.serve("other-key", body).read == 0  # caches apart per key


def test_anthropic_fake_ttls_on_the_clock() -> None:
    clock = FakeClock()
    cache = PromptCache(clock)
    five, hour = anthropic_body(2, {0: MARK}), anthropic_body(2, {0: MARK_1H})
    hour["messages"][0]["content"][0]["text"] += " (hour)"
    assert cache.serve("k", five).written_5m and cache.serve("k", hour).written_1h
    clock.advance(299)
    assert cache.serve("k", five).read  # read: refreshed for five minutes more
    clock.advance(299)
    assert cache.serve("k", five).read
    clock.advance(301)
    assert not cache.serve("k", five).read  # expired: written again
    assert cache.serve("k", hour).read  # the hour's entry lives on


def test_anthropic_fake_reads_within_the_lookback() -> None:
    """A read finds a prefix ending at a breakpoint or up to 20 blocks before one."""
    cache = PromptCache(FakeClock())
    cache.serve("k", anthropic_body(12, {0: MARK}))
    near = cache.serve("k", anthropic_body(12, {20: MARK}))  # 20 blocks after the entry
    assert near.read == sum(u.tokens for u in cache_units(anthropic_body(1, {}))[:2])
    cache = PromptCache(FakeClock())
    cache.serve("k", anthropic_body(12, {0: MARK}))
    assert cache.serve("k", anthropic_body(12, {21: MARK})).read == 0  # 21: beyond


def test_anthropic_fake_marks_are_no_part_of_the_prefix() -> None:
    """A mark moved (a string turned into a marked text block and back) changes nothing."""
    cache = PromptCache(FakeClock())
    turn3 = anthropic_body(3, {4: MARK})  # its last message a marked block
    cache.serve("k", turn3)
    turn4 = anthropic_body(4, {}, cache_control=MARK)  # that message a string again
    usage = cache.serve("k", turn4)
    assert usage.read == sum(u.tokens for u in cache_units(turn3))
    assert usage.uncached == 0 and usage.written_5m > 0


def test_anthropic_fake_refuses_bad_breakpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    case = BY_NAME["anthropic"]
    with case.running(monkeypatch) as fake:
        client = anthropic.Anthropic(api_key=fake.api_key, base_url=fake.base_url, max_retries=0)
        five = anthropic_body(5, {0: MARK, 2: MARK, 4: MARK, 6: MARK}, cache_control=MARK)
        with pytest.raises(anthropic.BadRequestError, match="maximum of 4 blocks"):
            client.messages.create(max_tokens=8, stream=True, **five)
        late = anthropic_body(3, {0: MARK, 2: MARK_1H})
        with pytest.raises(anthropic.BadRequestError, match="longer TTLs must come first"):
            client.messages.create(max_tokens=8, stream=True, **late)
        assert fake.requests == []
    assert anthropic_server.cache_control_error(anthropic_body(3, {0: MARK_1H, 2: MARK})) is None


def test_openai_fake_caches_as_openai_describes() -> None:
    clock = FakeClock()
    cache = AutomaticPromptCache(clock)
    words = [f"w{k}" for k in range(3_000)]
    assert cache.serve("k", "gpt-4.1", words[:1_000], KEY) == (0, 0)  # under 1,024
    assert cache.serve("k", "gpt-4.1", words[:1_000], KEY) == (0, 0)
    assert cache.serve("k", "gpt-4.1", words[:2_000], KEY) == (0, 0)  # written, free
    assert cache.serve("k", "gpt-4.1", words[:2_500], KEY) == (1_920, 0)  # 1,024 + 7×128
    assert cache.serve("k", "gpt-4.1", words[:2_500], "other-tree") == (0, 0)  # its own route
    assert cache.serve("k", "gpt-6-sol", words[:1_100], KEY) == (0, 1_024)  # writes billed
    clock.advance(601)
    assert cache.serve("k", "gpt-4.1", words[:2_500], KEY) == (0, 0)  # ten idle minutes
    for _ in range(14):
        assert cache.serve("k", "gpt-4.1", words[:2_500], KEY)[0] == 2_432
    assert cache.serve("k", "gpt-4.1", words[:2_500], KEY) == (0, 0)  # 16th this minute
    clock.advance(61)
    assert cache.serve("k", "gpt-4.1", words[:2_500], KEY)[0] == 2_432


# -- a stable prefix, through a real Conversation -----------------------------------------


def sent(case_name: str, body: dict[str, Any]) -> tuple[Any, list[Any]]:
    """What a request put before the history, and the history."""
    if case_name in ("openai", "azure"):
        return body["messages"][0], body["messages"][1:]
    if case_name == "anthropic":
        body = plain(body)
        return (body["system"], body.get("tools")), body["messages"]
    return body.get("systemInstruction"), body["contents"]


@pytest.mark.parametrize("case_name", ["openai", "azure", "anthropic", "gemini"])
def test_turn_n_plus_1_extends_turn_n(case_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    case = BY_NAME[case_name]
    with case.running(monkeypatch) as fake:
        convo = nbconvo.Conversation(model=case.spec, system=LONG_SYSTEM)
        assert convo.cache  # on by default
        for n, text in enumerate(questions(6), start=1):
            convo.ask(text, cell_id=f"c{n}", execution=object())
        bodies = list(fake.requests)
        assert len(bodies) == 6
        for before, after in itertools.pairwise(bodies):
            head, history = sent(case_name, before)
            next_head, next_history = sent(case_name, after)
            assert next_head == head
            assert next_history[: len(history)] == history  # unchanged, then the new turn
            assert len(next_history) == len(history) + 2
            for key in ("model", "prompt_cache_key", "tools", "generationConfig"):
                assert before.get(key) == after.get(key)
        if case_name in ("openai", "azure"):
            assert bodies[0]["prompt_cache_key"] == convo.cache_key
        turns = convo.path
        if case_name == "gemini":
            return  # implicit caching: nothing asked, nothing reported by the fake
        # From the second turn on, the prompt before the new turn comes from the cache.
        for turn in turns[1:]:
            assert turn.cached_tokens >= 0.8 * turn.input_tokens
        if case_name == "anthropic":
            assert turns[0].cache_write_tokens > 2_000 and turns[0].cached_tokens == 0


def test_anthropic_fork_and_rerun_read_their_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight turns 30 s apart. A fork at turn 3 reads all turn 3 wrote (found by the
    lookback); a rerun of turn 5 later, when turn 4's entry lives only because the later
    turns marked it as a milestone, reads it; a rerun of turn 2 later still (turn 1's
    entry long expired) reads the system prompt, marked and read by every request."""
    case = BY_NAME["anthropic"]
    clock = FakeClock()
    with case.running(monkeypatch) as fake:
        fake.prompt_cache = PromptCache(clock)
        convo = nbconvo.Conversation(model=case.spec, system=LONG_SYSTEM)
        for n, text in enumerate(questions(8), start=1):
            convo.ask(text, cell_id=f"c{n}", execution=object())
            clock.advance(30)
        path = {t.prompt: t for t in convo.path}
        convo.fork(3)
        fork = convo.ask("a different fourth question", cell_id="f4", execution=object())
        assert fork.cached_tokens == path[questions(3)[-1]].input_tokens  # all of turn 3's
        clock.advance(200)  # turn 4 last read as the last message 320 s ago
        rerun = convo.ask("question five, put another way", cell_id="c5", execution=object())
        assert len(fake.requests[-1]["messages"]) == 9
        four = path[questions(4)[-1]]
        assert rerun.cached_tokens == four.input_tokens  # the milestone, user message 4
        clock.advance(200)
        rerun2 = convo.ask("question two, put another way", cell_id="c2", execution=object())
        assert rerun2.cached_tokens == 2_000  # the system prompt's own mark
