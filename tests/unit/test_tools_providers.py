"""Tool calls and structured answers on each provider's wire, checked against the
official SDKs (test-only dependencies): a stream of parallel calls, their arguments cut
into many small pieces, parses into the same calls (ids, names, arguments) and the same
stop reason in nbconvo as in the SDK; and for the same conversation (tools offered, an
answer that called two of them, their results, one an error, and the user's next
prompt) nbconvo sends the body the SDK sends, as it does for a structured answer.
Copilot, which has neither, refuses both before sending anything.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

import pytest

from nbconvo._errors import UsageError
from nbconvo._parts import TextPart, ToolCallPart, ToolResultPart
from nbconvo._types import ChatRequest, Message, ResponseSchema, ToolSpec
from tests.support.fakes.base import Canned
from tests.support.fakes.gemini_server import FakeGemini, signature_for
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
# anyOf, default and enum: what a function with an optional Literal parameter makes.
LOOKUP = ToolSpec(
    "lookup",
    "Look a word up in the dictionary.",
    {
        "type": "object",
        "properties": {
            "word": {"type": "string", "description": "The word."},
            "lang": {
                "anyOf": [{"type": "string", "enum": ["en", "fr"]}, {"type": "null"}],
                "default": None,
            },
        },
        "required": ["word"],
    },
)
TOOLS = (ADD, LOOKUP)
CALLS = [("add", '{"a": 2, "b": 3}'), ("lookup", '{"word": "parallel", "lang": "en"}')]
WEATHER = ResponseSchema(
    "Weather",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "celsius": {"type": "number"},
            "sky": {"type": "string", "enum": ["clear", "cloudy"]},
        },
        "required": ["city", "celsius", "sky"],
    },
    "The weather in one city.",
)


def chat(case_name: str, *messages: Message, **options: Any) -> ChatRequest:
    prefix, _, model = BY_NAME[case_name].spec.partition(":")
    return ChatRequest(provider=prefix, model=model, messages=messages, **options)


def calls_of(outcome: Outcome) -> list[tuple[str, str, Any]]:
    return [
        (e.call_id, e.name, json.loads(e.arguments))
        for e in outcome.events
        if isinstance(e, ToolCallPart)
    ]


def after_calls(case_name: str, ids: tuple[str, str]) -> ChatRequest:
    """A conversation that called both tools (a text before the calls), got their
    results (the second an error) and goes on with the user's next prompt."""
    answer = (
        TextPart("Let me check."),
        ToolCallPart(ids[0], "add", CALLS[0][1]),
        ToolCallPart(ids[1], "lookup", CALLS[1][1]),
    )
    results = (
        ToolResultPart(ids[0], "5", name="add"),
        ToolResultPart(ids[1], "lookup failed: no network", is_error=True, name="lookup"),
    )
    return chat(
        case_name,
        {"role": "user", "content": "What is 2 + 3, and what does parallel mean?"},
        {"role": "assistant", "content": answer},
        {"role": "tool", "content": results},
        {"role": "user", "content": "Thanks. Now say it in French."},
        system=SYSTEM,
        max_tokens=64,
        tools=TOOLS,
    )


# -- OpenAI and Azure --------------------------------------------------------------


def _openai_client(case_name: str, fake: Any) -> Any:
    if case_name == "openai":
        return openai.OpenAI(api_key=OPENAI_KEY, base_url=fake.base_url, max_retries=0)
    return openai.AzureOpenAI(
        azure_endpoint=fake.endpoint,
        api_key=fake.api_key,
        api_version="2024-10-21",
        max_retries=0,
    )


def _openai_tools() -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
        }
        for t in TOOLS
    ]


