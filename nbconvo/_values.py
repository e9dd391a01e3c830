"""Notebook values rendered for a model, each within a token budget, saying what was
left out.

* pandas and polars DataFrames: shape; each column's name, dtype and null count; the
  first and last rows as Markdown tables. Series: length, dtype, nulls, summary
  statistics where numeric, first and last values.
* NumPy arrays: shape, dtype, summary statistics (NaN-aware) and NumPy's own summarized
  print of the values.
* strings, lists, tuples, sets and dicts: as Python writes them, cut where the budget
  ends, with a note of how much was left out. Nothing is converted to text before it
  is cut, so a list of ten million items costs no more than one of ten.
* anything else: its ``_repr_markdown_`` if its class defines one, else ``str``. A
  ``__str__`` that raises is named in the text; it never fails the turn.

Tables, series and arrays are *blocks*: they travel as a data part of the prompt,
frozen with the turn. Only the libraries' own code runs for them (shapes, dtypes, null
counts, head and tail, ``numpy.array2string``); a cell of a table that is not a known
scalar (a number, a string, a date, ...) shows its type's name, so no user ``__str__``
or ``__repr__`` runs. Lengths are estimated from tiktoken's count of the text.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import io
import linecache
import os
import re
import sys
import sysconfig
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nbconvo._errors import UsageError
from nbconvo._images import image_part, size_of
from nbconvo._parts import ImagePart
from nbconvo._tokens import count_text

DEFAULT_VALUE_TOKENS = 1500
FULL_VALUE_TOKENS = 100_000  # `{name!full}`: the window refuses what does not fit
_CELL_CHARS = 40  # one table cell at most
_ROWS = (5, 3, 2, 1, 0)  # rows shown at each end, tried in turn until the table fits
_MAX_COLUMNS = 30
_WHOLE_ROWS = 60  # a table this short is shown whole when its budget allows

Count = Callable[[str], int]


@dataclass(frozen=True)
class Rendered:
    """A value as the model reads it."""

    text: str
    summary: str  # a few words: "pandas DataFrame, 1,000 × 12"
    block: bool  # a table or an array: a data part of its own, not inline text
    left_out: str | None = None  # what the budget left out, in a few words

    def note(self, expression: str, count: Count = count_text) -> str:
        """The footer's line: "df: pandas DataFrame, 1,000 × 12 → 840 tokens"."""
        cut = f" ({self.left_out} left out)" if self.left_out else ""
        return f"{expression}: {self.summary} → {count(self.text):,} tokens{cut}"


def render_value(
    expression: str, value: object, budget: int = DEFAULT_VALUE_TOKENS, count: Count = count_text
) -> Rendered:
    """``value`` (found as ``{expression}``) as text of at most about ``budget`` tokens."""
    budget = max(budget, 50)
    for kind, render in _RENDERERS:
        if kind(value):
            return render(expression, value, budget, count)
    return _other(expression, value, budget, count)


# -- recognizing a library's types (never importing one: a value of it means it is loaded)


def _is(module: str, *names: str) -> Callable[[object], bool]:
    def check(value: object) -> bool:
        loaded = sys.modules.get(module)
        if loaded is None:
            return False
        classes = tuple(c for c in (getattr(loaded, n, None) for n in names) if isinstance(c, type))
        return bool(classes) and isinstance(value, classes)

    return check


_pandas_frame = _is("pandas", "DataFrame")
_pandas_series = _is("pandas", "Series")
_polars_frame = _is("polars", "DataFrame")
_polars_series = _is("polars", "Series")
_ndarray = _is("numpy", "ndarray")


# -- table cells -------------------------------------------------------------------------

_SCALARS = (str, int, float, bool, complex, decimal.Decimal, datetime.date, datetime.time,
            datetime.timedelta, bytes, type(None))  # fmt: skip


def _scalar_text(value: object) -> str | None:
    """A known scalar's text (its library's own code), else None."""
    if type(value) in _SCALARS or isinstance(value, datetime.date):
        return str(value)
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.generic):
        return str(value)
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(
        value, (pandas.Timestamp, pandas.Timedelta, pandas.Period)
    ):
        return str(value)
    if pandas is not None and value is pandas.NaT:
        return "NaT"
    return None


def _cell(value: object) -> str:
    numpy = sys.modules.get("numpy")
    if type(value) is float or (numpy is not None and isinstance(value, numpy.floating)):
        return f"{value:.6g}"  # six significant digits: a table, not a dump
    text = _scalar_text(value)
    if text is None:
        text = f"<{type(value).__name__}>"
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")
    return text if len(text) <= _CELL_CHARS else text[: _CELL_CHARS - 1] + "…"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


