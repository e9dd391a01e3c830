"""Make untrusted model Markdown safe to show as a trusted ``text/markdown`` output.

JupyterLab renders trusted Markdown with raw HTML enabled, so a model that writes
``<img src=x onerror=...>`` would run script in the user's browser. ``neutralize_html``
escapes as ``&lt;`` (which still displays as ``<``) every ``<`` outside code that could
open a tag, comment or autolink (one before a letter, ``/``, ``!`` or ``?``), leaves code
byte for byte (renderers escape code themselves), and replaces each link destination whose
scheme is not http, https or mailto with ``#unsafe-link-removed``.

Code is found by parsing with markdown-it (CommonMark), repeated until escaping no longer
changes what is code. JupyterLab first cuts ``$...$`` math out (putting it back raw into
the HTML afterwards) and then parses with marked, so a ``<`` stays raw only where it is code
both in the text and in the text with that math cut out, and only where marked agrees too.
Code that marked may read otherwise is escaped like text: fences that are indented, inside
a list or quote, or glued to text above them with a ``---`` line below (older marked reads
that as a heading), a fence's lines from one that marked would read as its end (three
backticks and a tilde),
indented code once a list or quote has been, everything after a mermaid fence (a failed
diagram shows its source raw), and inline code spans holding a line break or ``|`` (GFM
table cells) or that a link, URL, strikethrough or emphasis may swallow the start of.

JupyterLab also writes some text into HTML attributes unescaped: math, a fence's info
string, and (marked 15) an image's description. There ``"`` becomes ``&quot;``: in all math,
in fence info strings, and in every paragraph holding ``![``.

Unsafe link destinations are replaced everywhere, even in code, since what is code differs
between parsers. A final parse checks the result; if any raw HTML or unsafe link is left,
the text falls back to every ``<`` escaped and every ``](`` and ``]:`` broken. Line endings
come back as ``\\n``.
"""

from __future__ import annotations

import bisect
import html
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence

from markdown_it import MarkdownIt
from markdown_it.token import Token

__all__ = ["REMOVED_LINK", "escape_html", "neutralize_html"]

REMOVED_LINK = "#unsafe-link-removed"
_SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
# Each round escapes more or removes a link; real text needs two or three.
_MAX_ROUNDS = 8
_LOOK_AHEAD = 512  # characters of a link destination that are checked for a scheme

_PUNCT = r"[!-/:-@\[-`{-~]"  # ASCII punctuation: what a backslash can escape
_NEWLINES = re.compile(r"\r\n?")
_TICKS = re.compile(r"`+")
_INLINE_MARK = re.compile(rf"\\{_PUNCT}|`+|[\[~*_]")
_BACKSLASH_ESCAPE = re.compile(rf"\\({_PUNCT})")
_URL_START = re.compile(r"(?:https?|ftp)://|www\.", re.IGNORECASE)
# A line that opens a fence for some parser: container markers, then ``` or ~~~.
_FENCE_LINE = re.compile(r"^(?:[ \t>]|[-*+][ \t]|[0-9]{1,9}[.)][ \t])*(?:`{3,}|~{3,})", re.M)
_ESCAPABLE = re.compile(r'"|\\?<')
_TAG_START = re.compile(r"[A-Za-z/!?]")
_UNDERLINE = re.compile(r" {0,3}(?:=+|-+)[ \t]*$")
_CONTAINERS = frozenset({"bullet_list_open", "ordered_list_open", "blockquote_open"})
# Runs of lines without an empty or all-space one (marked ends paragraphs only there).
_PARAGRAPHS = re.compile(r"(?:^(?! *$).*(?:\n|\Z))+", re.M)
_LINK_OPENER = re.compile(r"\][(:]")
# Between "](" or "]:" and the destination: spaces, line breaks, and quote markers.
_LINK_GAP = re.compile(r"[ \t]*(?:\n[ \t>]*)*")
_INVISIBLE = re.compile(r"[\x00-\x20\x7f]+")
_SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):", re.ASCII | re.IGNORECASE)

