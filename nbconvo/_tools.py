"""Tools and structured answers: notebook functions the model may call, and the types an
answer must match, described to the model by JSON schema.

A function's schema comes from its signature (names, defaults, type hints: ``Literal``,
``Enum``, dataclasses, pydantic models, ``list[...]``, ``Optional``) and its docstring
(Google, NumPy or reST parameter descriptions), through pydantic and docstring-parser.
The same pydantic model checks the arguments the model writes before the function runs,
so the function receives the types its hints name (an ``Enum`` member, a dataclass).

Pure values and rules: running the functions, asking the user and timing them out is
the engine's (``_toolloop``).
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from nbconvo._errors import UsageError
from nbconvo._parts import ToolCallPart
from nbconvo._types import ResponseSchema, ToolSpec

F = TypeVar("F", bound=Callable[..., Any])
MARK = "__nbconvo_tool__"  # set on a function by @nbconvo.tool
_SKIP = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


class ToolInputError(ValueError):
    """The model's arguments are not JSON, or do not match the function's parameters."""


def tool(func: F | None = None, *, name: str | None = None) -> Any:
    """Mark a notebook function as a tool every turn may offer the model: ``@nbconvo.tool``
    or ``@nbconvo.tool(name="lookup")``. Its schema is built (and checked) now, so a
    parameter a model cannot write fails at the definition."""

    def mark(f: F) -> F:
        if not callable(f):
            raise UsageError(f"@nbconvo.tool goes on a function, not {type(f).__name__}")
        describe(f, name=name)  # fails here, in the cell that defines it
        setattr(f, MARK, name or f.__name__)
        return f

    return mark(func) if func is not None else mark


def is_tool(value: Any) -> bool:
    return callable(value) and isinstance(getattr(value, MARK, None), str)


@dataclass(frozen=True)
class Tool:
    """A function offered to the model: its spec, and the model that checks arguments."""

    name: str
    func: Callable[..., Any] = field(repr=False, compare=False)
    spec: ToolSpec
    _arguments: Any = field(repr=False, compare=False)  # a pydantic model class, or None
    _positional: tuple[str, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def recorded(cls, spec: ToolSpec) -> Tool:
        """A tool known only by the spec a cassette recorded (its function is not in this
        kernel): a replay can offer it; running it says the function is missing."""

        def missing(*args: Any, **kwargs: Any) -> Any:
            raise NameError(f"{spec.name} is not defined in this kernel")

        return cls(spec.name, missing, spec, None)

    def arguments(self, text: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The call's positional and keyword arguments from the model's JSON text;
        ``ToolInputError`` (one line naming the argument) when they do not fit."""
        from pydantic import ValidationError

        try:
            data = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as error:
            raise ToolInputError(f"the arguments are not JSON ({error.msg})") from None
        if not isinstance(data, dict):
            raise ToolInputError(f"the arguments are a {type(data).__name__}, not a JSON object")
        if self._arguments is None:
            return (), data
        try:
            checked = self._arguments.model_validate(data)
        except ValidationError as error:
            raise ToolInputError(first_error(error)) from None
        values = {name: getattr(checked, name) for name in type(checked).model_fields}
        given = checked.model_fields_set | {
            n for n, f in type(checked).model_fields.items() if f.is_required()
        }
        args = tuple(values[n] for n in self._positional)
        kwargs = {n: v for n, v in values.items() if n not in self._positional and n in given}
        return args, kwargs