def _n(number: int) -> str:
    return f"{number:,}"


# -- DataFrames --------------------------------------------------------------------------


@dataclass
class _Frame:
    """What a DataFrame renderer needs, read once through the library's own API."""

    library: str
    rows: int
    columns: list[str]
    dtypes: list[str]
    nulls: list[int]
    head: Callable[[int, int], tuple[list[str], list[list[str]]]]  # (rows, columns) → table
    tail: Callable[[int, int], tuple[list[str], list[list[str]]]]


def _pandas_frame_facts(df: Any) -> _Frame:
    columns = [_cell(c) for c in df.columns]
    nulls = [int(n) for n in df.isna().sum().to_numpy()]

    def rows(part: Any, shown: int) -> tuple[list[str], list[list[str]]]:
        part = part.iloc[:, :shown]
        header = ["", *(_cell(c) for c in part.columns)]
        body = [[_cell(v) for v in row] for row in part.itertuples(name=None)]
        return header, body

    return _Frame(
        "pandas DataFrame",
        len(df),
        columns,
        [str(t) for t in df.dtypes],
        nulls,
        lambda n, shown: rows(df.head(n), shown),
        lambda n, shown: rows(df.tail(n), shown),
    )


def _polars_frame_facts(df: Any) -> _Frame:
    nulls = list(df.null_count().row(0)) if df.width else []

    def rows(part: Any, shown: int) -> tuple[list[str], list[list[str]]]:
        part = part.select(part.columns[:shown])
        return [_cell(c) for c in part.columns], [[_cell(v) for v in r] for r in part.rows()]

    return _Frame(
        "polars DataFrame",
        df.height,
        [_cell(c) for c in df.columns],
        [str(t) for t in df.dtypes],
        [int(n) for n in nulls],
        lambda n, shown: rows(df.head(n), shown),
        lambda n, shown: rows(df.tail(n), shown),
    )


def _frame(facts: _Frame, expression: str, budget: int, count: Count) -> Rendered:
    width = len(facts.columns)
    summary = f"{facts.library}, {_n(facts.rows)} × {_n(width)}"
    head = f"`{expression}`: {facts.library}, {_n(facts.rows)} rows × {_n(width)} columns"
    # (columns listed with dtype and nulls, columns shown in the rows), most first
    layouts = dict.fromkeys(
        (min(width, listed), min(width, shown))
        for listed, shown in ((_MAX_COLUMNS, 12), (12, 6), (6, 3), (3, 2))
    )
    best: Rendered | None = None
    # Rows say more than a long list of columns: fewer columns before fewer rows.
    whole = [(facts.rows,)] if 2 * _ROWS[0] < facts.rows <= _WHOLE_ROWS else []
    tiers: list[tuple[int, ...]] = [*whole, _ROWS[:3], _ROWS[3:]]  # short: whole if it fits
    tries = [(layout, n) for rows in tiers for layout in layouts for n in rows]
    for (listed, shown_columns), n in tries:
        rendered = _frame_layout(facts, head, summary, listed, shown_columns, n)
        if count(rendered.text) <= budget:
            return rendered
        if best is None or count(rendered.text) < count(best.text):
            best = rendered
    assert best is not None
    return _cut(best, expression, budget, count)


def _frame_layout(
    facts: _Frame, head: str, summary: str, listed: int, shown_columns: int, n: int
) -> Rendered:
    width = len(facts.columns)
    left: list[str] = []
    schema = _table(
        ["column", "dtype", "nulls"],
        [[facts.columns[i], _cell(facts.dtypes[i]), _n(facts.nulls[i])] for i in range(listed)],
    )
    pieces = [head, schema]
    if listed < width:
        kinds = collections.Counter(facts.dtypes[listed:]).most_common()
        dtypes = ", ".join(f"{_cell(kind)} ×{_n(k)}" for kind, k in kinds[:8])
        more = ", …" if len(kinds) > 8 else ""
        nulls = _n(sum(facts.nulls[listed:]))
        pieces.append(
            f"Columns {_n(listed + 1)}–{_n(width)}: {dtypes}{more}; {nulls} nulls in all."
        )
        left.append(f"the names of columns {_n(listed + 1)}–{_n(width)}")
    if n and facts.rows:
        ends = facts.rows > 2 * n
        first = facts.head(n if ends else facts.rows, shown_columns)
        pieces.append(("First rows:\n\n" if ends else "Rows:\n\n") + _table(*first))
        if ends:
            pieces.append("Last rows:\n\n" + _table(*facts.tail(n, shown_columns)))
            left.append(f"rows {_n(n + 1)}–{_n(facts.rows - n)}")
        if shown_columns < width:
            left.append(f"columns {_n(shown_columns + 1)}–{_n(width)} from the rows")
    elif facts.rows:
        left.append(f"all {_n(facts.rows)} rows")
    if left:
        pieces.append("Left out: " + "; ".join(left) + ".")
    return Rendered("\n\n".join(pieces), summary, True, "; ".join(left) or None)