# JupyterLab's removeMath (rendermime/src/latex.ts), in Python with JavaScript's meanings of
# ^, $ (multiline), \s and "." so that it finds the same math.
_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_JS_BOL = r"(?<![^\n\r\u2028\u2029])"
_JS_EOL = r"(?![^\n\r\u2028\u2029])"
_JL_FENCE = re.compile(
    rf"{_JS_BOL}(?P<fence>`{{3,}}|~{{3,}})[^`\n]*\n[\s\S]*?{_JS_BOL}(?P=fence)`*{_JS_EOL}"
)
_JL_SPAN = re.compile(rf"(?:{_JS_BOL}|[^\\])(`+)[^\n]*?[^`\n]\1(?!`)")
_JL_SPLIT = re.compile(
    r"(\$\$?|\\(?:begin|end)\{[a-z]*\*?\}|\\[{}$]|[{}]|(?:\n[" + _JS_SPACE + r"]*)+"
    r"|@@[0-9]+@@|\\\\(?:\(|\)|\[|\]))",
    re.IGNORECASE | re.ASCII,
)
_JL_PARAGRAPH_BREAK = re.compile(r"\n[^\n\r\u2028\u2029]*\n")

Range = tuple[int, int]


class _KeepLinks(MarkdownIt):
    """Keeps every destination as written, as JupyterLab's renderer does, for the check."""

    def validateLink(self, url: str) -> bool:
        return True

    def normalizeLink(self, url: str) -> str:
        return url


_PARSER = MarkdownIt("commonmark")
_CHECKER = _KeepLinks("commonmark")


def escape_html(text: str) -> str:
    """Escape ``text`` for an HTML context (element content or a quoted attribute)."""
    return html.escape(text)


def neutralize_html(markdown: str) -> str:
    """Return ``markdown`` with no way to form raw HTML and no unsafe link destination."""
    text = _NEWLINES.sub("\n", markdown)
    if not any(char in text for char in '<]"'):
        return text
    for _ in range(_MAX_ROUNDS):
        plan = _Plan(text)
        changed = _escape(text, plan)
        if changed == text:
            changed = _neutralize_links(text)
            if changed == text:
                safe = _renders_safely(text) and _renders_safely(plan.without_math)
                return text if safe else _fallback(text)
        text = changed
    return _fallback(text)


def _fallback(text: str) -> str:
    # Without "<" no HTML forms; without "](" and "]:" no link or definition does.
    return text.replace("<", "&lt;").replace("](", "]\\(").replace("]:", "]\\:")


# --- where code is ---------------------------------------------------------------------------


class _Ranges:
    """A set of offsets given as half-open ranges that don't overlap."""

    def __init__(self, ranges: Iterable[Range]) -> None:
        self._ranges = sorted(r for r in ranges if r[0] < r[1])
        self._starts = [start for start, _ in self._ranges]

    def __contains__(self, offset: int) -> bool:
        index = bisect.bisect_right(self._starts, offset) - 1
        return index >= 0 and offset < self._ranges[index][1]


class _Scan:
    """One markdown-it parse: where ``<`` may stay raw, block code, and ``"`` to escape."""

    def __init__(self, text: str) -> None:
        lines = text.split("\n")
        starts = list(itertools.accumulate((len(line) + 1 for line in lines[:-1]), initial=0))

        def span(first: int, stop: int) -> Range:
            return starts[first], starts[stop - 1] + len(lines[stop - 1])

        blocks: list[Range] = []
        spans: list[Range] = []
        strict: dict[Range, set[Range]] = {}  # spans per run of non-blank lines
        containers = False  # whether a list or quote came before
        for token in _PARSER.parse(text):
            if token.type == "inline" and token.map is not None:
                found = _code_spans(text, *span(*token.map))
                if token.level > 1 and found:
                    # In a list or quote, marked may draw the paragraph differently: only
                    # spans that the whole run of non-blank lines pairs the same way count.
                    # (Only an empty or all-space line ends a paragraph for marked.)
                    first, stop = token.map
                    while first > 0 and lines[first - 1].strip(" "):
                        first -= 1
                    while stop < len(lines) and lines[stop].strip(" "):
                        stop += 1
                    around = span(first, stop)
                    if around not in strict:
                        fenced = _FENCE_LINE.search(text, *around) is not None
                        paired = _code_spans(text, *around, strict=True)
                        strict[around] = set() if fenced else set(paired)
                    found = [r for r in found if r in strict[around]]
                spans.extend(found)
            if token.level > 0:
                # marked reads lists and quotes (their lazy lines, nesting, indents) its own
                # way, so block code inside them is escaped like text.
                continue
            if token.map is not None and token.type in ("fence", "code_block"):
                first, stop = token.map
                after_text = first > 0 and bool(lines[first - 1].strip(" "))
                if token.type == "code_block":
                    # Once a list or quote has been, marked may read indented code as their
                    # continuation (through lazy lines and blank lines).
                    if not after_text and not containers:
                        blocks.append(span(first, stop))
                else:
                    agreed = first + _agreed_fence_lines(lines, first, stop, token.markup)
                    # Older marked reads text, a fence right after it and a later "---"
                    # line as one heading.
                    below = itertools.takewhile(lambda line: line.strip(" "), lines[first:])
                    heading = after_text and any(_UNDERLINE.match(line) for line in below)
                    # Indented, it may sit in a list item for marked.
                    indented = lines[first][:1] in (" ", "\t")
                    if agreed > first + 1 and not (heading or indented):
                        blocks.append(span(first + 1, agreed))  # the info string needs no "<"
            containers = containers or token.type in _CONTAINERS
        self.kept = _Ranges(blocks + spans)
        self.blocks = _Ranges(blocks)
        # JupyterLab's highlighter writes a fence's info string into class="..." unescaped.
        self.quotes = {
            offset
            for match in _FENCE_LINE.finditer(text)
            for offset in range(match.end(), _line_end(text, match.end()))
            if text[offset] == '"'
        }


