"""Reasoning models on each provider's wire (#18), checked against the official SDKs
(test-only dependencies) pointed at the same loopback fakes.

For the same conversation and effort, nbconvo sends the body the SDK sends: OpenAI's
``chat.completions.create(reasoning_effort=…)`` and ``responses.create(reasoning=…)``,
Anthropic's ``messages.create(thinking=…, output_config=…)`` (adaptive, or a budget for
older models), google-genai's ``thinking_config`` (a level, or Gemini 2.5's budget). A
stream with reasoning summaries, thinking or thoughts, and tool calls, parses into the
same text, reasoning (text and what goes back), calls and usage as in the SDK. Reasoning
kept in the history goes back in the next request as each API requires (Responses
reasoning items without ids, with their encrypted content; Claude's signed thinking blocks
first in the turn; Gemini's thought parts with their signature), and a fork carries only
its own path's reasoning. Bad input: effort on a model that has none is one line, and
nothing reaches the service; another provider's reasoning is left out, never refused.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

from nbconvo._errors import UsageError
from nbconvo._parts import ReasoningPart, TextPart, ToolCallPart, ToolResultPart
from nbconvo._types import CachePolicy, ChatRequest, Message, ThinkingDelta, ToolSpec
from tests.support.fakes.base import Canned
from tests.support.provider_cases import BY_NAME, OPENAI_KEY, Outcome, run

anthropic = pytest.importorskip("anthropic")
openai = pytest.importorskip("openai")
genai = pytest.importorskip("google.genai")
genai_types = pytest.importorskip("google.genai.types")

SYSTEM = "You are terse."
ADD = ToolSpec(
    "add",
    "Add two integers.",
    {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
)
CALLS = [("add", '{"a": 2, "b": 3}'), ("add", '{"a": 40, "b": 2}')]
QUESTION = "What are 2 + 3 and 40 + 2?"
# Reasoning another provider made: it must never reach these APIs, nor stop a turn.
FOREIGN = ReasoningPart("a thought from elsewhere", opaque="FOREIGN-OPAQUE", provider="other")


def chat(spec: str, *messages: Message, **options: Any) -> ChatRequest:
    prefix, _, model = spec.partition(":")
    return ChatRequest(provider=prefix, model=model, messages=messages, **options)


def ask(request: ChatRequest) -> Outcome:
    """One request through the provider its spec names (as the engine makes it)."""
    from nbconvo.providers import create_provider

    return run(create_provider(f"{request.provider}:{request.model}"), request)


def thinking_of(outcome: Outcome) -> str:
    return "".join(e.text for e in outcome.events if isinstance(e, ThinkingDelta))


def reasoning_of(outcome: Outcome) -> list[ReasoningPart]:
    return [e for e in outcome.events if isinstance(e, ReasoningPart)]


def calls_of(outcome: Outcome) -> list[tuple[str, str, str]]:
    return [(e.call_id, e.name, e.arguments) for e in outcome.events if isinstance(e, ToolCallPart)]


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text, text
    return text


# -- OpenAI Chat Completions ----------------------------------------------------------


def test_openai_effort_body_is_the_sdks_and_foreign_reasoning_stays_home(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = BY_NAME["openai"]
    with case.running(monkeypatch) as fake:
        request = chat(
            "openai:gpt-5.5",
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": (FOREIGN, TextPart("echo #1: first"))},
            {"role": "user", "content": "second"},
            system=SYSTEM,
            max_tokens=64,
            effort="high",
        )
        client = openai.OpenAI(api_key=OPENAI_KEY, base_url=fake.base_url, max_retries=0)
        sdk_text = ""
        for chunk in client.chat.completions.create(
            model="gpt-5.5",
            messages=[
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "echo #1: first"},
                {"role": "user", "content": "second"},
            ],
            reasoning_effort="high",
            max_completion_tokens=64,
            stream=True,
            stream_options={"include_usage": True},
        ):
            sdk_text += "".join(c.delta.content or "" for c in chunk.choices if c.delta)
        ours = ask(request)
        assert ours.error is None and ours.text == sdk_text == "echo #2: second"
        sdk_body, our_body = fake.requests
        assert our_body == sdk_body and our_body["reasoning_effort"] == "high"


def test_openai_effort_beside_tools_is_dropped_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    case = BY_NAME["openai"]
    with case.running(monkeypatch) as fake:
        client = openai.OpenAI(api_key=OPENAI_KEY, base_url=fake.base_url, max_retries=0)
        tool = {"type": "function", "function": ADD.to_json()}
        with pytest.raises(openai.BadRequestError, match="use /v1/responses"):
            client.chat.completions.create(
                model="gpt-5.5",
                messages=[{"role": "user", "content": QUESTION}],
                tools=[tool],  # type: ignore[list-item]
                reasoning_effort="low",
            )
        request = chat("openai:gpt-5.5", {"role": "user", "content": QUESTION},
                       tools=(ADD,), effort="low")  # fmt: skip
        ours = ask(request)
        assert ours.error is None and ours.text == f"echo #1: {QUESTION}"
        assert ours.notices == [
            "effort low not sent to openai:gpt-5.5: Chat Completions takes none beside tools "
            "for this model (openai-responses:gpt-5.5 takes both)"
        ]
        assert "reasoning_effort" not in fake.requests[-1]


def test_openai_unknown_model_that_rejects_effort_gets_it_once_then_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = BY_NAME["openai"]
    with case.running(monkeypatch) as fake:
        ours = ask(chat("openai:my-tuned-model", {"role": "user", "content": "hi"},
                                  effort="medium"))  # fmt: skip
        assert ours.error is None and ours.text == "echo #1: hi"
        assert ours.notices == [
            "effort medium not sent to openai:my-tuned-model: the model rejected it"
        ]
        assert len(fake.headers_seen) == 2 and "reasoning_effort" not in fake.requests[-1]
        # An unknown model that reasons gets the effort as asked.
        ask(chat("openai:o9-preview", {"role": "user", "content": "hi"}, effort="low"))
        assert fake.requests[-1]["reasoning_effort"] == "low"


# -- the Responses API ----------------------------------------------------------------


def _responses_client(fake: Any) -> Any:
    return openai.OpenAI(api_key=OPENAI_KEY, base_url=fake.base_url, max_retries=0)


def _responses_tools() -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "name": ADD.name,
            "description": ADD.description,
            "parameters": ADD.parameters,
            "strict": False,
        }
    ]


def _sdk_stream(client: Any, **params: Any) -> tuple[Any, str, dict[str, list[str]]]:
    """The SDK's final response, and the summary text it streamed: all of it (summary
    parts apart by a blank line, as nbconvo shows them), and per reasoning item."""
    by_item: dict[str, dict[int, str]] = {}
    with client.responses.stream(**params) as stream:
        for event in stream:
            if event.type == "response.reasoning_summary_text.delta":
                parts = by_item.setdefault(event.item_id, {})
                parts[event.summary_index] = parts.get(event.summary_index, "") + event.delta
        final = stream.get_final_response()
    summaries = {item: [parts[i] for i in sorted(parts)] for item, parts in by_item.items()}
    streamed = "".join("\n\n".join(parts) for parts in summaries.values())
    return final, streamed, summaries


def _as_input(item: Any) -> dict[str, Any]:
    """A response's output item as the next request's input, stateless (store false):
    without its id and status (as Codex sends them), a message by its text."""
    data = item.model_dump(exclude_none=True)
    if data["type"] == "message":
        return {"role": "assistant", "content": "".join(c["text"] for c in data["content"])}
    if data["type"] == "reasoning":
        return {k: data[k] for k in ("type", "summary", "encrypted_content")}
    return {k: v for k, v in data.items() if k not in ("id", "status")}


def test_responses_body_with_effort_tools_and_cache_key_is_the_sdks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = BY_NAME["openai-responses"]
    with case.running(monkeypatch) as fake:
        history: tuple[Message, ...] = (
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "echo #1: first"},
            {"role": "user", "content": "second"},
        )
        request = chat(
            "openai-responses:gpt-5.5",
            *history,
            system=SYSTEM,
            max_tokens=400,
            effort="medium",
            tools=(ADD,),
            cache=CachePolicy("tree-1"),
        )
        final, _, _ = _sdk_stream(
            _responses_client(fake),
            model="gpt-5.5",
            input=[dict(m) for m in history],
            instructions=SYSTEM,
            tools=_responses_tools(),
            reasoning={"effort": "medium", "summary": "auto"},
            include=["reasoning.encrypted_content"],
            store=False,
            max_output_tokens=400,
            prompt_cache_key="tree-1",
        )
        ours = ask(request)
        assert ours.error is None and ours.text == final.output_text == "echo #2: second"
        sdk_body, our_body = fake.requests
        assert our_body == sdk_body


def test_responses_schema_body_is_the_sdks(monkeypatch: pytest.MonkeyPatch) -> None:
    from nbconvo._types import ResponseSchema

    schema = ResponseSchema(
        "Sum",
        {"type": "object", "properties": {"total": {"type": "integer"}}, "required": ["total"]},
        "The sum.",
    )
    case = BY_NAME["openai-responses"]
    with case.running(monkeypatch) as fake:
        fmt = {"type": "json_schema", "name": "Sum", "description": "The sum.",
               "schema": schema.schema, "strict": False}  # fmt: skip
        final, _, _ = _sdk_stream(
            _responses_client(fake),
            model="gpt-4.1",
            input=[{"role": "user", "content": "2 + 3?"}],
            text={"format": fmt},
            max_output_tokens=100,
            store=False,
        )
        request = chat("openai-responses:gpt-4.1", {"role": "user", "content": "2 + 3?"},
                       schema=schema, max_tokens=100)  # fmt: skip
        ours = ask(request)
        assert ours.error is None and json.loads(ours.text) == json.loads(final.output_text)
        sdk_body, our_body = fake.requests
        assert our_body == sdk_body and "include" not in our_body  # gpt-4.1 does not reason


def test_responses_stream_with_summaries_and_calls_parses_as_the_sdk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = BY_NAME["openai-responses"]
    with case.running(monkeypatch) as fake:
        fake.script.extend([Canned(tool_calls=CALLS, pieces=["Let me ", "check."])] * 2)
        final, streamed, summaries = _sdk_stream(
            _responses_client(fake),
            model="gpt-5.5",
            input=[{"role": "user", "content": QUESTION}],
            tools=_responses_tools(),
            reasoning={"effort": "high", "summary": "auto"},
            include=["reasoning.encrypted_content"],
            store=False,
        )
        request = chat("openai-responses:gpt-5.5", {"role": "user", "content": QUESTION},
                       tools=(ADD,), effort="high")  # fmt: skip
        ours = ask(request)
        assert ours.error is None
        assert ours.text == final.output_text == "Let me check."
        # The summary, as it streamed and as kept; what goes back is the SDK's item.
        [item] = [o for o in final.output if o.type == "reasoning"]
        [part] = reasoning_of(ours)
        assert thinking_of(ours) == streamed == part.text
        assert (
            part.text
            == "\n\n".join(s.text for s in item.summary)
            == "\n\n".join(summaries[item.id])
        )
        assert "**Planning at high effort**" in part.text
        kept = json.loads(part.opaque or "")
        assert (kept["id"], kept["encrypted_content"]) == (item.id, item.encrypted_content)
        assert part.provider == "openai-responses"
        sdk_calls = [
            (o.call_id, o.name, o.arguments) for o in final.output if o.type == "function_call"
        ]
        assert calls_of(ours) == sdk_calls and [c[2] for c in sdk_calls] == [a for _, a in CALLS]
        assert ours.finish is not None and ours.finish.reason == "tool_calls"
        usage = final.usage
        assert ours.usage is not None and usage is not None
        assert (
            ours.usage.input_tokens,
            ours.usage.output_tokens,
            ours.usage.cached_input_tokens,
            ours.usage.reasoning_tokens,
        ) == (
            usage.input_tokens,
            usage.output_tokens,
            usage.input_tokens_details.cached_tokens,
            usage.output_tokens_details.reasoning_tokens,
        )
        assert ours.usage.reasoning_tokens > 0
        # The events nbconvo saw, in order: thinking first, then its part, text, calls.
        kinds = [type(e).__name__ for e in ours.events]
        assert kinds.index("ThinkingDelta") < kinds.index("ReasoningPart") < kinds.index("str")


def test_responses_reasoning_goes_back_through_a_tool_loop_as_the_sdks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Step 2 of a tool loop: the reasoning item (no id, its summary and encrypted content)
    just before the calls it led to, then their outputs; the fake checks the pairing and
    that the encrypted content is the one it gave."""
    case = BY_NAME["openai-responses"]
    with case.running(monkeypatch) as fake:
        fake.script.extend([Canned(tool_calls=CALLS, pieces=["Let me ", "check."])] * 2)
        common = {
            "model": "gpt-5.5",
            "tools": _responses_tools(),
            "reasoning": {"effort": "low", "summary": "auto"},
            "include": ["reasoning.encrypted_content"],
            "store": False,
        }
        client = _responses_client(fake)
        first, _, _ = _sdk_stream(client, input=[{"role": "user", "content": QUESTION}], **common)
        request = chat("openai-responses:gpt-5.5", {"role": "user", "content": QUESTION},
                       tools=(ADD,), effort="low")  # fmt: skip
        step = ask(request)
        answer = (*reasoning_of(step), TextPart(step.text), *(p for p in step.events
                                                               if isinstance(p, ToolCallPart)))  # fmt: skip
        results = tuple(
            ToolResultPart(call_id, str(sum(json.loads(arguments).values())), name=name)
            for call_id, name, arguments in calls_of(step)
        )
        # The SDK's step 2, from its own final response.
        sdk_input = [{"role": "user", "content": QUESTION}, *map(_as_input, first.output)]
        sdk_input += [
            {"type": "function_call_output", "call_id": r.call_id, "output": r.content}
            for r in results
        ]
        second, _, _ = _sdk_stream(client, input=sdk_input, **common)
        ours = ask(
            chat(
                "openai-responses:gpt-5.5",
                {"role": "user", "content": QUESTION},
                {"role": "assistant", "content": answer},
                {"role": "tool", "content": results},
                tools=(ADD,),
                effort="low",
            ),
        )
        assert ours.error is None and ours.text == second.output_text == "tool said: 5; 42"
        sdk_body, our_body = fake.requests[-2:]
        assert our_body == sdk_body
        kinds = [item.get("type", "message") for item in our_body["input"]]
        assert kinds == ["message", "reasoning", "message", "function_call", "function_call",
                         "function_call_output", "function_call_output"]  # fmt: skip
        reasoning = our_body["input"][1]
        assert "id" not in reasoning and reasoning["encrypted_content"]
        assert fake.carried[-1] == [json.loads(answer[0].opaque or "")["id"]]  # type: ignore[union-attr]