# -- Series ------------------------------------------------------------------------------


def _numeric_summary(values: Any) -> str | None:
    """min, max, mean and std of a numeric NumPy array, NaN-aware; None if not numeric."""
    numpy = sys.modules["numpy"]
    if values.dtype.kind not in "biuf" or values.size == 0:
        return None
    data = values.astype("float64", copy=False)
    if numpy.isnan(data).all():
        return "all values are NaN"
    stats = (
        ("min", numpy.nanmin(data)),
        ("max", numpy.nanmax(data)),
        ("mean", numpy.nanmean(data)),
        ("std", numpy.nanstd(data)),
    )
    return ", ".join(f"{name} {value:.6g}" for name, value in stats)


def _series(expression: str, value: Any, budget: int, count: Count, library: str) -> Rendered:
    if library == "pandas":
        length, dtype, nulls = len(value), str(value.dtype), int(value.isna().sum())
        name = value.name
        numbers = value.to_numpy() if value.dtype.kind in "biuf" else None
        first: Callable[[int], list[object]] = lambda n: list(value.head(n))  # noqa: E731
        last: Callable[[int], list[object]] = lambda n: list(value.tail(n))  # noqa: E731
    else:
        length, dtype, nulls = value.len(), str(value.dtype), int(value.null_count())
        name = value.name
        numbers = value.to_numpy() if value.dtype.is_numeric() and not nulls else None
        first = lambda n: value.head(n).to_list()  # noqa: E731
        last = lambda n: value.tail(n).to_list()  # noqa: E731
    summary = f"{library} Series, {_n(length)} values"
    lines = [
        f"`{expression}`: {library} Series {_cell(name)!r}, {_n(length)} values, "
        f"dtype {dtype}, {_n(nulls)} nulls"
    ]
    stats = _numeric_summary(numbers) if numbers is not None else None
    if stats:
        lines.append(f"Summary: {stats}.")
    for n in (10, 5, 2, 0):
        shown = list(lines)
        left = None
        if n and length > 2 * n:
            shown.append("First values: " + ", ".join(_cell(v) for v in first(n)))
            shown.append("Last values: " + ", ".join(_cell(v) for v in last(n)))
            left = f"values {_n(n + 1)}–{_n(length - n)}"
        elif n:
            shown.append("Values: " + ", ".join(_cell(v) for v in first(length)))
        elif length:
            left = f"all {_n(length)} values"
        if left:
            shown.append(f"Left out: {left}.")
        text = "\n\n".join(shown)
        if count(text) <= budget:
            return Rendered(text, summary, True, left)
    return _cut(Rendered(text, summary, True, left), expression, budget, count)


# -- NumPy arrays ------------------------------------------------------------------------


def _array(expression: str, value: Any, budget: int, count: Count) -> Rendered:
    numpy = sys.modules["numpy"]
    shape = " × ".join(_n(d) for d in value.shape) or "scalar"
    summary = f"NumPy array {shape}, {value.dtype}"
    lines = [f"`{expression}`: NumPy array, shape {shape}, dtype {value.dtype}"]
    stats = _numeric_summary(value)
    if stats:
        lines.append(f"Summary: {stats}.")
    text = ""
    for edge in (3, 2, 1):
        if value.dtype.kind in "OV":  # objects: their type names only (no user repr)
            flat = value.reshape(-1)
            cells = [_cell(v) for v in flat[:edge]]
            more = f", … ({_n(flat.size - edge)} more)" if flat.size > edge else ""
            sample = "[" + ", ".join(cells) + more + "]"
        else:
            sample = numpy.array2string(
                value, threshold=2 * edge * max(value.ndim, 1), edgeitems=edge, max_line_width=100
            )
        left = None
        if value.size > 2 * edge * max(value.ndim, 1):
            left = "the values between the ends NumPy prints (…)"
        text = "\n\n".join([*lines, f"Values:\n\n```\n{sample}\n```"])
        if count(text) <= budget:
            return Rendered(text, summary, True, left)
    return _cut(Rendered(text, summary, True, left), expression, budget, count)


# -- Python's containers and text --------------------------------------------------------