def _line_end(text: str, offset: int) -> int:
    end = text.find("\n", offset)
    return len(text) if end < 0 else end


class _Plan:
    """What to escape in one round: code must be code both as written and as JupyterLab
    parses it after cutting math out."""

    def __init__(self, text: str) -> None:
        scan = _Scan(text)
        maths = _jupyter_math(text)
        # JupyterLab puts math back raw into whatever it landed in, attributes included
        # (a link, an image's alt): a '"' in math would end the attribute.
        self.quotes = scan.quotes | {
            start + i for start, end in maths for i, c in enumerate(text[start:end]) if c == '"'
        }
        self.without_math, to_cut, from_cut = _cut_math(text, maths)
        cut = _Scan(self.without_math) if maths else scan
        self.quotes |= {q for q in (from_cut(p) for p in cut.quotes) if q is not None}

        def in_both(ranges: _Ranges, cut_ranges: _Ranges) -> Callable[[int], bool]:
            def test(offset: int) -> bool:
                if offset not in ranges:
                    return False
                moved = to_cut(offset)
                return moved is None or moved in cut_ranges  # None: inside math

            return test

        kept = in_both(scan.kept, cut.kept)
        # A failed mermaid diagram shows its source unescaped, and where a mermaid fence
        # ends differs between parsers (lazy quote lines): nothing after one stays raw.
        mermaid = next(
            (
                match.start()
                for match in _FENCE_LINE.finditer(text)
                if "mermaid" in text[match.end() : _line_end(text, match.end())].lower()
            ),
            len(text),
        )
        self.keep: Callable[[int], bool] = lambda offset: offset < mermaid and kept(offset)
        in_block_code = in_both(scan.blocks, cut.blocks)
        # marked writes an image's description into alt="..." unescaped (code in it too),
        # and may read a paragraph's lines differently: escape '"' in any that has "![".
        for paragraph in _PARAGRAPHS.finditer(text):
            if "![" in paragraph.group():
                self.quotes.update(
                    offset
                    for offset in range(*paragraph.span())
                    if text[offset] == '"' and not in_block_code(offset)
                )


