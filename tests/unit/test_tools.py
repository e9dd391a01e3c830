"""Tools (#17): schemas from signatures, argument checks, and what a call gives the model
whatever the function does (raises, overruns, returns something odd or huge, is denied,
is unknown), each in one line."""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any, Literal

import pytest
from pydantic import BaseModel
from typing_extensions import TypedDict  # pydantic reads typing.TypedDict only on 3.12+

from nbconvo._conversation import Conversation, TurnOptions
from nbconvo._errors import TurnInterrupted, UsageError
from nbconvo._parts import TextPart, ToolCallPart, ToolResultPart
from nbconvo._toolloop import Toolbox, call_with_timeout
from nbconvo._tools import ToolInputError, describe, describe_call, shape_of, tool, tools_of
from nbconvo._types import ChatRequest, Finish, ProviderEvent


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Point:
    x: float
    y: float


class Box(BaseModel):
    label: str
    size: int = 1


def plot(
    points: list[Point],
    color: Color = Color.RED,
    style: Literal["line", "dots"] = "line",
    box: Box | None = None,
    title: str = "",
) -> str:
    """Draw points.

    Args:
        points: where to draw
        color: the pen
        style: how to join them
    """
    return f"{len(points)} {color.value} {style} {box.label if box else ''} {title}"


def test_a_functions_schema_comes_from_its_hints_defaults_and_docstring() -> None:
    spec = describe(plot).spec
    assert spec.name == "plot" and spec.description == "Draw points."
    params = spec.parameters
    assert params["type"] == "object" and params["required"] == ["points"]
    props = params["properties"]
    assert props["points"]["description"] == "where to draw"
    assert props["points"]["items"]["properties"]["x"] == {"type": "number"}
    assert props["color"]["enum"] == ["red", "blue"] and props["color"]["default"] == "red"
    assert props["style"]["enum"] == ["line", "dots"]
    assert props["style"]["description"] == "how to join them"
    box = next(s for s in props["box"]["anyOf"] if s.get("type") == "object")
    assert box["properties"]["size"] == {"default": 1, "type": "integer"}
    assert "$ref" not in json.dumps(params) and "$defs" not in params  # self-contained
    assert "title" not in props["color"]  # generated titles left out


@pytest.mark.parametrize(
    "doc",
    [
        "Scale.\n\nArgs:\n    factor: how much\n",
        "Scale.\n\nParameters\n----------\nfactor : float\n    how much\n",
        "Scale.\n\n:param factor: how much\n",
    ],
    ids=["google", "numpy", "rest"],
)
def test_every_docstring_style_describes_the_parameters(doc: str) -> None:
    def scale(factor: float) -> float:
        return factor

    scale.__doc__ = doc
    spec = describe(scale).spec
    assert spec.description == "Scale."
    assert spec.parameters["properties"]["factor"]["description"] == "how much"


def test_arguments_arrive_as_the_hinted_types() -> None:
    made = describe(plot)
    args, kwargs = made.arguments(
        '{"points": [{"x": 1, "y": 2}], "color": "blue", "box": {"label": "b"}}'
    )
    assert args == ()
    assert kwargs == {"points": [Point(1.0, 2.0)], "color": Color.BLUE, "box": Box(label="b")}
    assert plot(*args, **kwargs) == "1 blue line b "


def test_positional_only_parameters_are_passed_by_position() -> None:
    def sub(a: int, b: int, /) -> int:
        return a - b

    args, kwargs = describe(sub).arguments('{"b": 1, "a": 5}')
    assert (args, kwargs) == ((5, 1), {})


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"points": 3}', "'points': Input should be a valid list"),
        ('{"points": [], "style": "wavy"}', "'style': Input should be 'line' or 'dots'"),
        ("{}", "'points': Field required"),
        ('{"points": [}', "the arguments are not JSON"),
        ("[1, 2]", "the arguments are a list, not a JSON object"),
    ],
)
def test_arguments_that_do_not_fit_say_which_in_one_line(text: str, says: str) -> None:
    with pytest.raises(ToolInputError) as caught:
        describe(plot).arguments(text)
    assert says in str(caught.value) and "\n" not in str(caught.value)


class Frame:  # stands for a DataFrame: no JSON form
    pass