class _Writer:
    """Python's repr of nested containers, stopping after ``room`` characters."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.out: list[str] = []
        self.used = 0
        self.full = False
        self.items = 0  # items left out
        self.seen: set[int] = set()

    def put(self, text: str) -> bool:
        if self.full:
            return False
        if self.used + len(text) > self.room:
            self.full = True
            return False
        self.out.append(text)
        self.used += len(text)
        return True

    def value(self, value: Any, depth: int = 0) -> None:
        kind = type(value)
        if kind in (list, tuple, set, frozenset, dict) and id(value) in self.seen:
            self.put("[...]" if kind is list else "{...}" if kind is dict else "(...)")
            return
        if kind is dict:
            self.container(value, "{", "}", depth, pairs=True)
        elif kind is list:
            self.container(value, "[", "]", depth)
        elif kind is tuple:
            self.container(value, "(", ",)" if len(value) == 1 else ")", depth)
        elif kind in (set, frozenset):
            if not value:
                self.put(f"{kind.__name__}()")
            else:
                wrap = ("frozenset({", "})") if kind is frozenset else ("{", "}")
                self.container(value, *wrap, depth)
        elif kind is str:
            self.text_repr(value)
        elif _scalar_text(value) is not None:
            self.put(repr(value))  # a known scalar's repr: its library's code
        else:
            self.put(_safe_repr(value, self.room - self.used))

    def text_repr(self, value: str) -> None:
        room = self.room - self.used
        text = repr(value[: room + 1])  # never more of a long string than fits
        if len(value) <= room and self.put(text):
            return
        if not self.full:
            self.out.append(text[: max(room - 2, 1)] + "…'")
            self.used, self.full = self.room, True

    def container(
        self, value: Any, opening: str, closing: str, depth: int, pairs: bool = False
    ) -> None:
        if not self.put(opening):
            self.items += len(value)
            return
        self.seen.add(id(value))
        items = value.items() if pairs else value
        for index, item in enumerate(items):
            if self.full:
                self.items += len(value) - index
                break
            if index:
                self.put(", ")
            if pairs:
                key, val = item
                self.value(key, depth + 1)
                self.put(": ")
                self.value(val, depth + 1)
            else:
                self.value(item, depth + 1)
        self.seen.discard(id(value))
        if not self.full:
            self.put(closing)

    def text(self) -> str:
        return "".join(self.out)


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception as error:
        return f"<{type(value).__name__} object: its __str__ raised {type(error).__name__}>"


def _safe_repr(value: object, room: int) -> str:
    try:
        text = repr(value)
    except Exception as error:
        return f"<{type(value).__name__} object: its __repr__ raised {type(error).__name__}>"
    return text if len(text) <= max(room, 0) else text[: max(room - 1, 0)] + "…"


def _container(expression: str, value: Any, budget: int, count: Count) -> Rendered:
    kind = type(value).__name__
    size = len(value)
    noun = "character" if kind == "str" else "item"
    summary = f"{kind} of {_n(size)} {noun}{'s' if size != 1 else ''}"
    room = budget * 4
    while True:
        if kind == "str":
            if len(value) <= room:
                text, left = value, None
            else:
                text = value[:room]
                left = f"{_n(len(value) - room)} of {_n(len(value))} characters"
        else:
            writer = _Writer(room)
            writer.value(value)
            text, left = writer.text(), None
            if writer.full:
                left = (
                    f"the rest of its {_n(size)} items"
                    if not writer.items
                    else f"{_n(writer.items)} items"
                )
        if left:
            text += f"\n[… `{expression}` cut here: {left} left out]"
        if count(text) <= budget or room < 40:
            return Rendered(text, summary, False, left)
        room = room * 2 // 3


def _other(expression: str, value: object, budget: int, count: Count) -> Rendered:
    summary = type(value).__name__
    text: str | None = None
    markdown = _class_attribute(value, "_repr_markdown_")
    if markdown is not None:
        try:
            produced = markdown(value)
            if isinstance(produced, tuple):  # (data, metadata)
                produced = produced[0]
            text = produced if isinstance(produced, str) else None
        except Exception:
            text = None
    if text is None:
        text = _safe_str(value)
    if count(text) <= budget:
        return Rendered(text, summary, False)
    return dataclasses.replace(_container(expression, text, budget, count), summary=summary)


def _class_attribute(value: object, name: str) -> Any:
    for klass in type(value).__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return None


def _cut(rendered: Rendered, expression: str, budget: int, count: Count) -> Rendered:
    """A rendering still over budget (a very wide table, say), cut at the budget."""
    text = rendered.text
    room = budget * 4
    while count(text) > budget and room > 40:
        text = rendered.text[:room] + f"\n[… `{expression}` cut here at its budget]"
        room = room * 2 // 3
    left = rendered.left_out or "the end of the rendering"
    return Rendered(text, rendered.summary, rendered.block, left)


def _is_container(value: object) -> bool:
    return type(value) in (str, list, tuple, set, frozenset, dict)


_RENDERERS: list[tuple[Callable[[object], bool], Callable[[str, Any, int, Count], Rendered]]] = [
    (_is_container, _container),
    (_pandas_frame, lambda e, v, b, c: _frame(_pandas_frame_facts(v), e, b, c)),
    (_polars_frame, lambda e, v, b, c: _frame(_polars_frame_facts(v), e, b, c)),
    (_pandas_series, lambda e, v, b, c: _series(e, v, b, c, "pandas")),
    (_polars_series, lambda e, v, b, c: _series(e, v, b, c, "polars")),
    (_ndarray, _array),
]


# -- the last error ----------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


_INSTALLED = re.compile(r"^.*[/\\](?:site|dist)-packages[/\\]")


def _where_installed(filename: str) -> str:
    """A library's file as its package path ("pandas/core/frame.py"), so the text does
    not depend on where Python is installed (a cassette recorded on one machine replays
    on another); the standard library's likewise; other files as they are."""
    shorter = _INSTALLED.sub("", filename)
    if shorter != filename:
        return shorter
    for root in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}:
        if filename.startswith(root + os.sep):
            return filename[len(root) + 1 :]
    return filename


