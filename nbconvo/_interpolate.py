"""Fill ``{name}`` placeholders in a turn's text from the user's namespace.

A placeholder is a Python identifier followed by any chain of ``.attr``, ``[0]``,
``[-1]``, ``["key"]`` or ``['key']``, in single braces and with no spaces:
``{cfg.items[0]["x"]}``. Everything else in braces (JSON, code, set literals, f-string
bodies, ``{}``, jinja ``{{ x }}``) passes through byte for byte, and so does a placeholder
whose name is undefined or whose lookup fails or is not allowed. ``{{expr}}`` around a
placeholder expression is the escape: it becomes the literal ``{expr}``.

Lookups never call user code: attributes are read with ``inspect.getattr_static``, and
descriptors (properties, methods, ...) and ``__dunder__`` names are refused, except
``__slots__`` members and named-tuple fields, whose getters are C code; indexing only
happens on exact ``dict`` (by comparing keys of the exact same type, never hashing into it),
``list``, ``tuple`` and ``str`` instances; names come from the namespace only, never from
builtins. The value found is then rendered for the model by ``_values`` within a token
budget (``{name!full}`` lifts it): text, numbers and containers inline, tables and arrays
as data parts of their own; only a plain object's own ``__str__`` (or
``_repr_markdown_``) runs, and one that raises is named in the text, not raised.

``fill`` also says, in one line each, what the user should know before reading the
answer: a placeholder sent as written because no variable has its name (a typo), and
each value's size and what its budget left out.
"""

from __future__ import annotations

import collections
import dataclasses
import inspect
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nbconvo._errors import UsageError
from nbconvo._images import document_part, image_part
from nbconvo._parts import DataPart, Part, Parts, TextPart, content_text, sendable
from nbconvo._tokens import count_text
from nbconvo._values import (
    DEFAULT_VALUE_TOKENS,
    FULL_VALUE_TOKENS,
    image_note,
    image_of,
    render_value,
)

__all__ = ["Filled", "fill", "interpolate", "placeholders"]

_NAME = r"[^\W\d]\w*"
# Index digits are capped so int() never meets Python's digit limit.
_TRAILER = r"""\.[^\W\d]\w*|\[(?:-?[0-9]{1,18}|"[^"\\\r\n{}]*"|'[^'\\\r\n{}]*')\]"""
_EXPR = rf"{_NAME}(?:{_TRAILER})*"
# The escape alternative comes first so that ``{{x}}`` is one escape, not a placeholder.
_TOKEN = re.compile(
    rf"\{{\{{(?P<escaped>{_EXPR}(?:!full)?)\}}\}}|\{{(?P<expr>{_EXPR})(?P<full>!full)?\}}"
)
_STEP = re.compile(
    r"""\.(?P<attr>[^\W\d]\w*)|\[(?:(?P<index>-?[0-9]+)|"(?P<dq>[^"]*)"|'(?P<sq>[^']*)')\]"""
)
_HEAD = re.compile(_NAME)


class _Missing:
    """Marks a lookup that failed or was refused."""


_MISSING = _Missing()


def _namedtuple_getter_type() -> type | None:
    # CPython's named-tuple field getter is C code that indexes the tuple; its pure-Python
    # fallback is a property, which must stay refused.
    getter = inspect.getattr_static(collections.namedtuple("_Probe", "a"), "a")
    return None if isinstance(getter, property) else type(getter)


_SAFE_DESCRIPTORS: tuple[type, ...] = tuple(
    t for t in (types.MemberDescriptorType, _namedtuple_getter_type()) if t is not None
)


def _is_descriptor(value: object) -> bool:
    """Whether ``type(value)`` defines ``__get__``, found without running any user code."""
    mro = type.__dict__["__mro__"].__get__(type(value))
    get_dict = type.__dict__["__dict__"].__get__
    return any("__get__" in get_dict(klass) for klass in mro)


def _attribute(obj: object, attr: str) -> object:
    if attr.startswith("__") and attr.endswith("__"):
        return _MISSING  # interpreter internals are never part of a prompt
    try:
        found = inspect.getattr_static(obj, attr)
    except Exception:  # any failure means: leave the placeholder as written
        return _MISSING
    if not _is_descriptor(found):
        return found
    # Identity, not ``in``: a metaclass may define __eq__. issubclass on two real classes
    # is pure C, where isinstance could consult obj.__class__.
    safe = any(type(found) is kind for kind in _SAFE_DESCRIPTORS)
    if safe and not issubclass(type(obj), type):
        try:
            return found.__get__(obj, type(obj))
        except Exception:  # an unset slot
            return _MISSING
    return _MISSING


def _item(obj: object, key: int | str) -> object:
    if type(obj) is dict:
        # A scan instead of obj.get(key): a hash lookup may call a colliding key's __eq__.
        for k, v in obj.items():
            if type(k) is type(key) and k == key:
                return v
        return _MISSING
    if (type(obj) is list or type(obj) is tuple or type(obj) is str) and type(key) is int:
        try:
            return obj[key]
        except IndexError:
            return _MISSING
    return _MISSING


def _resolve(expr: str, namespace: Mapping[str, object]) -> object:
    head = _HEAD.match(expr)
    if head is None or not head.group().isidentifier() or head.group() not in namespace:
        return _MISSING
    value = namespace[head.group()]
    for step in _STEP.finditer(expr, head.end()):
        attr, index, dq, sq = step.group("attr", "index", "dq", "sq")
        if attr is not None:
            value = _attribute(value, attr) if attr.isidentifier() else _MISSING
        elif index is not None:
            value = _item(value, int(index))
        else:
            value = _item(value, dq if dq is not None else sq)
        if value is _MISSING:
            return _MISSING
    return value


