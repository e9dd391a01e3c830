"""Model Markdown → safe HTML, for a whole text or block by block as it streams.

Model text is untrusted. markdown-it-py renders it with raw HTML off (tables,
strikethrough, ``$…$``/``$$…$$`` math kept for MathJax); Pygments colours sealed code
blocks with the front end's own editor colours (so light and dark themes both read);
nh3 then keeps only an allowlist of tags, attributes and link schemes (http, https,
mailto). Images never load: they become a link showing their address. Nothing here
predicts another program's Markdown parser: the browser receives finished HTML.

``MarkdownStream`` renders a growing text at O(new text) per step: blocks that can no
longer change are rendered once (a fence only when it closes), and each step re-renders
only the open tail.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from html import escape
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token
    from markdown_it.utils import EnvType
    from nh3 import Cleaner

# The container every rendering sits in: MathJax (3, and 2 under the old class name)
# searches only the math spans inside it, so "$5 to $10" in prose stays prose.
_OPEN = '<div class="nbconvo-md mathjax_ignore tex2jax_ignore">'
_CLOSE = "</div>"
_MATH = "math mathjax_process tex2jax_process"
_THEAD = re.compile(r"<thead>.*?</thead>\n?", re.DOTALL)
_PLAIN = "nbconvo_plain"  # env key: render code without colours (the open tail)

_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "em", "strong", "s", "del",
    "code", "pre", "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr",
    "th", "td", "span", "div",
}  # fmt: skip
_ATTRIBUTES = {
    "a": {"href", "title"},
    "ol": {"start"},
    "th": {"style"},  # text-align only (filter_style_properties)
    "td": {"style"},
    "span": {"style"},  # Pygments colours, our own: model text cannot write tags
    "pre": {"style"},  # the code block's frame, our own too
}
_CLASSES = {
    "span": {"math", "inline", "mathjax_process", "tex2jax_process"},
    "div": {"math", "display", "mathjax_process", "tex2jax_process", "nbconvo-code"},
}
_STYLE_PROPERTIES = {
    "color", "font-weight", "font-style", "text-align", "background-color", "padding",
    "border-radius",
}  # fmt: skip
# A code block's frame, in the front end's own colours (JupyterLab's text/html outputs
# give <pre> none).
_FRAME = "background-color:var(--jp-layout-color2,#f5f5f5);padding:6px 10px;border-radius:3px"

# Pygments token types → JupyterLab's editor colour variables (as jupyterlab_pygments
# maps them), with the light theme's colours where the page defines no variable (no
# space after the comma: Pygments splits a style on spaces).
_COLOURS = {
    "Comment": "italic var(--jp-mirror-editor-comment-color,#408080)",
    "Keyword": "bold var(--jp-mirror-editor-keyword-color,#008000)",
    "Operator": "bold var(--jp-mirror-editor-operator-color,#aa22ff)",
    "Operator.Word": "bold var(--jp-mirror-editor-keyword-color,#008000)",
    "Name.Builtin": "var(--jp-mirror-editor-builtin-color,#008000)",
    "Name.Function": "var(--jp-mirror-editor-def-color,#0000ff)",
    "Name.Class": "bold var(--jp-mirror-editor-def-color,#0000ff)",
    "Name.Decorator": "var(--jp-mirror-editor-meta-color,#aa22ff)",
    "Name.Tag": "bold var(--jp-mirror-editor-tag-color,#008000)",
    "Name.Attribute": "var(--jp-mirror-editor-attribute-color,#7d9029)",
    "Name.Variable": "var(--jp-mirror-editor-variable-color,#19177c)",
    "String": "var(--jp-mirror-editor-string-color,#ba2121)",
    "Number": "var(--jp-mirror-editor-number-color,#008800)",
    "Punctuation": "var(--jp-mirror-editor-punctuation-color,#0055aa)",
    "Generic.Heading": "bold var(--jp-mirror-editor-header-color,#000080)",
    "Generic.Inserted": "var(--jp-mirror-editor-string-color,#008800)",
    "Generic.Deleted": "var(--jp-mirror-editor-error-color,#a00000)",
    "Error": "var(--jp-mirror-editor-error-color,#ff0000)",
}


@cache
def _markdown() -> MarkdownIt:
    from markdown_it import MarkdownIt
    from mdit_py_plugins.dollarmath import dollarmath_plugin

    # html=False: raw HTML in model text is shown as text. markdown-it's own link check
    # refuses javascript:, vbscript:, file: and data: (nh3 narrows it to three schemes).
    md = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
    # Pandoc's rule: no space inside the dollars, no digit after the closing one, so
    # "$5 to $10" is prose and "$p < 0.05$" is math.
    dollarmath_plugin(md, allow_labels=False, allow_space=False, allow_digits=False)
    md.add_render_rule("math_inline", _math_inline)
    md.add_render_rule("math_inline_double", _math_display)
    md.add_render_rule("math_block", _math_display)
    md.add_render_rule("image", _image)
    md.add_render_rule("fence", _fence)
    md.add_render_rule("code_block", _fence)
    return md


@cache
def _cleaner() -> Cleaner:
    import nh3

    return nh3.Cleaner(
        tags=_TAGS,
        clean_content_tags={"script", "style"},
        attributes=_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        url_relative="deny",
        link_rel="noopener noreferrer nofollow",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        allowed_classes=_CLASSES,
        filter_style_properties=_STYLE_PROPERTIES,
    )


def _math_inline(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    return f'<span class="{_MATH} inline">\\({escape(tokens[idx].content.strip())}\\)</span>'


def _math_display(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    return f'<div class="{_MATH} display">\\[{escape(tokens[idx].content.strip())}\\]</div>\n'


def _image(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    """An image is a link to its address, never a load: a fetched image URL is the
    classic way for a prompt-injected answer to send notebook data out."""
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = self.renderInlineAsText(token.children or [], options, env)
    label = f"🖼 {alt}" if alt else "🖼 image"
    if not src.lower().startswith(("http://", "https://")):
        return escape(label)
    return f'<a href="{escape(src)}">{escape(label)} ({escape(src)})</a>'


def _fence(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    lang = token.info.strip().split(maxsplit=1)[0] if token.info.strip() else ""
    # The open tail is shown plain; a block is coloured once, when it is sealed.
    body = escape(token.content) if env.get(_PLAIN) else _highlight(token.content, lang)
    return f'<div class="nbconvo-code"><pre style="{_FRAME}"><code>{body}</code></pre></div>\n'


@cache
def _formatter() -> Any:
    from pygments.formatters import HtmlFormatter
    from pygments.style import Style
    from pygments.token import string_to_tokentype

    class Editor(Style):
        styles: ClassVar = {string_to_tokentype(name): value for name, value in _COLOURS.items()}

    return HtmlFormatter(style=Editor, noclasses=True, nowrap=True)


def _highlight(code: str, lang: str) -> str:
    from pygments import highlight
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    if not lang:
        return escape(code)
    try:
        lexer = get_lexer_by_name(lang, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return escape(code)
    return str(highlight(code, lexer, _formatter()))


def _clean(html: str) -> str:
    return str(_cleaner().clean(html))


def wrap(inner: str) -> str:
    """Rendered blocks in the container that tells MathJax where the math is."""
    return f"{_OPEN}{inner}{_CLOSE}"


def render_markdown(text: str) -> str:
    """Model Markdown as a safe HTML fragment."""
    return wrap(render_blocks(text))


def render_blocks(text: str, *, plain: bool = False, env: EnvType | None = None) -> str:
    """The blocks of ``text`` as clean HTML, without the container."""
    md = _markdown()
    env = {} if env is None else env
    tokens = md.parse(text, env)
    return _clean(md.renderer.render(tokens, md.options, {**env, _PLAIN: plain}))


def _top_level(tokens: Sequence[Token]) -> list[tuple[int, int]]:
    """(first, last + 1) token index of each top-level block."""
    groups: list[tuple[int, int]] = []
    start = 0
    for i, token in enumerate(tokens):
        if token.level != 0:
            continue
        if token.nesting == 1:
            start = i
        elif token.nesting == -1:
            groups.append((start, i + 1))
        else:
            groups.append((i, i + 1))
    return groups


@dataclass
class Step:
    """What one ``MarkdownStream.step`` has to show, in order: newly sealed blocks, a
    piece of a long open block that moves out of the live output, and the open rest."""

    sealed_source: str  # Markdown that can no longer change, newly sealed
    sealed_html: str  # its HTML (the rest of a block whose start was moved: provisional)
    moved_source: str  # complete lines of a long open code block or table, shown now
    moved_html: str  # their provisional HTML (code not yet coloured)
    open_source: str  # the rest: the block still being written
    open_html: str  # its provisional HTML


# An open code block or table longer than this (complete lines not yet shown elsewhere)
# hands those lines out as a piece of its own, so the live output stays small.
MOVE = 600


class MarkdownStream:
    """A growing Markdown text rendered block by block.

    ``feed`` costs an append. ``step`` seals every top-level block that a later block
    has closed (judged on complete lines only: a half-written line can still join the
    block above) and renders only the newly sealed blocks and the open one, so its cost
    follows the open block, not the answer. A long open code block or table also hands
    out its complete lines in pieces (shown plain, as separate blocks, until the answer
    is finished). Reference definitions seen so far apply to later blocks; ``final``
    re-renders the whole text once if a definition came after a use, so the finished
    answer is exactly ``render_blocks`` of the text.
    """

    def __init__(self) -> None:
        self._pending: list[str] = []
        self._tail = ""  # source after the last sealed block
        self._env: dict[str, Any] = {}
        self._sealed: list[str] = []  # final HTML of every sealed block, in order
        self._sources: list[str] = []
        self._moved = 0  # characters of the open block already handed out as pieces
        self._resume = ""  # what makes the open block's rest render as a continuation
        self._table = False  # the open block is a table (a continuation drops its header)

    def feed(self, delta: str) -> None:
        self._pending.append(delta)

    def _take(self) -> None:
        if self._pending:
            self._tail += "".join(self._pending)
            self._pending.clear()

    def step(self, *, suffix: str = "") -> Step:
        """Seal what is final; render the open tail (with ``suffix``, e.g. a cursor).

        One parse of the unsealed text serves both: the blocks that stay open are
        rendered plain from it, and every block with two blocks after it (the second of
        them starting on a complete line) is sealed and coloured from the same tokens: a
        later line can change the block it continues, or steal the line before it (a
        table's header), never a block two blocks back."""
        self._take()
        shown = self._resume + self._tail[self._moved :]  # what the live output renders
        lines = _line_starts(shown)
        tokens = _markdown().parse(shown + suffix, self._env)
        groups = _top_level(tokens)
        sealed_source = sealed_html = ""
        if len(groups) >= 3 and _start(tokens[groups[-2][0]]) < len(lines) - 1:
            sealed_source, sealed_html = self._seal(shown, lines, tokens, groups)
            groups = groups[-2:]
        moved_source, moved_html = self._move(shown, lines, tokens, groups)
        if moved_html:
            open_html = self._provisional(self._resume + self._tail[self._moved :] + suffix)
        else:
            open_html = self._render(tokens[groups[0][0] :] if groups else [], plain=True)
        return Step(
            sealed_source,
            sealed_html,
            moved_source,
            moved_html,
            self._tail[self._moved :],
            open_html,
        )

    def _seal(
        self,
        shown: str,
        lines: list[int],
        tokens: Sequence[Token],
        groups: list[tuple[int, int]],
    ) -> tuple[str, str]:
        """Seal all groups but the last two; returns what the live output shows of them."""
        boundary = lines[_start(tokens[groups[-2][0]])]  # where the open groups start
        end = groups[-3][1]
        in_tail = boundary - len(self._resume) + self._moved
        source = self._tail[:in_tail]
        if self._moved:
            # The first group is the rest of a block whose start went out in pieces: show
            # it the same way; the whole block, coloured, comes with the finished answer.
            html = self._render(tokens[: groups[0][1]], plain=True)
            html += self._render(tokens[groups[0][1] : end], plain=False)
            self._sealed.append(render_blocks(source, env=self._env))
            shown_source = shown[len(self._resume) : boundary]
            self._moved, self._resume, self._table = 0, "", False
        else:
            html = self._render(tokens[:end], plain=False)
            self._sealed.append(html)
            shown_source = source
        self._sources.append(source)
        self._tail = self._tail[in_tail:]
        return shown_source, html

    def _move(
        self, shown: str, lines: list[int], tokens: Sequence[Token], groups: list[tuple[int, int]]
    ) -> tuple[str, str]:
        """Hand out the complete lines of a long open code block or table (``shown``,
        ``lines`` and ``tokens``: the parse ``step`` made, before any sealing)."""
        if not groups:
            return "", ""
        last = tokens[groups[-1][0]]
        start = _start(last)
        if last.type == "table_open" and start + 2 >= len(lines):
            return "", ""  # its delimiter row is still being written
        cut = self._tail.rfind("\n") + 1
        opened = lines[start] - len(self._resume) + self._moved  # where it began, in the tail
        if last.type not in ("fence", "table_open") or cut - max(opened, self._moved) < MOVE:
            return "", ""  # only the block itself counts: a short one just waits
        piece = self._tail[self._moved : cut]
        if last.type == "fence":
            closing = last.markup[0] * len(last.markup)
            if piece.rstrip("\n").rsplit("\n", 1)[-1].strip().startswith(closing):
                return "", ""  # closed: it seals as soon as two blocks follow
            html = self._provisional(self._resume + piece + last.markup + "\n")
            self._resume = last.markup + last.info + "\n"
        else:
            html = self._provisional(self._resume + piece)
            self._resume = shown[lines[start] : lines[start + 2]]  # header and delimiter
            self._table = True
        self._moved = cut
        return piece, html

    def _render(self, tokens: Sequence[Token], *, plain: bool) -> str:
        md = _markdown()
        html = _clean(md.renderer.render(tokens, md.options, {**self._env, _PLAIN: plain}))
        return self._continued(html) if plain else html

    def _provisional(self, source: str) -> str:
        return self._continued(render_blocks(source, plain=True, env=dict(self._env)))

    def _continued(self, html: str) -> str:
        """A table's continuation shows no header: it was shown above, with its start."""
        return _THEAD.sub("", html, count=1) if self._table and self._resume else html

    def final(self) -> str:
        """The finished text's HTML (without the container)."""
        self._take()
        env = dict(self._env)
        tail = render_blocks(self._tail, env=env)
        if env.get("references"):  # a definition may have come after its use
            return render_blocks("".join(self._sources) + self._tail)
        return "".join(self._sealed) + tail

    @property
    def text(self) -> str:
        self._take()
        return "".join(self._sources) + self._tail


def _start(token: Token) -> int:
    assert token.map is not None
    return token.map[0]


def _line_starts(text: str) -> list[int]:
    """The offset of every line's start; the last line may be incomplete (or empty)."""
    starts = [0]
    find = text.find
    at = find("\n")
    while at != -1:
        starts.append(at + 1)
        at = find("\n", at + 1)
    return starts