def first_error(error: Any) -> str:
    """pydantic's first complaint, as "argument 'a': Input should be a valid integer"."""
    details = error.errors()
    if not details:
        return str(error).splitlines()[0]
    first = details[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return (f"'{where}': " if where else "") + f"{first.get('msg', 'invalid')}{more}"


def describe(func: Callable[..., Any], *, name: str | None = None) -> Tool:
    """The tool a function makes; ``UsageError`` in one line when a parameter has a type
    a model cannot write as JSON, or the function has no usable signature."""
    from pydantic import ConfigDict, Field, create_model

    label = name or getattr(func, "__name__", None) or type(func).__name__
    if not label.isidentifier():
        raise UsageError(f"a tool's name must be a Python identifier, not {label!r}")
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        raise UsageError(f"tool {label}: its signature cannot be read; wrap it in a def") from None
    try:
        hints = typing.get_type_hints(func)
    except Exception:
        hints = {}
    doc = _docstring(func)
    fields: dict[str, Any] = {}
    positional: list[str] = []
    for pname, param in signature.parameters.items():
        if param.kind in _SKIP:
            continue
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            positional.append(pname)
        annotation = hints.get(pname, param.annotation)
        if annotation is inspect.Parameter.empty or isinstance(annotation, str):
            annotation = Any  # none, or a name that cannot be resolved here
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[pname] = (annotation, Field(default, description=doc.params.get(pname)))
    try:
        model = create_model(
            f"{label}_arguments", __config__=ConfigDict(arbitrary_types_allowed=False), **fields
        )
        schema = model.model_json_schema()
    except Exception as error:
        raise UsageError(
            f"tool {label}: {_culprit(fields) or _why(error)}: give its parameters JSON types "
            "(str, int, float, bool, list[...], Literal, Enum, a dataclass or a pydantic model)"
        ) from None
    spec = ToolSpec(label, doc.summary or f"The notebook function {label}.", tidy(schema))
    return Tool(label, func, spec, model, tuple(positional))


def _culprit(fields: dict[str, Any]) -> str:
    """Which parameter's type pydantic cannot describe, in words."""
    from pydantic import TypeAdapter

    for pname, (annotation, _) in fields.items():
        try:
            TypeAdapter(annotation).json_schema()
        except Exception:
            kind = getattr(annotation, "__name__", None) or str(annotation)
            return f"parameter {pname!r} is a {kind}, which a model cannot write as JSON"
    return ""


def _why(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text.split(" For further information")[0][:200]


@dataclass(frozen=True)
class _Doc:
    summary: str
    params: dict[str, str]


def _docstring(func: Callable[..., Any]) -> _Doc:
    text = inspect.getdoc(func) or ""
    if not text:
        return _Doc("", {})
    try:
        import docstring_parser

        parsed = docstring_parser.parse(text)
    except Exception:
        return _Doc(text.strip(), {})
    summary = "\n\n".join(
        p for p in (parsed.short_description, parsed.long_description) if p
    ).strip()
    params = {p.arg_name: p.description.strip() for p in parsed.params if p.description}
    return _Doc(summary, params)


def tidy(schema: dict[str, Any]) -> dict[str, Any]:
    """A self-contained schema: ``$ref``s replaced by their definitions (a recursive type
    keeps its ``$defs``), and pydantic's generated titles left out (they repeat names)."""
    defs: dict[str, Any] = schema.get("$defs", {})
    recursive: set[str] = set()

    def walk(node: Any, seen: tuple[str, ...], in_properties: bool = False) -> Any:
        if isinstance(node, list):
            return [walk(v, seen) for v in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            key = ref.removeprefix("#/$defs/")
            if key in seen or key not in defs:
                recursive.add(key)
                return node
            inlined = walk(defs[key], (*seen, key))
            rest = {k: walk(v, seen) for k, v in node.items() if k != "$ref"}
            return {**inlined, **rest}
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$defs" or (key == "title" and not in_properties and isinstance(value, str)):
                continue
            out[key] = walk(value, seen, in_properties=key == "properties")
        return out

    result: dict[str, Any] = walk(schema, ())
    if recursive:
        result["$defs"] = {k: walk(defs[k], (k,)) for k in sorted(recursive)}
    if result.get("type") == "object" and "properties" not in result:
        result["properties"] = {}
    return result


# -- structured answers -----------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """The type a structured answer must match, and how to check an answer against it."""

    name: str
    target: Any = field(repr=False, compare=False)
    schema: ResponseSchema

    def validate(self, text: str) -> Any:
        """The answer as the type; ``ToolInputError`` (one line naming the field) if not."""
        from pydantic import TypeAdapter, ValidationError

        try:
            return TypeAdapter(self.target).validate_json(_json_only(text))
        except ValidationError as error:
            raise ToolInputError(first_error(error)) from None


def _json_only(text: str) -> str:
    """The JSON of an answer a model wrapped in a code fence anyway."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        stripped = stripped.rsplit("```", 1)[0]
    return stripped


def shape_of(target: Any) -> Shape:
    """The structured-answer shape of a pydantic model, dataclass or TypedDict (or any
    type pydantic can describe); ``UsageError`` in one line otherwise."""
    from pydantic import TypeAdapter

    name = getattr(target, "__name__", None) or type(target).__name__
    if not isinstance(target, type) and typing.get_origin(target) is None:
        raise UsageError(
            f"--schema needs a class (a pydantic model, dataclass or TypedDict), not "
            f"{type(target).__name__}"
        )
    try:
        schema = TypeAdapter(target).json_schema()
    except Exception as error:
        raise UsageError(f"--schema {name}: {_why(error)}") from None
    tidied = tidy(schema)
    if tidied.get("type") != "object":
        raise UsageError(
            f"--schema {name}: the answer must be a JSON object; use a pydantic model, "
            "dataclass or TypedDict"
        )
    own = isinstance(target, type) and isinstance(vars(target).get("__doc__"), str)
    doc = _docstring(target).summary if own else ""  # not one a base class wrote
    if doc.startswith(f"{name}("):
        doc = ""  # a dataclass's generated docstring says nothing
    return Shape(name, target, ResponseSchema(name, tidied, doc))


def describe_call(call: ToolCallPart, limit: int = 200) -> str:
    """``add(a=2, b=3)``: the call as the user approves it and the output shows it."""
    try:
        data = json.loads(call.arguments) if call.arguments.strip() else {}
    except ValueError:
        data = None
    if isinstance(data, dict):
        inner = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in data.items())
    else:
        inner = call.arguments
    flat = " ".join(f"{call.name}({inner})".split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def tools_of(values: Iterable[Any]) -> list[Tool]:
    """Tools of functions (each once, by name; a later one with the same name wins)."""
    found: dict[str, Tool] = {}
    for value in values:
        if isinstance(value, Tool):
            found[value.name] = value
        else:
            marked = getattr(value, MARK, None)
            made = describe(value, name=marked if isinstance(marked, str) else None)
            found[made.name] = made
    return list(found.values())