def test_responses_reasoning_sent_by_id_alone_or_altered_is_refused_by_the_fake(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the API answers when reasoning goes back wrong (so the fake can tell)."""
    case = BY_NAME["openai-responses"]
    with case.running(monkeypatch) as fake:
        client = _responses_client(fake)
        for item, said in (
            ({"type": "reasoning", "id": "rs_1", "summary": []}, "not found"),
            ({"type": "reasoning", "summary": [], "encrypted_content": "x.y"}, "unmodified"),
        ):
            with pytest.raises(openai.BadRequestError, match=said):
                client.responses.create(
                    model="gpt-5.5",
                    input=[
                        {"role": "user", "content": "hi"},
                        item,
                        {"role": "assistant", "content": "hello"},
                        {"role": "user", "content": "again"},
                    ],
                    store=False,
                    stream=True,
                )


@pytest.fixture
def responses_shell(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, InteractiveShell]]:
    case = BY_NAME["openai-responses"]
    with case.running(monkeypatch) as fake:
        assert shell.run_cell("%convo model openai-responses:gpt-5.5").success
        yield fake, shell


def test_a_fork_carries_only_its_own_paths_reasoning(
    responses_shell: tuple[Any, InteractiveShell],
) -> None:
    fake, shell = responses_shell

    def turn(text: str, cell: str) -> list[str]:
        assert shell.run_cell(f"%%turn --effort low\n{text}", cell_id=cell).success
        return fake.carried[-1]  # type: ignore[no-any-return]

    def issued(n: int) -> str:
        """The id of the reasoning item the n-th request (1-based) was answered with."""
        body = fake.requests[n - 1]
        import hashlib

        return f"rs_{hashlib.sha256(json.dumps(body['input']).encode()).hexdigest()[:12]}_0"

    assert turn("one", "c1") == []
    assert turn("two", "c2") == [issued(1)]
    assert turn("three", "c3") == [issued(1), issued(2)]
    assert shell.run_cell("%convo fork 1 --name other").success
    assert turn("elsewhere?", "c4") == [issued(1)]  # turn 1's reasoning, not 2's or 3's
    assert turn("and then?", "c5") == [issued(1), issued(4)]
    assert shell.run_cell("%convo switch main").success
    assert turn("four", "c6") == [issued(1), issued(2), issued(3)]


# -- Anthropic ------------------------------------------------------------------------


def _anthropic_client(fake: Any) -> Any:
    return anthropic.Anthropic(api_key=fake.api_key, base_url=fake.base_url, max_retries=0)


@pytest.mark.parametrize(
    ("model", "effort", "thinking"),
    [
        ("claude-sonnet-5-5", "high", {"thinking": {"type": "adaptive", "display": "summarized"},
                                        "output_config": {"effort": "high"}}),
        ("claude-opus-4-6", "medium", {"thinking": {"type": "adaptive", "display": "summarized"},
                                        "output_config": {"effort": "medium"}}),
        ("claude-haiku-4-5", "low", {"thinking": {"type": "enabled", "budget_tokens": 2_048}}),
    ],
)  # fmt: skip
def test_anthropic_effort_body_is_the_sdks(
    model: str, effort: Any, thinking: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    case = BY_NAME["anthropic"]
    with case.running(monkeypatch) as fake:
        budget = thinking["thinking"].get("budget_tokens", 0)  # on top of the answer's
        with _anthropic_client(fake).messages.stream(
            model=model,
            max_tokens=64 + budget,
            system=SYSTEM,
            messages=[{"role": "user", "content": "hello"}],
            **thinking,
        ) as stream:
            sdk_text = "".join(stream.text_stream)
        request = chat(f"anthropic:{model}", {"role": "user", "content": "hello"},
                       system=SYSTEM, max_tokens=64, effort=effort)  # fmt: skip
        ours = ask(request)
        assert ours.error is None and ours.text == sdk_text == "echo #1: hello"
        sdk_body, our_body = fake.requests
        assert our_body == sdk_body


def test_anthropic_thinking_stream_parses_as_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    case = BY_NAME["anthropic"]
    with case.running(monkeypatch) as fake:
        fake.script.extend([Canned(options={"redacted": True})] * 2)
        thinking = {"type": "adaptive", "display": "summarized"}
        with _anthropic_client(fake).messages.stream(
            model="claude-sonnet-5-5",
            max_tokens=64,
            messages=[{"role": "user", "content": QUESTION}],
            thinking=thinking,  # type: ignore[arg-type]
            output_config={"effort": "high"},
        ) as stream:
            final = stream.get_final_message()
        ours = ask(chat("anthropic:claude-sonnet-5-5",
                                         {"role": "user", "content": QUESTION},
                                         max_tokens=64, effort="high"))  # fmt: skip
        assert ours.error is None
        assert ours.text == "".join(b.text for b in final.content if b.type == "text")
        sdk_thinking = [(b.thinking, b.signature) for b in final.content if b.type == "thinking"]
        sdk_redacted = [b.data for b in final.content if b.type == "redacted_thinking"]
        thought, redacted = reasoning_of(ours)
        assert [(thought.text, thought.opaque)] == sdk_thinking
        assert thinking_of(ours) == thought.text and "Effort high" in thought.text
        assert json.loads(redacted.opaque or "") == {
            "type": "redacted_thinking",
            "data": sdk_redacted[0],
        }
        assert redacted.text == "" and {thought.provider, redacted.provider} == {"anthropic"}
        assert ours.usage is not None and final.usage.output_tokens_details is not None
        assert ours.usage.output_tokens == final.usage.output_tokens
        assert ours.usage.reasoning_tokens == final.usage.output_tokens_details.thinking_tokens > 0


def test_anthropic_thinking_goes_back_first_in_a_tool_turn_as_the_sdks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Step 2 of a tool loop with thinking: the assistant turn starts with its thinking
    blocks (signed, the redacted one as it came), then its text and tool calls; a foreign
    reasoning part in it is left out. Without the thinking the fake refuses, as Anthropic
    does."""
    case = BY_NAME["anthropic"]
    with case.running(monkeypatch) as fake:
        fake.script.extend([Canned(tool_calls=CALLS, pieces=["Let me check."],
                                   options={"redacted": True})] * 2)  # fmt: skip
        tools = [{"name": ADD.name, "description": ADD.description, "input_schema": ADD.parameters}]
        common: dict[str, Any] = {
            "model": "claude-sonnet-5-5",
            "max_tokens": 64,
            "tools": tools,
            "thinking": {"type": "adaptive", "display": "summarized"},
            "output_config": {"effort": "low"},
        }
        client = _anthropic_client(fake)
        question = {"role": "user", "content": QUESTION}
        with client.messages.stream(messages=[question], **common) as stream:
            first = stream.get_final_message()
        step = ask(chat("anthropic:claude-sonnet-5-5", question,  # type: ignore[arg-type]
                                         tools=(ADD,), max_tokens=64, effort="low"))  # fmt: skip
        calls = [p for p in step.events if isinstance(p, ToolCallPart)]
        # Parts as the engine keeps them: reasoning (here with a foreign one), text, calls.
        answer = (FOREIGN, *reasoning_of(step), TextPart(step.text), *calls)
        results = tuple(ToolResultPart(c.call_id, "5", name=c.name) for c in calls)
        sdk_results = [{"type": "tool_result", "tool_use_id": r.call_id, "content": r.content}
                       for r in results]  # fmt: skip
        sdk_messages = [
            question,
            {"role": "assistant", "content": [b.model_dump(exclude_none=True, exclude={"citations"})
                                              for b in first.content]},
            {"role": "user", "content": sdk_results},
        ]  # fmt: skip
        with client.messages.stream(messages=sdk_messages, **common) as stream:
            sdk_text = "".join(stream.text_stream)
        messages: tuple[Message, ...] = (
            question,  # type: ignore[typeddict-item]
            {"role": "assistant", "content": answer},
            {"role": "tool", "content": results},
        )
        ours = ask(chat("anthropic:claude-sonnet-5-5", *messages,
                                         tools=(ADD,), max_tokens=64, effort="low"))  # fmt: skip
        assert ours.error is None and ours.text == sdk_text == "tool said: 5; 5"
        sdk_body, our_body = fake.requests[-2:]
        assert our_body == sdk_body
        kinds = [b["type"] for b in our_body["messages"][1]["content"]]
        assert kinds == ["thinking", "redacted_thinking", "text", "tool_use", "tool_use"]
        assert "FOREIGN-OPAQUE" not in json.dumps(our_body)
        # The same turn without its thinking: refused, as the API refuses it.
        bare = (TextPart(step.text), *calls)
        refused = ask(chat("anthropic:claude-sonnet-5-5", question,  # type: ignore[arg-type]
                                            {"role": "assistant", "content": bare},
                                            {"role": "tool", "content": results},
                                            tools=(ADD,), max_tokens=64, effort="low"))  # fmt: skip
        assert refused.error is not None and "must start with a thinking block" in str(
            refused.error
        )


def test_anthropic_effort_with_a_structured_answer_is_dropped_with_a_note(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nbconvo._types import ResponseSchema

    case = BY_NAME["anthropic"]
    schema = ResponseSchema("Sum", {"type": "object", "properties": {"total": {"type": "integer"}}})
    with case.running(monkeypatch) as fake:
        ours = ask(chat("anthropic:claude-sonnet-5-5",
                                         {"role": "user", "content": "2 + 3?"},
                                         schema=schema, effort="high"))  # fmt: skip
        assert ours.error is None and json.loads(ours.text) == {"total": 1}
        assert ours.notices == [
            "effort high not sent to anthropic:claude-sonnet-5-5: Anthropic takes no thinking "
            "while a tool is forced, as a structured answer (--schema) is"
        ]
        assert "thinking" not in fake.requests[-1] and "output_config" not in fake.requests[-1]


# -- Gemini ---------------------------------------------------------------------------


def _genai_client(fake: Any) -> Any:
    return genai.Client(
        api_key=fake.api_key, http_options=genai_types.HttpOptions(base_url=fake.base_url)
    )


@pytest.mark.parametrize(
    ("model", "effort", "config"),
    [
        ("gemini-3.5-flash", "medium", {"thinking_level": "MEDIUM"}),
        ("gemini-3.1-pro-preview", "high", {"thinking_level": "HIGH"}),
        ("gemini-2.5-flash", "high", {"thinking_budget": 24_576}),
    ],
)
def test_gemini_effort_body_and_thoughts_are_the_sdks(
    model: str, effort: Any, config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    case = BY_NAME["gemini"]
    with case.running(monkeypatch) as fake:
        thinking = genai_types.ThinkingConfig(include_thoughts=True, **config)
        client = _genai_client(fake)
        text, thoughts, signature, usage = "", "", None, None
        for chunk in client.models.generate_content_stream(
            model=model,
            contents="What is 2 + 3?",
            config=genai_types.GenerateContentConfig(
                system_instruction=SYSTEM, max_output_tokens=64, thinking_config=thinking
            ),
        ):
            text += chunk.text or ""
            for part in chunk.candidates[0].content.parts if chunk.candidates[0].content else []:
                if part.thought:
                    thoughts += part.text or ""
                    signature = part.thought_signature or signature
            usage = chunk.usage_metadata or usage
        request = chat(f"gemini:{model}", {"role": "user", "content": "What is 2 + 3?"},
                       system=SYSTEM, max_tokens=64, effort=effort)  # fmt: skip
        ours = ask(request)
        assert ours.error is None and ours.text == text == "echo #1: What is 2 + 3?"
        [part] = reasoning_of(ours)
        assert thinking_of(ours) == part.text == thoughts and thoughts.startswith("**Considering**")
        assert part.opaque is not None and base64.b64decode(part.opaque) == signature
        assert part.provider == "gemini"
        assert ours.usage is not None and usage is not None
        assert ours.usage.reasoning_tokens == usage.thoughts_token_count > 0
        sdk_seen, our_seen = fake.seen
        assert our_seen.body == sdk_seen.body


def test_gemini_thought_goes_back_as_the_part_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    case = BY_NAME["gemini"]
    with case.running(monkeypatch) as fake:
        spec = "gemini:gemini-3.5-flash"
        first = ask(chat(spec, {"role": "user", "content": "one"}, effort="low"))
        [thought] = reasoning_of(first)
        answer = (FOREIGN, thought, TextPart(first.text))
        ours = ask(chat(spec, {"role": "user", "content": "one"},
                                         {"role": "assistant", "content": answer},
                                         {"role": "user", "content": "two"}, effort="low"))  # fmt: skip
        part = genai_types.Part
        contents = [
            genai_types.Content(role="user", parts=[part(text="one")]),
            genai_types.Content(role="model", parts=[
                part(text=thought.text, thought=True,
                     thought_signature=base64.b64decode(thought.opaque or "")),
                part(text=first.text),
            ]),
            genai_types.Content(role="user", parts=[part(text="two")]),
        ]  # fmt: skip
        config = genai_types.GenerateContentConfig(
            thinking_config=genai_types.ThinkingConfig(include_thoughts=True, thinking_level="LOW")
        )
        client = _genai_client(fake)  # kept: a dropped client closes its connection pool
        sdk_text = "".join(
            chunk.text or ""
            for chunk in client.models.generate_content_stream(
                model="gemini-3.5-flash", contents=contents, config=config
            )
        )
        assert ours.error is None and ours.text == sdk_text == "echo #2: two"
        assert "1 earlier thoughts came back" in thinking_of(ours)
        sdk_seen, our_seen = fake.seen[-1], fake.seen[-2]
        assert our_seen.body == sdk_seen.body
        assert "FOREIGN-OPAQUE" not in json.dumps(our_seen.body)


# -- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "spec"),
    [
        ("openai", "openai:gpt-4.1"),
        ("openai-responses", "openai-responses:gpt-4.1"),
        ("azure", "azure:gpt-4o-prod"),
    ],
)
def test_effort_on_a_model_that_has_none_is_one_line_and_nothing_is_sent(
    name: str, spec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbconvo.providers import create_provider

    case = BY_NAME[name]
    with case.running(monkeypatch) as fake:
        request = chat(spec, {"role": "user", "content": "hello"}, effort="high")
        with pytest.raises(UsageError) as caught:
            list(create_provider(spec).stream(request))
        assert one_line(caught.value) == (
            f"{spec} takes no reasoning effort: remove --effort (or choose a reasoning model); "
            "nothing was sent"
        )
        assert fake.seen == [] and fake.requests == []


@pytest.mark.parametrize("name", ["openai", "openai-responses", "anthropic", "gemini", "azure",
                                  "copilot"])  # fmt: skip
def test_another_providers_reasoning_is_left_out_not_refused(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = BY_NAME[name]
    with case.running(monkeypatch) as fake:
        prefix, _, model = case.spec.partition(":")
        request = ChatRequest(
            provider=prefix,
            model=model,
            messages=(
                {"role": "user", "content": "one"},
                {"role": "assistant", "content": (FOREIGN, TextPart("echo #1: one"))},
                {"role": "user", "content": "two"},
            ),
        )
        ours = ask(request)
        assert ours.error is None and ours.text.endswith("two"), ours.error
        seen = json.dumps([s.body for s in getattr(fake, "seen", [])], default=str)
        assert "FOREIGN-OPAQUE" not in seen and "a thought from elsewhere" not in seen


def test_text_only_providers_leave_reasoning_out() -> None:
    from nbconvo.providers import refuse_what_it_cannot_take
    from nbconvo.providers.llama import llama_messages

    messages: list[Message] = [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": (FOREIGN, TextPart("echo #1: one"))},
    ]
    refuse_what_it_cannot_take("copilot:chat", messages)  # no error
    refuse_what_it_cannot_take("llama:model.gguf", messages)
    assert llama_messages(messages, "llama:x")[1] == {
        "role": "assistant",
        "content": "echo #1: one",
    }