def test_a_parameter_no_model_can_write_is_refused_where_the_tool_is_defined() -> None:
    def summarize(frame: Frame) -> str:
        return ""

    with pytest.raises(UsageError) as caught:
        tool(summarize)
    message = str(caught.value)
    assert "tool summarize: parameter 'frame' is a Frame" in message
    assert "give its parameters JSON types" in message


def test_the_decorator_marks_and_names_a_tool() -> None:
    @tool(name="lookup")
    def find(key: str) -> str:
        """Look a key up."""
        return key

    (made,) = tools_of([find])
    assert made.name == "lookup" and made.spec.description == "Look a key up."
    with pytest.raises(UsageError, match="Python identifier"):
        tool(name="no spaces")(find)


# -- what a call gives the model -------------------------------------------------------


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def boom(a: int) -> int:
    raise ZeroDivisionError("division by zero\nsecond line")


def sleepy(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


def stubborn(seconds: float) -> str:
    """Swallows every Exception: a timeout must still stop it."""
    try:
        time.sleep(seconds)
    except Exception:
        return "swallowed"
    return "woke"


def unserializable() -> object:
    return object()


def huge() -> str:
    return "x" * 10_000_000


def triple(values: list[int]) -> tuple[int, ...]:
    return tuple(3 * v for v in values)


def box_of(**tools: Any) -> tuple[Toolbox, list[str]]:
    notes: list[str] = []
    made = {t.name: t for t in tools_of(tools.values())}
    return Toolbox(tools=made, approve_all=True, on_notice=notes.append, timeout=5), notes


def call(name: str, arguments: dict[str, Any] | str, call_id: str = "c1") -> ToolCallPart:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return ToolCallPart(call_id, name, text)


def test_a_result_is_its_json_or_its_text() -> None:
    box, notes = box_of(add=add, triple=triple)
    result = box.run(call("add", {"a": 2, "b": 3}))
    assert (result.content, result.is_error, result.name) == ("5", False, "add")
    assert result.seconds > 0
    assert box.run(call("triple", {"values": [1, 2]})).content == "[3, 6]"
    assert notes == []


def test_a_tool_that_raises_tells_the_model_in_one_line() -> None:
    box, notes = box_of(boom=boom)
    result = box.run(call("boom", {"a": 1}))
    assert result.is_error
    assert result.content == "boom raised ZeroDivisionError: division by zero second line"
    assert notes == [result.content]


def test_a_tool_past_its_time_is_stopped_on_the_main_thread() -> None:
    box, notes = box_of(sleepy=sleepy, stubborn=stubborn)
    box.timeout = 0.2
    for name in ("sleepy", "stubborn"):
        result = box.run(call(name, {"seconds": 30}))
        assert result.is_error
        assert result.content.startswith(f"{name} did not finish within 0.2 s and was stopped")
        assert "tool_timeout" in result.content
    assert len(notes) == 2  # the user sees each too
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # the timer is put back


def test_a_tool_past_its_time_off_the_main_thread_is_left_behind() -> None:
    box, _ = box_of(sleepy=sleepy)
    box.timeout = 0.2
    out: list[ToolResultPart] = []
    worker = threading.Thread(target=lambda: out.append(box.run(call("sleepy", {"seconds": 3}))))
    worker.start()
    worker.join(20)
    assert out and out[0].is_error and "did not finish within 0.2 s" in out[0].content


def test_a_timed_call_returns_its_value_and_raises_its_error() -> None:
    assert call_with_timeout(add, (1, 2), {}, 5) == 3
    with pytest.raises(ZeroDivisionError):
        call_with_timeout(boom, (1,), {}, 5)


def test_a_value_that_is_not_json_goes_as_text_with_a_note() -> None:
    box, notes = box_of(unserializable=unserializable)
    result = box.run(call("unserializable", {}))
    assert not result.is_error and result.content.startswith("<object object at")
    assert notes == ["unserializable returned an object, not JSON: the model got its repr"]
    box.render = lambda value: ("rendered", "a thing, 3 parts")
    assert box.run(call("unserializable", {})).content == "rendered"
    assert (
        notes[-1] == "unserializable returned a thing, 3 parts, not JSON: the model got it as text"
    )


def test_ten_megabytes_are_cut_to_the_limit_with_a_note() -> None:
    box, notes = box_of(huge=huge)
    result = box.run(call("huge", {}))
    assert len(result.content) < 20_100
    assert result.content.endswith("[cut: 10,000,000 characters in all, the rest was not sent]")
    assert notes == [
        "huge returned 10,000,000 characters: the model got the first 20,000 "
        "(`%config ConvoMagics.tool_result_chars` sets it)"
    ]


def test_an_unknown_tool_and_bad_arguments_go_back_to_the_model() -> None:
    box, notes = box_of(add=add)
    unknown = box.run(call("sub", {"a": 1}))
    assert (
        unknown.is_error and unknown.content == "there is no tool named 'sub' (the tools are: add)"
    )
    bad = box.run(call("add", '{"a": 1, "b": "two"}'))
    assert bad.is_error and bad.content.startswith("add: bad arguments: 'b': Input should be")
    assert notes == [unknown.content, bad.content]


def test_the_user_approves_each_call_or_always_or_denies() -> None:
    asked: list[str] = []
    answers = iter(["n", "y", "a"])

    def ask(question: str) -> str:
        asked.append(question)
        return next(answers)

    box, notes = box_of(add=add)
    box.approve_all, box.ask = False, ask
    denied = box.run(call("add", {"a": 2, "b": 3}))
    assert denied.is_error and denied.content == "the user did not allow add(a=2, b=3)"
    assert box.run(call("add", {"a": 2, "b": 3})).content == "5"
    assert box.run(call("add", {"a": 1, "b": 1})).content == "2"  # "a": always from now on
    assert box.run(call("add", {"a": 4, "b": 4})).content == "8"  # not asked again
    assert asked == [
        "nbconvo: the model wants to run add(a=2, b=3) — [y]es / [n]o / [a]lways? "
    ] * 2 + ["nbconvo: the model wants to run add(a=1, b=1) — [y]es / [n]o / [a]lways? "]
    assert box.approved == {"add"} and notes == []


def test_with_no_one_to_ask_a_call_is_not_run_and_says_how_to_allow_it() -> None:
    def no_stdin(question: str) -> str:
        raise EOFError

    ran: list[int] = []

    def record(a: int) -> int:
        ran.append(a)
        return a

    box, notes = box_of(record=record)
    box.approve_all, box.ask = False, no_stdin
    result = box.run(call("record", {"a": 1}))
    assert result.is_error and ran == []
    assert notes == [
        "record(a=1) was not run: no one could approve it here (pass --approve record or "
        "--approve all; `nbconvo run` takes --allow-tools)"
    ]


def test_a_call_is_shown_with_its_arguments() -> None:
    assert describe_call(call("add", {"a": 2, "b": "x"})) == 'add(a=2, b="x")'
    assert describe_call(call("add", "{not json")) == "add({not json)"
    assert describe_call(call("add", {"text": "y" * 500})).endswith("…")


# -- structured answers ----------------------------------------------------------------


class Movie(TypedDict):
    title: str
    year: int


def test_a_structured_answer_checks_its_fields() -> None:
    shape = shape_of(Point)
    assert shape.schema.schema["required"] == ["x", "y"]
    assert shape.validate('{"x": 1, "y": 2.5}') == Point(1.0, 2.5)
    assert shape.validate('```json\n{"x": 1, "y": 2}\n```') == Point(1.0, 2.0)
    with pytest.raises(ToolInputError, match=r"^'y': Field required$"):
        shape.validate('{"x": 1}')
    assert shape_of(Movie).validate('{"title": "Up", "year": 2009}') == {
        "title": "Up",
        "year": 2009,
    }
    assert shape_of(Box).schema.description == ""  # not BaseModel's docstring


def test_a_schema_that_is_not_a_class_or_not_an_object_is_refused() -> None:
    with pytest.raises(UsageError, match="needs a class"):
        shape_of(Point(1, 2))
    with pytest.raises(UsageError, match="must be a JSON object"):
        shape_of(int)


# -- the loop, with a scripted provider (the HTTP fakes are in test_tools_dialogue) -----


class Scripted:
    """Answers with the calls it is given for a user message, and with the results it
    got for a tool message."""

    name = "openai"

    def __init__(self, *rounds: list[ToolCallPart]) -> None:
        self.rounds = list(rounds)
        self.requests: list[ChatRequest] = []

    def stream(self, request: ChatRequest) -> Iterator[ProviderEvent]:
        self.requests.append(request)
        if self.rounds:
            yield from self.rounds.pop(0)
            yield Finish("tool_calls")
            return
        results = request.messages[-1]["content"]
        assert not isinstance(results, str)
        yield "done: " + ", ".join(p.content for p in results if isinstance(p, ToolResultPart))
        yield Finish("stop")


def conversation(provider: Scripted) -> Conversation:
    convo = Conversation(model="openai:scripted")
    convo._providers[("openai:scripted", None)] = provider  # type: ignore[assignment]
    return convo


def test_the_step_limit_stops_the_loop_and_every_call_keeps_a_result() -> None:
    provider = Scripted(*[[call("add", {"a": i, "b": 1}, f"c{i}")] for i in range(5)])
    convo = conversation(provider)
    box, _ = box_of(add=add)
    box.max_steps = 2
    notices: list[str] = []
    from nbconvo._stream import StreamSink

    turn = convo.ask(
        "go", options=TurnOptions(tools=box), sink=StreamSink(on_notice=notices.append)
    )
    assert len(provider.requests) == 3  # two rounds ran, the third's calls did not
    results = [p for p in turn.answer_parts if isinstance(p, ToolResultPart)]
    assert [r.content for r in results] == [
        "1",
        "2",
        "not run: the turn reached its limit of 2 tool steps",
    ]
    assert notices == [
        "stopped after 2 tool steps: the model's last calls were not run (raise the limit "
        "with --max-steps N, or ask it to go on)"
    ]
    roles = [m["role"] for m in convo.messages()]
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "assistant", "tool"]
    assert turn.status == "ok"