def render_exception(
    error: BaseException,
    is_cell: Callable[[str], bool],
    budget: int = DEFAULT_VALUE_TOKENS,
    count: Count = count_text,
) -> Rendered:
    """An exception as plain text for the model: the failing cell's source, then the
    traceback from that cell on (the interpreter's own frames left out), colours
    stripped. ``is_cell`` tells a notebook cell's file from other files."""
    trace = traceback.TracebackException.from_exception(error)
    frames = list(trace.stack)
    first = next((i for i, f in enumerate(frames) if is_cell(f.filename)), 0)
    cell = frames[first].filename if frames and is_cell(frames[first].filename) else None
    lines = ["Traceback (most recent call last):\n"]
    for frame in frames[first:]:
        # a cell by what it is, not its execution count: the same error sends the same
        # text in any run of the notebook (cassettes replay it)
        if frame.filename == cell:
            place = "The failing cell"
        elif is_cell(frame.filename):
            place = "Another cell"
        else:
            place = f'File "{_where_installed(frame.filename)}"'
        lines.append(f"  {place}, line {frame.lineno}, in {frame.name}\n")
        if frame.line:
            lines.append(f"    {frame.line.strip()}\n")
    lines.extend(trace.format_exception_only())
    body = _ANSI.sub("", "".join(lines)).rstrip()
    kind = type(error).__name__
    summary = f"{kind} in a cell" if cell else kind  # no execution count: it varies by runner
    pieces = [f"The last error in the notebook ({kind}):"]
    if cell:
        source = _ANSI.sub("", "".join(linecache.getlines(cell))).rstrip()
        pieces.append(f"The cell that failed:\n\n```python\n{source}\n```")
    pieces.append(f"```\n{body}\n```")
    rendered = Rendered("\n\n".join(pieces), summary, True)
    if count(rendered.text) <= budget:
        return rendered
    return _cut(rendered, "the last error", budget, count)


# -- images ------------------------------------------------------------------------------

_matplotlib_figure = _is("matplotlib.figure", "Figure")
_pil_image = _is("PIL.Image", "Image")
_ipython_image = _is("IPython.core.display", "Image")


def image_of(expression: str, value: object) -> ImagePart | None:
    """A matplotlib Figure, a PIL image or an ``IPython.display.Image`` as an image part
    (PNG, drawn by its own library), else None."""
    if _matplotlib_figure(value):
        out = io.BytesIO()
        value.savefig(out, format="png", metadata={"Software": None})  # type: ignore[attr-defined]
        return image_part(out.getvalue(), name=expression)
    if _pil_image(value):
        out = io.BytesIO()
        value.save(out, format="PNG")  # type: ignore[attr-defined]
        return image_part(out.getvalue(), name=expression)
    if _ipython_image(value):
        data = getattr(value, "data", None)
        if not isinstance(data, bytes):
            raise UsageError(
                f"`{{{expression}}}` is an Image with no bytes (a URL): make it with "
                "Image(filename=...) or Image(data=...); nothing was sent"
            )
        return image_part(data, name=expression)
    return None


def image_note(expression: str, part: ImagePart) -> str:
    width, height = size_of(part)
    return f"{expression}: image {width:,} × {height:,} px"
