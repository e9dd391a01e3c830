"""Notebook values rendered for a model (issue #16): each kind within its token budget,
saying what was left out, never raising, never running user code beyond a plain
object's own ``__str__``."""

from __future__ import annotations

import datetime
import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import polars as pl
import pytest

from nbconvo._tokens import count_text
from nbconvo._values import DEFAULT_VALUE_TOKENS, Rendered, render_value


class Spy:
    """A value whose text must never be asked for."""

    calls: ClassVar[list[str]] = []

    def __str__(self) -> str:
        Spy.calls.append("str")
        return "spy"

    def __repr__(self) -> str:
        Spy.calls.append("repr")
        return "Spy()"


class Raises:
    def __str__(self) -> str:
        raise RuntimeError("no text")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def sales(rows: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "region": rng.choice(["north", "south", "east", "west"], rows),
            "units": rng.integers(0, 500, rows),
            "price": rng.normal(20, 4, rows).round(2),
            "day": pd.date_range("2026-01-01", periods=rows, freq="h"),
        }
    )
    frame.loc[frame.index % 10 == 3, "price"] = np.nan
    return frame


def fits(rendered: Rendered, budget: int) -> bool:
    return count_text(rendered.text) <= budget


# -- DataFrames ------------------------------------------------------------------------


def test_a_pandas_frame_shows_shape_columns_nulls_and_both_ends() -> None:
    df = sales(1_000)
    r = render_value("df", df)
    assert r.block and fits(r, DEFAULT_VALUE_TOKENS)
    assert r.text.startswith("`df`: pandas DataFrame, 1,000 rows × 4 columns")
    assert "| price | float64 | 100 |" in r.text  # the null count, read by pandas
    assert "| region | " in r.text and "| day | datetime64" in r.text
    assert "First rows:" in r.text and "Last rows:" in r.text
    assert "| 999 | " in r.text  # the last row's index
    assert r.left_out == "rows 6–995" and r.text.endswith("Left out: rows 6–995.")
    assert r.summary == "pandas DataFrame, 1,000 × 4"
    assert r.note("df") == f"df: pandas DataFrame, 1,000 × 4 → {count_text(r.text):,} tokens (rows 6–995 left out)"


def test_a_small_frame_is_shown_whole() -> None:
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    r = render_value("df", df)
    assert r.left_out is None and "Left out" not in r.text
    assert "Rows:\n\n|  | a | b |\n|---|---|---|\n| 0 | 1 | x |\n| 1 | 2 | y |" in r.text


@pytest.mark.parametrize("budget", [100, 300, 1500])
def test_a_wide_frame_stays_within_each_budget(budget: int) -> None:
    wide = pd.DataFrame(np.arange(50 * 200, dtype=float).reshape(50, 200))
    r = render_value("wide", wide, budget)
    assert fits(r, budget), count_text(r.text)
    assert r.left_out  # something had to go, and it says what
    assert "wide" in r.text


def test_table_cells_never_run_user_code_and_are_escaped() -> None:
    Spy.calls.clear()
    df = pd.DataFrame({"obj": [Spy(), Raises()], "text": ["a|b", "line\nbreak"]})
    r = render_value("df", df)
    assert Spy.calls == []
    assert "<Spy>" in r.text and "<Raises>" in r.text
    assert "a\\|b" in r.text and "line break" in r.text


def test_a_polars_frame() -> None:
    df = pl.from_dict({"id": list(range(100)), "score": [None if i % 7 == 0 else i / 3 for i in range(100)]})
    r = render_value("pf", df)
    assert r.text.startswith("`pf`: polars DataFrame, 100 rows × 2 columns")
    assert "| score | Float64 | 15 |" in r.text
    assert r.left_out == "rows 6–95" and fits(r, DEFAULT_VALUE_TOKENS)


def test_an_empty_frame() -> None:
    r = render_value("e", pd.DataFrame())
    assert r.text.startswith("`e`: pandas DataFrame, 0 rows × 0 columns") and r.left_out is None


# -- Series and arrays ---------------------------------------------------------------------


def test_a_numeric_series_has_statistics_and_its_ends() -> None:
    s = pd.Series(np.arange(10_000, dtype=float), name="load")
    s.iloc[5] = np.nan
    r = render_value("s", s)
    assert "pandas Series 'load', 10,000 values, dtype float64, 1 nulls" in r.text
    assert "min 0, max 9999, mean 5000" in r.text
    assert "First values: 0, 1, 2, 3, 4, nan, 6, 7, 8, 9" in r.text
    assert r.left_out == "values 11–9,990"


def test_a_polars_series_of_text() -> None:
    r = render_value("names", pl.Series("names", ["ada", "grace", None]))
    assert "polars Series 'names', 3 values, dtype String, 1 nulls" in r.text
    assert "Values: ada, grace, None" in r.text and r.left_out is None