def _openai_sdk_calls(
    case_name: str, client: Any, model: str
) -> tuple[str, list[tuple[str, str, Any]], str | None]:
    """The text, calls and finish reason the SDK makes of the stream: OpenAI's through
    the SDK's own stream helper, which gathers tool-call deltas; Azure's by the SDK's
    chunks, gathered by index here (the helper fails on Azure's chunks without a delta)."""
    messages = [{"role": "user", "content": "2 + 3?"}]
    if case_name == "openai":
        with client.chat.completions.stream(
            model=model,
            messages=messages,
            tools=_openai_tools(),
            stream_options={"include_usage": True},
        ) as stream:
            final = stream.get_final_completion()
        message = final.choices[0].message
        calls = [
            (c.id, c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls
        ]
        return message.content or "", calls, final.choices[0].finish_reason
    text, gathered, finish = "", {}, None
    for chunk in client.chat.completions.create(
        model=model,
        messages=messages,
        tools=_openai_tools(),
        stream=True,
        stream_options={"include_usage": True},
    ):
        for choice in chunk.choices:
            if choice.delta is None:
                continue
            text += choice.delta.content or ""
            for delta in choice.delta.tool_calls or []:
                call = gathered.setdefault(delta.index, ["", "", ""])
                call[0] = call[0] or delta.id or ""
                call[1] = call[1] or delta.function.name or ""
                call[2] += delta.function.arguments or ""
            finish = choice.finish_reason or finish
    calls = [
        (i, name, json.loads(args)) for i, name, args in (gathered[k] for k in sorted(gathered))
    ]
    return text, calls, finish


@pytest.mark.parametrize("case_name", ["openai", "azure"])
def test_openai_tool_call_stream_parses_as_the_sdk_parses_it(
    case_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = BY_NAME[case_name]
    with case.running(monkeypatch) as fake:
        fake.chunk_size = 3  # arguments in pieces of three characters
        fake.script.extend([case.canned(pieces=["Let me ", "check."], tool_calls=CALLS)] * 2)
        request = chat(case_name, {"role": "user", "content": "2 + 3?"}, tools=TOOLS)
        client = _openai_client(case_name, fake)
        sdk_text, sdk_calls, sdk_finish = _openai_sdk_calls(case_name, client, request.model)
        ours = run(case.provider(), request)
        assert ours.error is None
        assert (
            calls_of(ours)
            == sdk_calls
            == [
                ("call_0_0", "add", {"a": 2, "b": 3}),
                ("call_0_1", "lookup", {"word": "parallel", "lang": "en"}),
            ]
        )
        assert ours.text == sdk_text == "Let me check."
        assert ours.finish is not None and ours.finish.notice is None
        assert sdk_finish == ours.finish.reason == "tool_calls"
        # the calls come whole, in order, before the usage and the finish
        kinds = [type(e).__name__ for e in ours.events]
        assert kinds[-4:] == ["ToolCallPart", "ToolCallPart", "Usage", "Finish"]
        sdk_body, our_body = fake.requests
        assert our_body == sdk_body


@pytest.mark.parametrize("case_name", ["openai", "azure"])
def test_openai_body_after_tool_calls_is_the_sdks(
    case_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = BY_NAME[case_name]
    with case.running(monkeypatch) as fake:
        request = after_calls(case_name, ("call_0_0", "call_0_1"))
        messages = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "What is 2 + 3, and what does parallel mean?"},
            {
                "role": "assistant",
                "content": "Let me check.",
                "tool_calls": [
                    {
                        "id": f"call_0_{n}",
                        "type": "function",
                        "function": {"name": name, "arguments": arguments},
                    }
                    for n, (name, arguments) in enumerate(CALLS)
                ],
            },
            {"role": "tool", "tool_call_id": "call_0_0", "content": "5"},
            {"role": "tool", "tool_call_id": "call_0_1", "content": "lookup failed: no network"},
            {"role": "user", "content": "Thanks. Now say it in French."},
        ]
        client = _openai_client(case_name, fake)
        for _ in client.chat.completions.create(
            model=request.model,
            messages=messages,  # type: ignore[arg-type]
            tools=_openai_tools(),  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
            max_completion_tokens=64,
        ):
            pass
        ours = run(case.provider(), request)
        assert ours.error is None and ours.text == "echo #2: Thanks. Now say it in French."
        sdk_body, our_body = fake.requests
        assert our_body == sdk_body


@pytest.mark.parametrize("case_name", ["openai", "azure"])
def test_openai_tool_results_answered_and_calls_without_text(
    case_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer of calls alone sends ``content: null``; the fake answers results with
    what the tools said (the default a dialogue test relies on)."""
    case = BY_NAME[case_name]
    with case.running(monkeypatch) as fake:
        request = after_calls(case_name, ("call_0_0", "call_0_1"))
        answer = (ToolCallPart("call_0_0", "add", CALLS[0][1]),)
        request = chat(
            case_name,
            request.messages[0],
            {"role": "assistant", "content": answer},
            {"role": "tool", "content": (ToolResultPart("call_0_0", "5"),)},
            tools=TOOLS,
        )
        ours = run(case.provider(), request)
        assert ours.error is None and ours.text == "tool said: 5"
        assert ours.finish is not None and ours.finish.reason == "stop"
        sent = fake.requests[0]["messages"]
        assert sent[1]["content"] is None and sent[1]["tool_calls"][0]["id"] == "call_0_0"


@pytest.mark.parametrize("case_name", ["openai", "azure"])
def test_openai_schema_body_is_the_sdks_and_the_answer_is_json(
    case_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = BY_NAME[case_name]
    with case.running(monkeypatch) as fake:
        request = chat(case_name, {"role": "user", "content": "Weather in Oslo?"}, schema=WEATHER)
        response_format = {
            "type": "json_schema",
            "json_schema": {
                "name": "Weather",
                "description": "The weather in one city.",
                "schema": WEATHER.schema,
                "strict": False,
            },
        }
        client = _openai_client(case_name, fake)
        for _ in client.chat.completions.create(
            model=request.model,
            messages=[{"role": "user", "content": "Weather in Oslo?"}],
            response_format=response_format,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        ):
            pass
        ours = run(case.provider(), request)
        assert ours.error is None
        assert json.loads(ours.text) == {
            "city": "echo #1: Weather in Oslo?",
            "celsius": 1.0,
            "sky": "clear",
        }
        sdk_body, our_body = fake.requests
        assert our_body == sdk_body and our_body["response_format"] == response_format


def test_openai_calls_without_index_or_id_and_a_stop_finish(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Local servers: a call sent whole, without an index or an id, and a turn of calls
    that finishes with ``stop`` (Ollama): the call gets an id, the finish says tool_calls.
    A ``tool_calls`` finish with no call is no tool turn."""
    from nbconvo.providers.openai import _ToolCalls

    calls = _ToolCalls()
    calls.add([{"function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}])
    calls.add([{"id": "x", "function": {"name": "lookup", "arguments": '{"word"'}}])
    calls.add([{"function": {"arguments": ': "a"}'}}])
    assert list(calls.done()) == [
        ToolCallPart("call_0", "add", '{"a": 1, "b": 2}'),
        ToolCallPart("x", "lookup", '{"word": "a"}'),
    ]
    assert list(calls.done()) == []
    case = BY_NAME["openai"]
    with case.running(monkeypatch) as fake:
        fake.script.append(case.canned(tool_calls=CALLS[:1], finish="stop"))
        ours = run(case.provider(), chat("openai", {"role": "user", "content": "x"}, tools=TOOLS))
        assert calls_of(ours) == [("call_0_0", "add", {"a": 2, "b": 3})]
        assert ours.finish is not None and ours.finish.reason == "tool_calls"
        fake.script.append(case.canned(finish_reason="tool_calls"))
        ours = run(case.provider(), chat("openai", {"role": "user", "content": "x"}))
        assert ours.finish is not None and ours.finish.reason == "other"


def test_openai_fake_refuses_unpaired_tool_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake checks what the API checks: every call answered, no stray result."""
    case = BY_NAME["openai"]
    with case.running(monkeypatch) as fake:
        request = after_calls("openai", ("call_0_0", "call_0_1"))
        unanswered = chat(
            "openai", *request.messages[:2], {"role": "user", "content": "go on"}, tools=TOOLS
        )
        outcome = run(case.provider(), unanswered)
        assert outcome.error is not None and "did not have response messages" in str(outcome.error)
        stray = chat(
            "openai",
            request.messages[0],
            {"role": "tool", "content": (ToolResultPart("call_9", "5"),)},
            tools=TOOLS,
        )
        outcome = run(case.provider(), stray)
        assert outcome.error is not None and "preceeding message with 'tool_calls'" in str(
            outcome.error
        )
        assert fake.requests == []


# -- Anthropic ----------------------------------------------------------------------


def _anthropic_client(fake: Any) -> Any:
    return anthropic.Anthropic(api_key=fake.api_key, base_url=fake.base_url, max_retries=0)


def _anthropic_tools() -> list[dict[str, Any]]:
    return [
        {"name": t.name, "description": t.description, "input_schema": t.parameters} for t in TOOLS
    ]


def test_anthropic_tool_call_stream_parses_as_the_sdk_parses_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = BY_NAME["anthropic"]
    with case.running(monkeypatch) as fake:
        fake.chunk_size = 3
        fake.script.extend([Canned(pieces=["Let me ", "check."], tool_calls=CALLS)] * 2)
        request = chat(
            "anthropic", {"role": "user", "content": "2 + 3?"}, tools=TOOLS, max_tokens=1024
        )
        with _anthropic_client(fake).messages.stream(
            model=request.model,
            max_tokens=1024,
            messages=[{"role": "user", "content": "2 + 3?"}],
            tools=_anthropic_tools(),  # type: ignore[arg-type]
        ) as stream:
            final = stream.get_final_message()
        sdk_calls = [(b.id, b.name, b.input) for b in final.content if b.type == "tool_use"]
        sdk_text = "".join(b.text for b in final.content if b.type == "text")
        ours = run(case.provider(), request)
        assert ours.error is None
        assert (
            calls_of(ours)
            == sdk_calls
            == [
                ("toolu_0_0", "add", {"a": 2, "b": 3}),
                ("toolu_0_1", "lookup", {"word": "parallel", "lang": "en"}),
            ]
        )
        assert ours.text == sdk_text == "Let me check."
        assert final.stop_reason == "tool_use"
        assert ours.finish is not None and ours.finish.reason == "tool_calls"
        assert ours.finish.notice is None
        assert ours.usage is not None and ours.usage.output_tokens == final.usage.output_tokens
        sdk_body, our_body = fake.requests
        assert our_body == sdk_body


def test_anthropic_body_after_tool_calls_is_the_sdks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The results go first in the next user message, the user's prompt after them (one
    message: roles alternate); ``is_error`` only on the error; the input an object."""
    case = BY_NAME["anthropic"]
    with case.running(monkeypatch) as fake:
        request = after_calls("anthropic", ("toolu_0_0", "toolu_0_1"))
        messages = [
            {"role": "user", "content": "What is 2 + 3, and what does parallel mean?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me check."},
                    *(
                        {
                            "type": "tool_use",
                            "id": f"toolu_0_{n}",
                            "name": name,
                            "input": json.loads(arguments),
                        }
                        for n, (name, arguments) in enumerate(CALLS)
                    ),
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_0_0", "content": "5"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_0_1",
                        "content": "lookup failed: no network",
                        "is_error": True,
                    },
                    {"type": "text", "text": "Thanks. Now say it in French."},
                ],
            },
        ]
        with _anthropic_client(fake).messages.stream(
            model=request.model,
            max_tokens=64,
            system=SYSTEM,
            messages=messages,  # type: ignore[arg-type]
            tools=_anthropic_tools(),  # type: ignore[arg-type]
        ) as stream:
            sdk_text = "".join(stream.text_stream)
        ours = run(case.provider(), request)
        assert ours.error is None
        assert ours.text == sdk_text == "echo #2: Thanks. Now say it in French."
        sdk_body, our_body = fake.requests
        assert our_body == sdk_body


def test_anthropic_tool_results_alone_are_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    case = BY_NAME["anthropic"]
    with case.running(monkeypatch):
        request = after_calls("anthropic", ("toolu_0_0", "toolu_0_1"))
        request = chat("anthropic", *request.messages[:3], tools=TOOLS)
        ours = run(case.provider(), request)
        assert ours.error is None
        assert ours.text == "tool said: 5; lookup failed: no network"


def test_anthropic_schema_is_a_forced_tool_whose_input_is_the_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = BY_NAME["anthropic"]
    with case.running(monkeypatch) as fake:
        fake.chunk_size = 5
        request = chat(
            "anthropic",
            {"role": "user", "content": "Weather in Oslo?"},
            schema=WEATHER,
            max_tokens=1024,
        )
        tool = {
            "name": "Weather",
            "description": "The weather in one city.",
            "input_schema": WEATHER.schema,
        }
        with _anthropic_client(fake).messages.stream(
            model=request.model,
            max_tokens=1024,
            messages=[{"role": "user", "content": "Weather in Oslo?"}],
            tools=[tool],  # type: ignore[list-item]
            tool_choice={"type": "tool", "name": "Weather"},
        ) as stream:
            final = stream.get_final_message()
        ours = run(case.provider(), request)
        assert ours.error is None
        assert calls_of(ours) == []
        assert len([e for e in ours.events if isinstance(e, str)]) > 5  # streamed in pieces
        expected = {"city": "echo #1: Weather in Oslo?", "celsius": 1.0, "sky": "clear"}
        assert json.loads(ours.text) == final.content[0].input == expected
        assert final.stop_reason == "tool_use"
        assert ours.finish is not None and ours.finish.reason == "stop"
        assert ours.finish.notice is None
        sdk_body, our_body = fake.requests
        assert our_body == sdk_body
        assert our_body["tool_choice"] == {"type": "tool", "name": "Weather"}


def test_anthropic_schema_beside_tools_lets_the_model_call_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With tools too the model must call a tool, one it needs or the answer: a call of
    a tool is a tool turn, the answer tool's input is the answer."""
    case = BY_NAME["anthropic"]
    with case.running(monkeypatch) as fake:
        request = chat(
            "anthropic",
            {"role": "user", "content": "Weather in Oslo?"},
            tools=TOOLS,
            schema=WEATHER,
        )
        fake.script.append(Canned(tool_calls=CALLS[:1]))
        ours = run(case.provider(), request)
        assert calls_of(ours) == [("toolu_0_0", "add", {"a": 2, "b": 3})]
        assert ours.finish is not None and ours.finish.reason == "tool_calls"
        body = fake.requests[0]
        assert body["tool_choice"] == {"type": "any"}
        assert [t["name"] for t in body["tools"]] == ["add", "lookup", "Weather"]
        fake.script.append(Canned(tool_calls=[("Weather", '{"city": "Oslo"}')]))
        ours = run(case.provider(), request)
        assert ours.text == '{"city": "Oslo"}' and calls_of(ours) == []
        assert ours.finish is not None and ours.finish.reason == "stop"


def test_anthropic_fake_refuses_a_tool_use_without_its_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = BY_NAME["anthropic"]
    with case.running(monkeypatch) as fake:
        request = after_calls("anthropic", ("toolu_0_0", "toolu_0_1"))
        only_one = (ToolResultPart("toolu_0_0", "5"),)
        broken = chat(
            "anthropic",
            *request.messages[:2],
            {"role": "tool", "content": only_one},
            tools=TOOLS,
        )
        outcome = run(case.provider(), broken)
        assert outcome.error is not None
        assert "without `tool_result` blocks immediately after: toolu_0_1" in str(outcome.error)
        assert fake.requests == []


# -- Gemini -------------------------------------------------------------------------


def _genai_client(fake: Any) -> Any:
    return genai.Client(
        api_key=fake.api_key, http_options=genai_types.HttpOptions(base_url=fake.base_url)
    )


def _genai_tools() -> list[Any]:
    declarations = [
        genai_types.FunctionDeclaration(
            name=t.name, description=t.description, parameters_json_schema=t.parameters
        )
        for t in TOOLS
    ]
    return [genai_types.Tool(function_declarations=declarations)]


@pytest.mark.parametrize("together", [False, True], ids=["chunk-each", "one-chunk"])
def test_gemini_tool_call_stream_parses_as_the_sdk_parses_it(
    together: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = BY_NAME["gemini"]
    with case.running(monkeypatch) as fake:
        options = {"calls_together": True} if together else {}
        fake.script.extend(
            [Canned(pieces=["Let me ", "check."], tool_calls=CALLS, options=options)] * 2
        )
        request = chat("gemini", {"role": "user", "content": "2 + 3?"}, tools=TOOLS, max_tokens=64)
        config = genai_types.GenerateContentConfig(tools=_genai_tools(), max_output_tokens=64)
        sdk_calls, finish = [], None
        client = _genai_client(fake)
        for chunk in client.models.generate_content_stream(
            model=request.model, contents="2 + 3?", config=config
        ):
            sdk_calls += [(c.name, c.args) for c in chunk.function_calls or []]
            finish = chunk.candidates[0].finish_reason or finish
        ours = run(case.provider(), request)
        assert ours.error is None
        assert (
            [(name, args) for _, name, args in calls_of(ours)]
            == sdk_calls
            == [
                ("add", {"a": 2, "b": 3}),
                ("lookup", {"word": "parallel", "lang": "en"}),
            ]
        )
        assert [call_id for call_id, _, _ in calls_of(ours)] == ["call_0", "call_1"]
        assert ours.text == "Let me check."
        assert finish is not None and finish.value == "STOP"
        assert ours.finish is not None and ours.finish.reason == "tool_calls"
        sdk_seen, our_seen = fake.seen
        assert our_seen.body == sdk_seen.body


def test_gemini_body_after_tool_calls_is_the_sdks(monkeypatch: pytest.MonkeyPatch) -> None:
    case = BY_NAME["gemini"]
    with case.running(monkeypatch) as fake:
        request = after_calls("gemini", ("call_0", "call_1"))
        request = chat(
            "gemini",
            *request.messages[:2],
            {
                "role": "tool",
                "content": tuple(  # results without names: named after their calls
                    ToolResultPart(p.call_id, p.content, p.is_error)
                    for p in request.messages[2]["content"]
                    if isinstance(p, ToolResultPart)
                ),
            },
            request.messages[3],
            system=SYSTEM,
            tools=TOOLS,
            max_tokens=64,
        )
        part = genai_types.Part
        contents = [
            genai_types.Content(
                role="user",
                parts=[part(text="What is 2 + 3, and what does parallel mean?")],
            ),
            genai_types.Content(
                role="model",
                parts=[
                    part(text="Let me check."),
                    *(
                        part(
                            function_call=genai_types.FunctionCall(
                                name=name, args=json.loads(arguments)
                            )
                        )
                        for name, arguments in CALLS
                    ),
                ],
            ),
            genai_types.Content(
                role="user",
                parts=[
                    part(
                        function_response=genai_types.FunctionResponse(
                            name="add", response={"result": "5"}
                        )
                    ),
                    part(
                        function_response=genai_types.FunctionResponse(
                            name="lookup", response={"error": "lookup failed: no network"}
                        )
                    ),
                    part(text="Thanks. Now say it in French."),
                ],
            ),
        ]
        config = genai_types.GenerateContentConfig(
            system_instruction=SYSTEM, tools=_genai_tools(), max_output_tokens=64
        )
        client = _genai_client(fake)
        sdk_text = "".join(
            chunk.text or ""
            for chunk in client.models.generate_content_stream(
                model=request.model, contents=contents, config=config
            )
        )
        ours = run(case.provider(), request)
        assert ours.error is None
        assert ours.text == sdk_text == "echo #2: Thanks. Now say it in French."
        sdk_seen, our_seen = fake.seen
        assert our_seen.body == sdk_seen.body


def test_gemini_schema_body_is_the_sdks_and_the_answer_is_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = BY_NAME["gemini"]
    with case.running(monkeypatch) as fake:
        request = chat("gemini", {"role": "user", "content": "Weather in Oslo?"}, schema=WEATHER)
        config = genai_types.GenerateContentConfig(
            response_mime_type="application/json", response_json_schema=WEATHER.schema
        )
        client = _genai_client(fake)
        for _ in client.models.generate_content_stream(
            model=request.model, contents="Weather in Oslo?", config=config
        ):
            pass
        ours = run(case.provider(), request)
        assert ours.error is None
        assert json.loads(ours.text) == {
            "city": "echo #1: Weather in Oslo?",
            "celsius": 1.0,
            "sky": "clear",
        }
        sdk_seen, our_seen = fake.seen
        assert our_seen.body == sdk_seen.body
        assert our_seen.body["generationConfig"] == {
            "responseMimeType": "application/json",
            "responseJsonSchema": WEATHER.schema,
        }


def test_gemini_thought_signatures_go_back_with_their_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Gemini 3 gives the first call of an answer a thought signature and refuses a next
    request without it (the fake too, with ``require_signatures``): the provider sends
    back the one it received, and the results are answered."""
    case = BY_NAME["gemini"]
    with case.running(monkeypatch), FakeGemini(require_signatures=True) as fake:
        monkeypatch.setenv("GEMINI_BASE_URL", fake.base_url)
        provider = case.provider()
        question: Message = {"role": "user", "content": "2 + 3?"}
        fake.script.append(Canned(tool_calls=CALLS))
        first = run(provider, chat("gemini", question, tools=TOOLS))
        calls = [e for e in first.events if isinstance(e, ToolCallPart)]
        assert len(calls) == 2
        results = tuple(ToolResultPart(c.call_id, f"result {c.name}") for c in calls)
        follow = chat(
            "gemini",
            question,
            {"role": "assistant", "content": tuple(calls)},
            {"role": "tool", "content": results},
            tools=TOOLS,
        )
        second = run(provider, follow)
        assert second.error is None
        assert second.text == "tool said: result add; result lookup"
        parts = fake.requests[1]["contents"][1]["parts"]
        assert parts[0]["thoughtSignature"] == signature_for(1)
        assert "thoughtSignature" not in parts[1]
        # The signature is in the call's part: a provider made afresh (a kernel restart,
        # a store restored) sends it back too.
        assert calls[0].signature == signature_for(1)
        again = run(case.provider(), follow)
        assert again.error is None and again.text == "tool said: result add; result lookup"
        # A call without it (as a store of an earlier version holds) is refused by Gemini 3.
        bare = tuple(dataclasses.replace(c, signature=None) for c in calls)
        outcome = run(
            case.provider(),
            chat("gemini", question, {"role": "assistant", "content": bare},
                 {"role": "tool", "content": results}, tools=TOOLS),
        )  # fmt: skip
        assert outcome.error is not None
        assert "missing a thought_signature" in str(outcome.error)


@pytest.mark.parametrize(
    ("reason", "says"),
    [("MALFORMED_FUNCTION_CALL", "send the turn again"), ("UNEXPECTED_TOOL_CALL", "--tools")],
)
def test_gemini_tool_stops_say_what_to_do(
    reason: str, says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = BY_NAME["gemini"]
    with case.running(monkeypatch) as fake:
        fake.script.append(Canned(finish=reason, options={"finish_only": True}))
        ours = run(case.provider(), chat("gemini", {"role": "user", "content": "x"}, tools=TOOLS))
        assert ours.finish is not None and ours.finish.reason == "other"
        assert ours.finish.notice is not None
        assert reason in ours.finish.notice and says in ours.finish.notice


# -- Copilot ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "flag"),
    [({"tools": TOOLS}, "--tools"), ({"schema": WEATHER}, "--schema")],
    ids=["tools", "schema"],
)
def test_copilot_refuses_tools_and_a_schema_before_sending(
    options: dict[str, Any], flag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = BY_NAME["copilot"]
    with case.running(monkeypatch) as fake:
        request = chat("copilot", {"role": "user", "content": "hi"}, **options)
        with pytest.raises(UsageError) as caught:
            list(case.provider().stream(request))
        message = str(caught.value)
        assert len(message.splitlines()) == 1
        assert message.startswith("copilot:chat does not take ")
        assert f"remove {flag} or choose another model with `%convo model`" in message
        assert message.endswith("nothing was sent")
        assert not fake.seen  # nothing reached the server


# -- helpers ------------------------------------------------------------------------


def test_arguments_that_are_not_an_object_go_back_as_an_empty_one() -> None:
    """Anthropic and Gemini take a call's input as an object: a model's bad JSON (its
    result said so) goes back as ``{}``, not as a request the API refuses."""
    from nbconvo.providers._content import anthropic_blocks, gemini_parts

    bad = (ToolCallPart("c1", "add", '{"a": 2,'), ToolCallPart("c2", "add", "[1, 2]"))
    assert [b["input"] for b in anthropic_blocks(bad, "anthropic:x")] == [{}, {}]
    assert [p["functionCall"]["args"] for p in gemini_parts(bad, "gemini:x")] == [{}, {}]


def test_signature_for_is_base64() -> None:
    assert base64.b64decode(signature_for(1)) == b"fake-signature-1"
