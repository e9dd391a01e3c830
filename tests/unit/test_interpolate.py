"""Placeholder filling: only ``{name...}`` of defined names changes, nothing is ever called."""

from __future__ import annotations

import collections
import json
import re
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from nbconvo._interpolate import interpolate, placeholders

# --- text that must pass through byte for byte ---------------------------------------------

NAMES: dict[str, object] = {"x": 1, "y": [1, 2], "a": "A", "b": "B", "key": "K", "name": "N"}

VERBATIM = [
    '{"a": 1}',
    '{"a": {"b": {"c": [1, 2, {"d": null}]}}}',
    '{\n  "name": {\n    "key": "x"\n  }\n}',
    "def f(): return {x: 1 for x in y}",
    "squares = {x * x for x in y}",
    "pairs = {a: b for a, b in zip(x, y)}",
    "s = {1, 2, 3}",
    'print(f"{x + 1} and {x!r} and {x:>10} and {y[0] * 2}")',
    "d = {}",
    "{}",
    "{ x }",
    "{{ x }}",
    "{% for a in b %}{{ a }}{% endfor %}",
    "{x.}",
    "{x[}",
    "{x[0}",
    "{x()}",
    "{x.y()}",
    "{x[a]}",
    "{x[1:2]}",
    "{0}",
    "{1x}",
    "{x y}",
    "{-x}",
    "fn main() { let x = 1; }",
    "\\begin{align}",
    "}{",
]


@pytest.mark.parametrize("text", VERBATIM)
def test_non_placeholder_braces_pass_through(text: str) -> None:
    assert interpolate(text, NAMES) == text


def test_nested_json_with_defined_names_as_keys_is_unchanged() -> None:
    doc = {"x": {"y": [1, {"name": "key"}]}, "a": {"b": {}}}
    text = json.dumps(doc, indent=2)
    assert interpolate(text, NAMES) == text
    assert json.dumps(doc) == interpolate(json.dumps(doc), NAMES)


def test_python_code_block_is_unchanged() -> None:
    code = (
        "def build(y):\n"
        "    table = {x: x ** 2 for x in y}\n"
        "    seen = {x for x in y if x}\n"
        '    return f"{len(table)} items: {table!r}", {**table}\n'
    )
    assert interpolate(code, NAMES) == code


# --- placeholders ----------------------------------------------------------------------------


class Config:
    def __init__(self) -> None:
        self.items = [{"x": "deep"}, {"x": "other"}]
        self.title = "Report"


def test_simple_name() -> None:
    assert interpolate("Hello {name}!", {"name": "Ada"}) == "Hello Ada!"


def test_value_is_str_of_value() -> None:
    assert interpolate("{n} {xs} {none}", {"n": 3, "xs": [1, "a"], "none": None}) == (
        "3 [1, 'a'] None"
    )


def test_attribute_index_and_key_chains() -> None:
    ns: dict[str, object] = {
        "cfg": Config(),
        "d": {"k": {"inner": [10, 20, 30]}, 7: "seven"},
        "t": ("a", "b"),
        "s": "word",
    }
    assert interpolate('{cfg.items[0]["x"]}', ns) == "deep"
    assert interpolate("{cfg.items[1]['x']}", ns) == "other"
    assert interpolate("{cfg.title}", ns) == "Report"
    assert interpolate('{d["k"]["inner"][-1]}', ns) == "30"
    assert interpolate("{d[7]}", ns) == "seven"
    assert interpolate("{t[1]} {s[0]}", ns) == "b w"


def test_placeholder_inside_json_is_filled() -> None:
    assert interpolate('{"user": "{name}"}', {"name": "Ada"}) == '{"user": "Ada"}'


def test_unicode_identifier() -> None:
    assert interpolate("{größe}", {"größe": 3}) == "3"


@pytest.mark.parametrize(
    "text",
    [
        "{missing}",
        "{cfg.nope}",
        "{cfg.items[5]}",
        '{cfg.items[0]["nope"]}',
        "{cfg.items[0][0]}",
        "{d['k']}",
        "{d[2]}",
        "{s[10]}",
        "{s['k']}",
        "{n.real}",
        "{cfg.__class__}",
        "{cfg.__dict__}",
        "{cfg.__init__}",
        "{len}",
        "{print}",
    ],
)
def test_failed_or_refused_lookup_is_left_as_written(text: str) -> None:
    ns: dict[str, object] = {"cfg": Config(), "d": {1: "one"}, "s": "abc", "n": 5}
    assert interpolate(text, ns) == text