def test_an_array_has_shape_dtype_statistics_and_numpys_own_summary() -> None:
    a = np.linspace(0, 1, 1_000_000).reshape(1000, 1000)
    r = render_value("a", a)
    assert r.text.startswith("`a`: NumPy array, shape 1,000 × 1,000, dtype float64")
    assert "min 0, max 1, mean 0.5" in r.text and "..." in r.text
    assert r.left_out and fits(r, DEFAULT_VALUE_TOKENS)


def test_arrays_that_are_empty_all_nan_or_objects() -> None:
    assert "shape 0" in render_value("z", np.array([])).text
    assert "all values are NaN" in render_value("n", np.full(4, np.nan)).text
    Spy.calls.clear()
    r = render_value("o", np.array([Spy(), Spy(), Spy(), Spy(), Spy()], dtype=object))
    assert Spy.calls == [] and "[<Spy>, <Spy>, <Spy>, … (2 more)]" in r.text


# -- Python's own values -------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "Ada",
        42,
        3.5,
        None,
        [1, "two", 3.0, None, True],
        (1,),
        {"a": [1, 2, {"b": "x"}], "t": (1, 2), "s": set(), "f": frozenset({1})},
        datetime.date(2026, 11, 29),
    ],
)
def test_small_values_read_as_python_writes_them(value: Any) -> None:
    r = render_value("v", value)
    assert r.text == str(value) and not r.block and r.left_out is None


def test_a_huge_string_is_cut_with_a_note_and_never_counted_whole() -> None:
    text = "All work and no play. " * 500_000  # 11 MB
    counted: list[int] = []

    def count(piece: str) -> int:
        counted.append(len(piece))
        return count_text(piece)

    r = render_value("text", text, count=count)
    assert max(counted) < 10_000  # only what may be sent is ever tokenized
    assert fits(r, DEFAULT_VALUE_TOKENS) and r.text.startswith("All work and no play.")
    assert r.left_out is not None and r.left_out.endswith("of 11,000,000 characters")
    assert r.text.endswith(f"[… `text` cut here: {r.left_out} left out]")


class Counted:
    calls = 0

    def __repr__(self) -> str:
        Counted.calls += 1
        return "Counted()"


def test_a_huge_list_is_written_only_as_far_as_its_budget() -> None:
    r = render_value("ids", list(range(10_000_000)))
    assert r.text.startswith("[0, 1, 2, 3") and fits(r, DEFAULT_VALUE_TOKENS)
    assert r.left_out is not None and r.left_out.endswith(" items")
    assert r.summary == "list of 10,000,000 items"
    Counted.calls = 0
    objects = render_value("objs", [Counted() for _ in range(1_000_000)])
    assert Counted.calls < 2_000  # the items past the budget are never asked for their text
    assert objects.left_out is not None and fits(objects, DEFAULT_VALUE_TOKENS)


def test_deeply_nested_and_self_referencing_containers() -> None:
    nested: dict[str, Any] = {}
    node = nested
    for i in range(5_000):
        node["next"] = {"depth": i}
        node = node["next"]
    r = render_value("tree", nested)
    assert fits(r, DEFAULT_VALUE_TOKENS) and r.left_out
    loop: list[Any] = [1]
    loop.append(loop)
    assert render_value("loop", loop).text == "[1, [...]]" == repr(loop)


def test_objects_whose_str_or_repr_raises_are_named_not_raised() -> None:
    assert render_value("x", Raises()).text == "<Raises object: its __str__ raised RuntimeError>"
    assert render_value("xs", [Raises()]).text == "[<Raises object: its __repr__ raised RuntimeError>]"


def test_an_object_with_a_huge_str_is_cut() -> None:
    class Chatty:
        def __str__(self) -> str:
            return "blah " * 100_000

    r = render_value("c", Chatty())
    assert fits(r, DEFAULT_VALUE_TOKENS) and r.summary == "Chatty" and r.left_out


def test_repr_markdown_is_preferred_for_other_objects() -> None:
    class Report:
        def _repr_markdown_(self) -> str:
            return "**sales are up**"

        def __str__(self) -> str:
            return "plain"

    assert render_value("r", Report()).text == "**sales are up**"


def test_a_value_spoofing_a_library_module_is_not_trusted() -> None:
    class Fake:
        __module__ = "pandas.core.frame"

        def __str__(self) -> str:
            return "fake"

    Fake.__name__ = "DataFrame"
    assert render_value("f", Fake()).text == "fake"


def test_floats_in_tables_have_six_significant_digits() -> None:
    r = render_value("df", pd.DataFrame({"x": [math.pi, 1e-12]}))
    assert "| 0 | 3.14159 |" in r.text and "| 1 | 1e-12 |" in r.text


def test_a_short_table_is_shown_whole_when_its_budget_allows() -> None:
    df = pd.DataFrame({"month": range(1, 25), "units": range(100, 124)})
    whole = render_value("df", df)
    assert whole.left_out is None and "Rows:" in whole.text and "| 23 | 24 | 123 |" in whole.text
    ends = render_value("df", df, 150)
    assert ends.left_out is not None and "rows" in ends.left_out and fits(ends, 150)