@dataclass(frozen=True)
class Filled:
    """A cell's text with its placeholders filled: text and data parts, and lines for
    the footer: what each value became, and what to check (a placeholder sent as
    written)."""

    parts: Parts
    attached: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def fill(
    text: str,
    namespace: Mapping[str, object],
    budget: int = DEFAULT_VALUE_TOKENS,
    full_budget: int = FULL_VALUE_TOKENS,
) -> Filled:
    """Replace each ``{expr}`` whose lookup succeeds with its value rendered for the
    model (see the module doc); never raises for a value."""
    parts: list[Part] = []
    attached: list[str] = []
    warnings: list[str] = []
    written: list[str] = []  # text since the last data part
    add_text = written.append

    def flush() -> None:
        joined = "".join(written)
        if joined:
            parts.append(TextPart(joined))
        written.clear()

    position = 0
    for match in _TOKEN.finditer(text):
        add_text(text[position : match.start()])
        position = match.end()
        escaped = match.group("escaped")
        if escaped is not None:
            add_text("{" + escaped + "}")
            continue
        expr = match.group("expr")
        value = _resolve(expr, namespace)
        if value is _MISSING:
            add_text(match.group())
            warnings.append(_missing_note(expr, namespace))
            continue
        image = image_of(expr, value)
        if image is not None:
            flush()
            parts.append(dataclasses.replace(image, placeholder=True))
            attached.append(image_note(expr, image))
            continue
        limit = full_budget if match.group("full") else budget
        rendered = render_value(expr, value, limit)
        if rendered.block:
            flush()
            parts.append(DataPart(expr, rendered.text, summary=rendered.summary))
            attached.append(rendered.note(expr))
        else:
            add_text(rendered.text)
            if rendered.left_out:
                attached.append(rendered.note(expr))
    add_text(text[position:])
    flush()
    once = dict.fromkeys
    return Filled(tuple(parts) or (TextPart(""),), tuple(once(attached)), tuple(once(warnings)))


def _missing_note(expr: str, namespace: Mapping[str, object]) -> str:
    head = _HEAD.match(expr)
    if head is not None and head.group() not in namespace:
        return f"sent `{{{expr}}}` as written: no variable of that name"
    return f"sent `{{{expr}}}` as written: that lookup failed or is not allowed"


MAX_ATTACHMENT_BYTES = 50 * 1024 * 1024
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
TEXT_SUFFIXES = {
    ".txt": "", ".md": "markdown", ".rst": "rst", ".py": "python", ".ipynb": "json",
    ".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "json", ".yaml": "yaml",
    ".yml": "yaml", ".toml": "toml", ".ini": "ini", ".cfg": "ini", ".sql": "sql",
    ".js": "javascript", ".ts": "typescript", ".html": "html", ".css": "css", ".sh": "bash",
    ".r": "r", ".jl": "julia", ".c": "c", ".h": "c", ".cpp": "cpp", ".rs": "rust",
    ".go": "go", ".java": "java", ".log": "", ".xml": "xml",
}  # fmt: skip


def attachment(path: str, budget: int = FULL_VALUE_TOKENS) -> tuple[Part, str]:
    """A file for ``--attach``: an image part, or a text or code file as fenced text in a
    data part; and the footer's line. Anything else is one line, and nothing is sent."""
    file = Path(path).expanduser()
    suffix = file.suffix.lower()
    if suffix not in IMAGE_SUFFIXES and suffix not in TEXT_SUFFIXES and suffix != ".pdf":
        raise UsageError(
            f"--attach {path}: {suffix or 'extensionless'} files cannot be attached; attach "
            "an image (PNG, JPEG, GIF, WebP), a PDF, or a text or code file; nothing was sent"
        )
    try:
        size = file.stat().st_size
        if size > MAX_ATTACHMENT_BYTES:
            raise UsageError(
                f"--attach {path}: the file is {size / 1024 / 1024:.1f} MB, more than "
                f"{MAX_ATTACHMENT_BYTES // 1024 // 1024} MB: make it smaller; nothing was sent"
            )
        data = file.read_bytes()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise UsageError(f"--attach {path}: cannot read it ({reason}); nothing was sent") from None
    if suffix in IMAGE_SUFFIXES:
        image = image_part(data, name=file.name)
        return image, image_note(file.name, image)
    if suffix == ".pdf":
        document = document_part(data, name=file.name)
        pages = f"{document.pages:,} page{'s' if document.pages != 1 else ''}"
        return document, f"{file.name}: PDF, {pages}"
    text = data.decode("utf-8", errors="replace")
    fence = "````" if "```" in text else "```"
    body = f"`{file.name}`:\n\n{fence}{TEXT_SUFFIXES[suffix]}\n{text.rstrip()}\n{fence}"
    rendered = render_value(file.name, body, budget)
    lines = text.count("\n") + (not text.endswith("\n"))
    summary = f"file, {lines:,} lines"
    part = DataPart(file.name, rendered.text, "text/plain", summary, placeholder=False)
    cut = f" ({rendered.left_out} left out)" if rendered.left_out else ""
    return part, f"{file.name}: {summary} → {count_text(rendered.text):,} tokens{cut}"


def interpolate(text: str, namespace: Mapping[str, object]) -> str:
    """The text ``fill`` makes, data parts written in place (as a provider gets them)."""
    return content_text(sendable(fill(text, namespace).parts))


def placeholders(text: str) -> list[str]:
    """The placeholder expressions in ``text``, in order of first use, without repeats.

    Escaped ``{{expr}}`` is literal text, not a placeholder.
    """
    found = (m.group("expr") for m in _TOKEN.finditer(text))
    return list(dict.fromkeys(e for e in found if e is not None))