def test_an_interrupt_during_a_tool_keeps_a_consistent_turn() -> None:
    def slow(a: int) -> int:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the tool runs
        time.sleep(5)
        return a

    provider = Scripted([call("slow", {"a": 1}, "c1"), call("add", {"a": 1, "b": 2}, "c2")])
    convo = conversation(provider)
    box, _ = box_of(slow=slow, add=add)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(TurnInterrupted, match="partial answer is kept"):
            convo.ask("go", options=TurnOptions(tools=box))
    finally:
        signal.signal(signal.SIGINT, previous)
    (turn,) = convo.turns
    assert turn.status == "interrupted"
    results = [p for p in turn.answer_parts if isinstance(p, ToolResultPart)]
    assert [(r.call_id, r.content) for r in results] == [
        ("c1", "interrupted by the user"),
        ("c2", "interrupted by the user"),
    ]
    # The next turn sends a history every provider accepts: each call has its result.
    later = convo.request("and now?")
    assert [m["role"] for m in later.messages] == ["user", "assistant", "tool", "user"]


def test_calls_when_no_tools_were_offered_are_answered_not_run() -> None:
    provider = Scripted([call("add", {"a": 1, "b": 2})])
    convo = conversation(provider)
    turn = convo.ask("go")
    assert len(provider.requests) == 1
    (result,) = [p for p in turn.answer_parts if isinstance(p, ToolResultPart)]
    assert result.content == "not run: no tools were offered"