def _agreed_fence_lines(lines: Sequence[str], first: int, stop: int, fence: str) -> int:
    """How many lines of a fence marked reads as code too: it also closes on e.g. ```~."""
    closing = re.compile(rf"[ \t>]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
    lax_closing = re.compile(rf"[ \t>]*{re.escape(fence)}[`~]*[ \t]*$")
    body_stop = stop - 1 if stop - 1 > first and closing.match(lines[stop - 1]) else stop
    for index in range(first + 1, body_stop):
        if lax_closing.match(lines[index]):
            return index - first
    return stop - first


def _code_spans(text: str, start: int, end: int, *, strict: bool = False) -> list[Range]:
    """The contents of the inline code spans of one paragraph or heading, per CommonMark,
    leaving out those that marked may not read as code (``strict``: also any after
    backticks left unpaired)."""
    runs: dict[int, list[int]] = {}
    for run in _TICKS.finditer(text, start, end):
        runs.setdefault(run.end() - run.start(), []).append(run.start())
    spans: list[Range] = []
    resume = start
    before: set[str] = set()  # the marks seen before, outside code
    doubt = False
    for mark in _INLINE_MARK.finditer(text, start, end):
        opener = mark.group()
        if mark.start() < resume or opener[0] == "\\":
            continue
        if opener[0] != "`":
            before.add(opener)
            continue
        same = runs.get(len(opener), [])
        index = bisect.bisect_left(same, mark.end())
        if index == len(same):
            doubt = doubt or strict
            continue  # no closing run: the backticks are literal
        close = same[index]
        content = text[mark.end() : close]
        word = text[max(text.rfind(c, start, mark.start()) for c in " \t\n") + 1 : mark.start()]
        unsure = (
            # A GFM table splits cells on "|" and rows on line breaks, even in code.
            "\n" in content
            or "|" in content
            # marked's text rule eats backticks right after "~", its URL rule any in a URL.
            or text[mark.start() - 1 : mark.start()] == "~"
            or _URL_START.search(word) is not None
            # A link, strikethrough or emphasis opened before may close inside and end the
            # code for marked.
            or ("[" in before and any(c in content for c in "])"))
            or any(c in before and c in content for c in "~*_")
        )
        # Once marked may pair backticks differently, it may pair all later ones so too.
        doubt = doubt or unsure
        if not doubt:
            spans.append((mark.end(), close))
        resume = close + len(opener)
    return spans


# --- JupyterLab's math -----------------------------------------------------------------------


def _jupyter_math(text: str) -> list[Range]:
    """The ranges that JupyterLab's removeMath cuts out as math before marked runs.

    Its code masks keep their length here: "$" becomes "\\0" instead of "~D".
    """

    def mask(match: re.Match[str]) -> str:
        return match.group().replace("$", "\0")

    masked = _JL_SPAN.sub(mask, _JL_FENCE.sub(mask, text))
    blocks = _JL_SPLIT.split(masked)
    offsets = list(itertools.accumulate((len(b) for b in blocks), initial=0))
    found: list[Range] = []
    start: int | None = None
    last: int | None = None
    end = ""
    braces = 0
    index = 1
    while index < len(blocks):
        block = blocks[index]
        if block.startswith("@"):
            pass  # "@@1@@" look-alikes are kept and put back as they were
        elif start is not None:
            if block == end:
                if braces:
                    last = index
                else:
                    found.append((offsets[start], offsets[index + 1]))
                    start = last = None
            elif _JL_PARAGRAPH_BREAK.search(block):
                if last is not None:
                    index = last
                    found.append((offsets[start], offsets[index + 1]))
                start = last = None
                braces = 0
            elif block == "{":
                braces += 1
            elif block == "}" and braces:
                braces -= 1
        elif block in ("$", "$$"):
            start, end, braces = index, block, 0
        elif block in ("\\\\(", "\\\\["):
            start, end, braces = index, "\\\\)" if block[-1] == "(" else "\\\\]", 0
        elif block[1:6] == "begin":
            start, end, braces = index, "\\end" + block[6:], 0
        index += 2
    if start is not None and last is not None:
        found.append((offsets[start], offsets[last + 1]))
    return found


def _cut_math(
    text: str, maths: Sequence[Range]
) -> tuple[str, Callable[[int], int | None], Callable[[int], int | None]]:
    """The text as marked sees it, math replaced by ``@@N@@``, and maps of offsets to it
    and back (None for an offset inside math or a placeholder)."""
    pieces: list[str] = []
    kept: list[tuple[int, int, int]] = []  # (start in text, start in cut text, length)
    done = moved = 0
    for number, (start, end) in enumerate(maths):
        kept.append((done, moved, start - done))
        placeholder = f"@@{number}@@"
        pieces += [text[done:start], placeholder]
        moved += start - done + len(placeholder)
        done = end
    kept.append((done, moved, len(text) - done))
    pieces.append(text[done:])
    old_starts = [k[0] for k in kept]
    new_starts = [k[1] for k in kept]

    def to_cut(offset: int) -> int | None:
        old, new, length = kept[bisect.bisect_right(old_starts, offset) - 1]
        return new + offset - old if offset - old < length else None

    def from_cut(offset: int) -> int | None:
        old, new, length = kept[bisect.bisect_right(new_starts, offset) - 1]
        return old + offset - new if offset - new < length else None

    return "".join(pieces), to_cut, from_cut


# --- escaping and links ----------------------------------------------------------------------


def _escape(text: str, plan: _Plan) -> str:
    """Escape each ``<`` outside kept code and each ``"`` the plan names."""

    def escape(match: re.Match[str]) -> str:
        if match.group() == '"':
            return "&quot;" if match.start() in plan.quotes else '"'
        offset = match.end() - 1  # the "<"
        # Only "<" before a letter, "/", "!" or "?" can open a tag, comment or autolink; a
        # bare "a < b" stays, which also keeps it readable inside JupyterLab's math.
        if plan.keep(offset) or not _TAG_START.match(text, offset + 1):
            return match.group()
        begin = offset
        while begin > 0 and text[begin - 1] == "\\":
            begin -= 1
        backslashes = offset - begin
        # An escaped "\<" shows "<" as "&lt;" does; the backslash goes too, or a GFM URL
        # or a mermaid diagram's source could take it and leave the "<" bare.
        return "&lt;" if backslashes % 2 else match.group()[:-1] + "&lt;"

    return _ESCAPABLE.sub(escape, text)


def _neutralize_links(text: str) -> str:
    """Replace unsafe destinations after every ``](`` and ``]:``, even in code.

    Deliberately broader than a parser: what is code differs between parsers, and a
    destination only needs its start found, which sits right after the opener.
    """
    edits: list[Range] = []
    for opener in _LINK_OPENER.finditer(text):
        gap = _LINK_GAP.match(text, opener.end())
        begin = gap.end() if gap else opener.end()
        # Only the start decides the scheme: looking no further than _LOOK_AHEAD keeps long
        # runs of openers linear (a scheme padded past it is left to the final check).
        limit = min(len(text), begin + _LOOK_AHEAD)
        if text.startswith("<", begin):
            destination = (begin + 1, _angle_destination_end(text, begin + 1, limit))
        else:
            destination = (begin, _raw_destination_end(text, begin, limit))
        if _unsafe_destination(text[destination[0] : destination[1]]):
            edits.append(destination)
    pieces: list[str] = []
    done = 0
    for begin, end in edits:
        if begin < done:
            continue  # overlaps the previous edit; the next round looks again
        pieces += [text[done:begin], REMOVED_LINK]
        done = end
    pieces.append(text[done:])
    return "".join(pieces)


def _angle_destination_end(text: str, offset: int, limit: int) -> int:
    while offset < limit and text[offset] not in "<>\n":
        offset += 2 if text[offset] == "\\" else 1
    return min(offset, limit)


def _raw_destination_end(text: str, offset: int, limit: int) -> int:
    depth = 0
    while offset < limit:
        char = text[offset]
        if char == "\\" and _BACKSLASH_ESCAPE.match(text, offset):
            offset += 2
            continue
        if char <= " " or char == "\x7f":
            break
        if char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                break
            depth -= 1
        offset += 1
    return min(offset, limit)


def _unsafe_destination(destination: str) -> bool:
    """Whether a browser could read a scheme other than http, https or mailto."""
    text = destination
    for _ in range(8):  # decode nested escapes too: more decoding only finds more schemes
        decoded = html.unescape(_BACKSLASH_ESCAPE.sub(r"\1", text))
        if decoded == text:
            break
        text = decoded
    # Browsers drop tabs and newlines inside a URL and controls and spaces around it; a
    # backslash left over is dropped too, to be on the safe side.
    scheme = _SCHEME.match(_INVISIBLE.sub("", text).replace("\\", ""))
    return scheme is not None and scheme.group(1).lower() not in _SAFE_SCHEMES


# --- the final check -------------------------------------------------------------------------


def _walk(tokens: Sequence[Token]) -> Iterator[Token]:
    for token in tokens:
        yield token
        if token.children:
            yield from _walk(token.children)


def _renders_safely(text: str) -> bool:
    for token in _walk(_CHECKER.parse(text)):
        if token.type in ("html_block", "html_inline"):
            return False
        for name in ("href", "src"):
            url = token.attrGet(name)
            if url is not None and _unsafe_destination(str(url)):
                return False
    return True
