"""Tools and structured answers with the local model: in-process (``llama:``), where the
GGUF's Qwen2.5 template describes the tools and nbconvo parses the calls out of the text,
and through llama-cpp-python's OpenAI-compatible server.

What the 0.5B model does, at temperature 0 (measured; the tests pin these phrasings):

* "Use the add tool to add 1234 and 5678." → the call, written as a ```json fence holding
  ``{"name": "add", "arguments": {"a": 1234, "b": 5678}}``, not in ``<tool_call>`` tags.
* Given the call and its bare result "6912" and no more, it calls add again (every
  phrasing and system prompt tried; the 1.5B model too). Told which call gave it and
  that it is time to answer ("add(a=1234, b=5678) returned 6912. Now answer the
  question in words, using this result." — ``llama.said_result``), both answer with
  it: so a turn with a tool ends with the answer, in-process and through the server.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from nbconvo._errors import UsageError
from nbconvo._parts import ImagePart, TextPart, ToolCallPart, ToolResultPart
from nbconvo._tools import describe, shape_of
from nbconvo._types import (
    ChatRequest,
    Finish,
    Message,
    Notice,
    ProviderEvent,
    ResponseSchema,
    TextDelta,
    ToolSpec,
    Usage,
)
from nbconvo.providers import create_provider
from nbconvo.providers.llama import (
    LlamaProvider,
    ToolCallText,
    grammar_schema,
    llama_messages,
    llama_tools,
)

model = pytest.mark.model
TOOLS_SERVER_ALIAS = "qwen-tools"  # the model name llama_tools_server (conftest) serves


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


ADD: ToolSpec = describe(add).spec
ASK = "Use the add tool to add 1234 and 5678."
ARGUMENTS = {"a": 1234, "b": 5678}
CALL = ToolCallPart("call_0", "add", json.dumps(ARGUMENTS))
RESULT = ToolResultPart("call_0", "6912", name="add", seconds=0.001)
# The 0.5B model calls again when the result is the last message: a user turn follows.
AFTER_RESULT: tuple[Message, ...] = (
    {"role": "user", "content": ASK},
    {"role": "assistant", "content": (CALL,)},
    {"role": "tool", "content": (RESULT,)},
    {"role": "user", "content": "Write the sum as a sentence."},
)


@dataclasses.dataclass
class Person:
    name: str
    age: int


def request(
    *messages: Message,
    tools: tuple[ToolSpec, ...] = (ADD,),
    schema: ResponseSchema | None = None,
    max_tokens: int = 48,
) -> ChatRequest:
    return ChatRequest(
        provider="llama",
        model="test",
        messages=messages,
        temperature=0,
        max_tokens=max_tokens,
        seed=1,
        tools=tools,
        schema=schema,
    )


def user(text: str) -> Message:
    return {"role": "user", "content": text}


def answer(events: list[ProviderEvent]) -> str:
    return "".join(e for e in events if isinstance(e, TextDelta))


def calls(events: list[ProviderEvent]) -> list[ToolCallPart]:
    return [e for e in events if isinstance(e, ToolCallPart)]


def finishes(events: list[ProviderEvent]) -> list[str]:
    return [e.reason for e in events if isinstance(e, Finish)]


@pytest.fixture(scope="module")
def provider(local_model_path: Path) -> LlamaProvider:
    return LlamaProvider(model=str(local_model_path))


# -- in-process -----------------------------------------------------------------------------


@model
def test_the_model_calls_the_offered_tool(provider: LlamaProvider) -> None:
    events = list(provider.stream(request(user(ASK))))
    (call,) = calls(events)
    assert (call.call_id, call.name) == ("call_0", "add")
    assert json.loads(call.arguments) == ARGUMENTS
    assert answer(events).strip() == ""  # the call's JSON is not shown as text
    assert finishes(events) == ["tool_calls"]
    (usage,) = [e for e in events if isinstance(e, Usage)]
    assert usage.output_tokens > 10  # the call's text was generated, if not shown
    assert isinstance(events[-1], Usage)


@model
def test_the_answer_after_the_tool_result_uses_it(provider: LlamaProvider) -> None:
    events = list(provider.stream(request(*AFTER_RESULT)))
    assert calls(events) == []
    assert "6912" in answer(events)
    assert finishes(events) == ["stop"]


@model
def test_a_request_with_tools_is_counted_as_llama_renders_it(provider: LlamaProvider) -> None:
    from nbconvo.providers.llama import _load

    llm = _load(provider.path, provider.n_ctx).llm
    for messages in ([user(ASK)], list(AFTER_RESULT)):
        reference = llm.create_chat_completion(
            messages=llama_messages(messages, provider.label),  # type: ignore[arg-type]
            tools=llama_tools([ADD]),  # type: ignore[arg-type]
            temperature=0,
            max_tokens=1,
        )
        assert isinstance(reference, dict)
        expected = reference["usage"]["prompt_tokens"]
        assert provider.count_prompt_tokens(messages, [ADD]) == expected
        # The tools' definitions are part of the prompt.
        assert provider.count_prompt_tokens(messages) < expected - 50
    events = list(provider.stream(request(*AFTER_RESULT, max_tokens=1)))
    (usage,) = [e for e in events if isinstance(e, Usage)]
    assert usage.input_tokens == provider.count_prompt_tokens(list(AFTER_RESULT), [ADD])


@model
def test_a_structured_answer_matches_its_schema(provider: LlamaProvider) -> None:
    import jsonschema  # type: ignore[import-untyped]

    shape = shape_of(Person)
    events = list(
        provider.stream(
            request(
                user("Ada Lovelace died at 36. Give her name and age."),
                tools=(),
                schema=shape.schema,
            )
        )
    )
    text = answer(events)
    jsonschema.validate(json.loads(text), shape.schema.schema)
    assert shape.validate(text) == Person("Ada Lovelace", 36)
    assert finishes(events) == ["stop"]
    assert not [e for e in events if isinstance(e, Notice)]


@model
def test_with_tools_and_a_schema_the_model_may_still_call(provider: LlamaProvider) -> None:
    schema = shape_of(Person).schema
    events = list(provider.stream(request(user(ASK), schema=schema)))
    (call,) = calls(events)
    assert call.name == "add"
    assert json.loads(call.arguments) == ARGUMENTS
    assert finishes(events) == ["tool_calls"]


@model
def test_a_template_without_tools_is_refused_before_generating(
    provider: LlamaProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbconvo.providers import llama

    key = (str(provider.path.resolve()), provider.n_ctx)
    loaded = llama._load(provider.path, provider.n_ctx)
    monkeypatch.setitem(llama._MODELS, key, dataclasses.replace(loaded, tools=False))
    for messages in ([user(ASK)], list(AFTER_RESULT)):
        tools = (ADD,) if len(messages) == 1 else ()
        with pytest.raises(UsageError) as info:
            next(provider.stream(request(*messages, tools=tools)))
        message = str(info.value)
        assert "\n" not in message
        assert "chat template has no tool calls" in message
        assert message.endswith("nothing was sent")
    # Without tools it still answers.
    assert answer(list(provider.stream(request(user("Say hi."), tools=(), max_tokens=4))))


@model
def test_other_parts_are_still_refused(provider: LlamaProvider) -> None:
    image = ImagePart(b"\x89PNG", "image/png")
    with pytest.raises(UsageError, match="does not take an image"):
        next(provider.stream(request({"role": "user", "content": (TextPart("x"), image)})))


# -- the parser, on the shapes models write (no model needed) ----------------------------


def parse(
    pieces: list[str], reason: str = "stop", taken: tuple[str, ...] = ()
) -> tuple[str, list[tuple[str, str, Any]]]:
    parser = ToolCallText(["add"], taken)
    shown = "".join(parser.feed(p) for p in pieces) + parser.end(reason)
    found = []
    for c in parser.calls:
        try:
            arguments = json.loads(c.arguments)
        except ValueError:
            arguments = c.arguments
        found.append((c.call_id, c.name, arguments))
    return shown, found


def test_tagged_calls_are_parsed_and_their_markup_hidden() -> None:
    pieces = ["Adding.\n", "<tool", "_call>", '\n{"name": "add", "arguments": {"a": 1, ', '"b": 2}}\n',
              "</tool_call>", "\n", "<tool_call>", '\n{"name": "add", "arguments": {"a": 3}}',
              "\n</tool_call>"]  # fmt: skip
    shown, found = parse(pieces, taken=("call_0",))
    assert shown == "Adding.\n"
    assert found == [("call_1", "add", {"a": 1, "b": 2}), ("call_2", "add", {"a": 3})]


def test_a_malformed_block_is_a_call_with_its_raw_text() -> None:
    shown, found = parse(
        ["<tool_call>", '\n{"name": "add", "arguments": {"a": 1\n', "</tool_call>"]
    )
    assert shown == ""
    assert found == [("call_0", "add", '{"name": "add", "arguments": {"a": 1')]


def test_bare_calls_of_offered_tools_are_calls_and_other_json_is_text() -> None:
    fenced = ["```", "json", "\n", "{\n", '  "', "name", '":', ' "add",\n', '  "arguments": {"a": 1}\n',
              "}\n", "```"]  # fmt: skip
    assert parse(fenced) == ("", [("call_0", "add", {"a": 1})])
    two = ['{"name": "add", "arguments": {"a": 1}}\n{"name": "add", "arguments": "{\\"a\\": 2}"}']
    assert parse(two)[1] == [("call_0", "add", {"a": 1}), ("call_1", "add", {"a": 2})]
    for text in ('{"name": "Ada", "age": 36}', '{"x": 1}', "```python\nprint(1)\n```", "1 < 2"):
        assert parse([text[:3], text[3:]]) == (text, [])


def test_a_call_cut_off_by_the_token_limit_is_shown_as_text() -> None:
    assert parse(["<tool_call>", '\n{"name": "add"'], "length") == (
        '<tool_call>\n{"name": "add"',
        [],
    )
    assert parse(['{"name": "add", "arguments": {"a": '], "length")[1] == []


def test_the_grammar_with_tools_allows_the_answer_or_a_call() -> None:
    person = shape_of(Person).schema
    assert grammar_schema(person, ()) == person.schema
    combined = grammar_schema(person, (ADD,))
    assert combined["anyOf"][0] == person.schema
    assert combined["anyOf"][1]["properties"]["name"] == {"const": "add"}


# -- through llama-cpp-python's server (chatml-function-calling) ----------------------------


def openai_tools() -> list[dict[str, Any]]:
    return [{"type": "function", "function": ADD.to_json()}]


@model
def test_the_server_streams_a_forced_tool_call(llama_tools_server: str) -> None:
    """With ``tool_choice`` naming the function, the server streams ``tool_calls`` (each
    chunk repeats the call's id and name; the arguments come in pieces)."""
    from openai import OpenAI

    client = OpenAI(base_url=llama_tools_server, api_key="none", max_retries=0)
    body: dict[str, Any] = {
        "model": TOOLS_SERVER_ALIAS,
        "messages": [{"role": "user", "content": ASK}],
        "tools": openai_tools(),
        "tool_choice": {"type": "function", "function": {"name": "add"}},
        "temperature": 0,
        "seed": 1,
        "max_tokens": 48,
    }
    stream = client.chat.completions.create(**body, stream=True)
    names: set[str] = set()
    arguments: list[str] = []
    reasons: list[str] = []
    for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                assert call.index == 0
                if call.function and call.function.name:
                    names.add(call.function.name)
                if call.function and call.function.arguments:
                    arguments.append(call.function.arguments)
            if choice.finish_reason:
                reasons.append(choice.finish_reason)
    assert names == {"add"}
    assert json.loads("".join(arguments)) == ARGUMENTS
    assert reasons == ["tool_calls"]


@model
def test_the_server_chooses_a_tool_itself_only_without_streaming(llama_tools_server: str) -> None:
    """``tool_choice: auto`` gives ``tool_calls`` in a whole answer; streamed, this server
    version fails (it logs "Automatic streaming tool choice is not supported" and sends an
    empty stream). Without ``tool_choice`` it does not offer the tools at all."""
    body = {
        "model": TOOLS_SERVER_ALIAS,
        "messages": [{"role": "user", "content": ASK}],
        "tools": openai_tools(),
        "tool_choice": "auto",
        "temperature": 0,
        "seed": 1,
        "max_tokens": 48,
    }
    reply = httpx.post(f"{llama_tools_server}/chat/completions", json=body, timeout=120)
    assert reply.status_code == 200, reply.text
    choice = reply.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "add"
    assert json.loads(call["function"]["arguments"]) == ARGUMENTS


@model
def test_the_llamacpp_provider_calls_and_uses_the_result_through_the_server(
    llama_server: str,
) -> None:
    """nbconvo's ``llamacpp:`` provider on llama-cpp-python's server with the GGUF's own
    template (the ``llama_server`` fixture): the template describes the tools, the model
    writes its call as text, the provider reads it out as a call; the result goes back
    as a ``tool`` message the template renders, and the answer uses it."""
    from tests.conftest import SERVER_MODEL_ALIAS

    provider = create_provider(f"llamacpp:{SERVER_MODEL_ALIAS}", base_url=llama_server)
    first = dataclasses.replace(request(user(ASK)), provider="llamacpp", model=SERVER_MODEL_ALIAS)
    events = list(provider.stream(first))
    (call,) = calls(events)
    assert (call.call_id, call.name, json.loads(call.arguments)) == ("call_0", "add", ARGUMENTS)
    assert finishes(events) == ["tool_calls"] and answer(events) == ""
    after = dataclasses.replace(
        request(*AFTER_RESULT), provider="llamacpp", model=SERVER_MODEL_ALIAS
    )
    events = list(provider.stream(after))
    assert calls(events) == [] and "6912" in answer(events)


def add_tool() -> tuple[Any, list[tuple[int, int]]]:
    from nbconvo._toolloop import Toolbox
    from nbconvo._tools import tools_of

    ran: list[tuple[int, int]] = []

    def add(a: int, b: int) -> int:
        """Add two integers."""
        ran.append((a, b))
        return a + b

    (made,) = tools_of([add])
    return Toolbox(tools={"add": made}, approve_all=True, max_steps=3), ran


@model
@pytest.mark.parametrize(
    "prompt",
    ["What is 1234 + 5678? Use the add tool.", "Use the add tool to add 1234 and 5678."],
)
def test_a_turn_calls_the_notebook_function_and_answers_with_its_result(
    local_model_path: Path, prompt: str
) -> None:
    """The whole loop in-process, as `%%turn --tools add` runs it: the model calls add,
    the function runs in this process, the result goes back, and the answer uses it."""
    from nbconvo._conversation import Conversation, TurnOptions

    box, ran = add_tool()
    convo = Conversation(model=f"llama:{local_model_path}", temperature=0, seed=1, max_tokens=64)
    turn = convo.ask(prompt, options=TurnOptions(tools=box))
    assert ran == [(1234, 5678)]
    assert "6912" in turn.answer and turn.status == "ok"
    kinds = [p.kind for p in turn.answer_parts]
    assert kinds == ["tool_call", "tool_result", "text"]


@model
def test_through_the_server_a_turn_calls_the_function_and_answers_with_its_result(
    llama_server: str,
) -> None:
    """The same loop with nbconvo's ``llamacpp:`` provider on llama-cpp-python's server
    (the GGUF's template): the call comes back as text and is read out, the result goes
    back worded as in-process, and the answer uses it."""
    from nbconvo._conversation import Conversation, TurnOptions
    from tests.conftest import SERVER_MODEL_ALIAS

    box, ran = add_tool()
    convo = Conversation(
        model=f"llamacpp:{SERVER_MODEL_ALIAS}", base_url=llama_server, temperature=0, seed=1,
        max_tokens=64,
    )  # fmt: skip
    turn = convo.ask("Use the add tool to add 1234 and 5678.", options=TurnOptions(tools=box))
    assert ran == [(1234, 5678)]
    assert "6912" in turn.answer and turn.status == "ok"
    assert [p.kind for p in turn.answer_parts] == ["tool_call", "tool_result", "text"]


def test_a_result_is_worded_for_a_small_model_the_same_every_time() -> None:
    messages = (*AFTER_RESULT[:3],)
    (said,) = [m["content"] for m in llama_messages(messages, "llama:x") if m["role"] == "tool"]
    assert said == (
        "add(a=1234, b=5678) returned 6912. Now answer the question in words, using this result."
    )
    error = ToolResultPart("call_0", "add raised ValueError: no", is_error=True, name="add")
    (said,) = [
        m["content"]
        for m in llama_messages((*messages[:2], {"role": "tool", "content": (error,)}), "llama:x")
        if m["role"] == "tool"
    ]
    assert said == (
        "add(a=1234, b=5678) failed: add raised ValueError: no. Now answer the question in "
        "words, or call a tool with other arguments."
    )