def test_a_tool_turn_is_history_for_the_next_and_counted_by_the_meter() -> None:
    provider = Scripted([call("triple", {"values": list(range(200))})])
    convo = conversation(provider)
    box, _ = box_of(triple=triple)
    turn = convo.ask("go", options=TurnOptions(tools=box))
    assert turn.answer.startswith("done: [0, 3, 6")
    assert isinstance(turn.answer_parts[-1], TextPart)
    plain = Conversation(model="openai:scripted")
    plain.tree.append(
        type(turn)(
            id=1, parent=None, prompt="go", answer=turn.answer, provider="openai", model="scripted"
        )
    )
    # The calls and the results count: the tool turn weighs more than its text alone.
    assert convo.meter.used > plain.meter.used + 300
    request = convo.request("next")
    assert [m["role"] for m in request.messages] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]


def test_ask_takes_functions_as_tools_from_python() -> None:
    provider = Scripted([call("add", {"a": 2, "b": 3})])
    convo = conversation(provider)
    turn = convo.ask("go", tools=[add], approve="all")
    assert turn.answer == "done: 5"
    assert [t.name for t in provider.requests[0].tools] == ["add"]
    denied = conversation(Scripted([call("add", {"a": 2, "b": 3})]))
    import builtins

    original = builtins.input
    builtins.input = lambda question: "n"  # type: ignore[assignment]
    try:
        turn = denied.ask("go", tools=[add])
    finally:
        builtins.input = original
    assert turn.answer == "done: the user did not allow add(a=2, b=3)"