def test_dict_key_types_must_match_exactly() -> None:
    # d[1] must not find the key True, and d["1"] must not find the key 1.
    assert interpolate("{d[1]}", {"d": {True: "yes"}}) == "{d[1]}"
    assert interpolate('{d["1"]}', {"d": {1: "one"}}) == '{d["1"]}'


def test_unset_slot_and_set_slot() -> None:
    class Slotted:
        __slots__ = ("a", "b")

        def __init__(self) -> None:
            self.a = "set"

    ns: dict[str, object] = {"o": Slotted()}
    assert interpolate("{o.a} {o.b}", ns) == "set {o.b}"


def test_namedtuple_fields_are_readable() -> None:
    Point = collections.namedtuple("Point", "x y")
    assert interpolate("{p.x},{p.y}", {"p": Point(1, 2)}) == "1,2"


def test_class_attributes_and_module_attributes() -> None:
    class Settings:
        LIMIT = 10

    assert interpolate("{S.LIMIT} {s.LIMIT}", {"S": Settings, "s": Settings()}) == "10 10"
    assert interpolate("{re.I}", {"re": re}) == str(re.I)


# --- nothing is ever called -------------------------------------------------------------------


class Spy:
    calls = 0

    @property
    def prop(self) -> str:
        Spy.calls += 1
        raise RuntimeError("a property must never run")

    def method(self) -> str:
        Spy.calls += 1
        return "called"

    @classmethod
    def cmethod(cls) -> str:
        Spy.calls += 1
        return "called"

    def __getattr__(self, name: str) -> Any:
        Spy.calls += 1
        return "dynamic"

    def __getattribute__(self, name: str) -> Any:
        Spy.calls += 1
        return object.__getattribute__(self, name)


class Items(dict[str, str]):
    calls = 0

    def __getitem__(self, key: str) -> str:
        Items.calls += 1
        return "custom"

    def items(self) -> Any:
        Items.calls += 1
        return super().items()


class Seq(list[int]):
    calls = 0

    def __getitem__(self, index: Any) -> Any:
        Seq.calls += 1
        return 99


@pytest.fixture(autouse=True)
def _reset_counters() -> None:
    Spy.calls = Items.calls = Seq.calls = 0


@pytest.mark.parametrize(
    "text", ["{o.prop}", "{o.method}", "{o.cmethod}", "{o.dynamic}", "{o.prop.x}"]
)
def test_descriptors_and_getattr_hooks_are_never_run(text: str) -> None:
    spy = object.__new__(Spy)
    assert Spy.calls == 0
    assert interpolate(text, {"o": spy}) == text
    assert Spy.calls == 0


def test_custom_getitem_is_never_called() -> None:
    ns: dict[str, object] = {"m": Items(k="v"), "l": Seq([1, 2])}
    assert interpolate('{m["k"]} {l[0]}', ns) == '{m["k"]} {l[0]}'
    assert Items.calls == 0
    assert Seq.calls == 0


def test_dict_lookup_never_compares_with_foreign_keys() -> None:
    class Sneaky:
        calls = 0

        def __hash__(self) -> int:
            return hash("k")

        def __eq__(self, other: object) -> bool:
            Sneaky.calls += 1
            return False

    ns: dict[str, object] = {"d": {Sneaky(): "bad", "k": "good"}}
    Sneaky.calls = 0  # building the dict compared the two keys once
    assert interpolate('{d["k"]}', ns) == "good"
    assert Sneaky.calls == 0


def test_property_on_metaclass_is_not_run() -> None:
    calls = []

    class Meta(type):
        @property
        def info(cls) -> str:
            calls.append(1)
            return "ran"

    class WithMeta(metaclass=Meta):
        pass

    assert interpolate("{K.info}", {"K": WithMeta}) == "{K.info}"
    assert calls == []


def test_callable_value_is_str_ed_not_called() -> None:
    calls = []

    def f() -> str:
        calls.append(1)
        return "called"

    assert interpolate("{f}", {"f": f}) == str(f)
    assert calls == []


def test_str_is_the_only_user_code_and_its_failure_is_named_not_raised() -> None:
    class Loud:
        def __str__(self) -> str:
            return "loud"

    class Broken:
        def __str__(self) -> str:
            raise ValueError("boom")

    assert interpolate("{v}", {"v": Loud()}) == "loud"
    assert interpolate("see {v}", {"v": Broken()}) == (
        "see <Broken object: its __str__ raised ValueError>"
    )


# --- escapes -------------------------------------------------------------------------------


def test_double_braces_around_a_placeholder_escape_it() -> None:
    ns = {"name": "Ada"}
    assert interpolate("Use {{name}} in templates", ns) == "Use {name} in templates"
    assert interpolate('{{cfg.items[0]["x"]}}', {}) == '{cfg.items[0]["x"]}'
    assert interpolate("{{name}} is {name}", ns) == "{name} is Ada"


def test_other_double_braces_are_left_alone() -> None:
    for text in ["{{ name }}", '{"a": {"b": 1}}', "{{}}", "{{name", "name}}", "{{1}}"]:
        assert interpolate(text, {"name": "Ada"}) == text


def test_unbalanced_double_braces_keep_the_inner_placeholder() -> None:
    assert interpolate("{{name}", {"name": "Ada"}) == "{Ada"
    assert interpolate("{name}}", {"name": "Ada"}) == "Ada}"


# --- placeholders() --------------------------------------------------------------------------


def test_placeholders_lists_expressions_once_in_order() -> None:
    text = 'Hi {name}, see {cfg.items[0]["x"]} and {name}; not {{esc}}, { x }, {"a": 1}, {}'
    assert placeholders(text) == ["name", 'cfg.items[0]["x"]']


def test_placeholders_of_code_is_empty() -> None:
    assert placeholders("def f(): return {x: 1 for x in y}") == []


# --- properties ------------------------------------------------------------------------------

# Written independently of the module: ``{{`` + identifier + trailers + ``}}``.
TEST_EXPR = r"""[^\W\d]\w*(?:\.[^\W\d]\w*|\[(?:-?[0-9]{1,18}|"[^"\\\r\n{}]*"|'[^'\\\r\n{}]*')\])*"""
ESCAPE = re.compile(r"\{\{(" + TEST_EXPR + r")\}\}")
HEAD = re.compile(r"[^\W\d]\w*")

messy_text = st.text(
    alphabet=st.sampled_from(list("{}[]().'\"_:-0123456789 \nabxyzé\\")), max_size=80
) | st.text(max_size=80)


def uses_defined_name(text: str, namespace: dict[str, object]) -> bool:
    return any(HEAD.match(expr).group() in namespace for expr in placeholders(text))  # type: ignore[union-attr]


@given(messy_text)
@settings(max_examples=400)
def test_text_without_escapes_is_unchanged_when_nothing_is_defined(text: str) -> None:
    assume(not ESCAPE.search(text))
    assert interpolate(text, {}) == text


@given(messy_text)
@settings(max_examples=400)
def test_with_nothing_defined_only_escapes_change(text: str) -> None:
    assert interpolate(text, {}) == ESCAPE.sub(r"{\1}", text)


@given(messy_text)
@settings(max_examples=400)
def test_text_without_defined_placeholders_is_unchanged(text: str) -> None:
    namespace: dict[str, object] = {"x": 1, "ab": [1, 2], "z": {"a": "b"}}
    assume(not ESCAPE.search(text) and not uses_defined_name(text, namespace))
    assert interpolate(text, namespace) == text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["x", "name", "a", "key"]) | st.text(max_size=5), inner, max_size=4
        )
    ),
    max_leaves=20,
)


@given(json_values, st.booleans())
def test_pasted_json_is_unchanged_even_with_defined_names(value: object, pretty: bool) -> None:
    text = json.dumps(value, indent=2 if pretty else None, ensure_ascii=False)
    # Only a string value that itself spells a placeholder or an escape may change.
    assume(not ESCAPE.search(text) and not uses_defined_name(text, NAMES))
    assert interpolate(text, NAMES) == text
