"""Model Markdown rendered as trusted HTML: no raw HTML, no unsafe links, code untouched."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from nbconvo import _sanitize
from nbconvo._sanitize import REMOVED_LINK, escape_html, neutralize_html
from tests.support.markup import MARKDOWN_TAGS, RENDERERS, SAFE_SCHEMES, dangerous_url, parse  # noqa: F401


def assert_renders_safely(markdown: str) -> None:
    for renderer in RENDERERS:
        rendered = renderer.render(markdown)
        assert "<script" not in rendered.lower()
        page = parse(rendered)
        assert page.comments == [] and page.others == [], rendered
        for tag, attrs in page.tags:
            assert tag in MARKDOWN_TAGS, rendered
            for name, value in attrs:
                assert not name.startswith("on"), rendered
                if name in ("href", "src"):
                    assert value is not None and not dangerous_url(value), rendered
            if tag == "img":
                assert {name for name, _ in attrs} <= {"src", "alt", "title"}, rendered


def visible_text(markdown: str) -> str:
    return "".join(parse(MarkdownIt("commonmark").render(markdown)).text).strip()


# --- attacks ------------------------------------------------------------------------------------

ATTACKS = [
    "<script>alert(1)</script>",
    "Hi <script>alert(1)</script> there",
    "<img src=x onerror=alert(1)>",
    "text <img src=x onerror=alert(1)> text",
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    '<a href="javascript:alert(1)">click</a>',
    "<iframe src=javascript:alert(1)></iframe>",
    "<details open ontoggle=alert(1)>",
    "<style>*{display:none}</style>",
    "<!-- hidden -->",
    "<!-- c --><img src=x onerror=alert(1)>",
    "<!--\n<img src=x onerror=alert(1)>\n-->",
    "<img\nsrc=x\nonerror=alert(1)>",
    "<div\nonmouseover=alert(1)>hover</div>",
    "<div>\n\n<img src=x onerror=alert(1)>\n\n</div>",
    "<?php echo 1; ?>",
    "<![CDATA[x]]>",
    "<!DOCTYPE html>",
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](javascript&colon;alert(1))",
    "[x](JaVa&#x09;Script:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](&#x6A;avascript&#58alert(1))",
    "[x](javascript\\:alert(1))",
    "[x](  javascript:alert(1) 'title')",
    "[x](\njavascript:alert(1))",
    "> [x](\n> javascript:alert(1))",
    "[x](<javascript:alert(1)>)",
    "[x](vbscript:msgbox(1))",
    "[x](file:///etc/passwd)",
    "[x](javascript:alert(document.cookie)(1))",
    "![i](data:text/html,<script>alert(1)</script>)",
    "![i](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "[![i](javascript:alert(1))](javascript:alert(2))",
    "[id]: javascript:alert(1)\n\n[click][id] and [id]",
    "[id]:\n  javascript:alert(1)\n\n[id]",
    '[id]: JAVASCRIPT:alert(1) "title"\n\n[id][]',
    "> [id]: javascript:alert(1)\n>\n> [id]",
    "- [id]: javascript:alert(1)\n\n[id]",
    "<javascript:alert(1)>",
    "<JAVASCRIPT:alert(1)>",
    "<data:text/html,hi>",
    "<http://example.com/<img src=x onerror=alert(1)>>",
    # Code-span look-alikes that are not code.
    "\\`<img src=x onerror=alert(1)>`",
    "[x](`)<img src=x onerror=alert(1)>`",
    '[x]: `\n"<img src=x onerror=alert(1)>" `',
    "`a``<img src=x onerror=alert(1)>`",
    "``<img src=x onerror=alert(1)>`",
    # Code-block look-alikes: HTML blocks change meaning once their "<" is escaped.
    "<!-- c -->\n    <script>alert(1)</script>",
    "<div>\n```\n<img src=x onerror=alert(1)>\n```\n</div>",
    "    code\n<img src=x onerror=alert(1)>",
    "> ```\n<img src=x onerror=alert(1)>",
    "- ```\n<img src=x onerror=alert(1)>",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_renders_safely(attack: str) -> None:
    out = neutralize_html(attack)
    assert_renders_safely(out)
    assert neutralize_html(out) == out


@pytest.mark.parametrize(
    "attack",
    [a for a in ATTACKS if re.search(r"(?i)(java|vb)script|data:|file:", a) and "<" not in a],
)
def test_unsafe_destinations_are_replaced(attack: str) -> None:
    out = neutralize_html(attack)
    assert REMOVED_LINK in out
    assert not re.search(r"(?i)script:|data:|file:|&colon;|&#", out)


def test_autolinks_are_broken_by_escaping() -> None:
    for scheme in ("javascript:alert(1)", "https://example.com"):
        out = neutralize_html(f"<{scheme}>")
        assert out == f"&lt;{scheme}>"
        assert "<a" not in RENDERERS[1].render(out)


@pytest.mark.parametrize(
    "attack",
    [
        # marked closes a ``` fence on ```~, CommonMark does not.
        "```\n```~\n<img src=x onerror=alert(1)>\n```",
        "~~~\n~~~`\n<img src=x onerror=alert(1)>\n~~~",
        # JupyterLab cuts $...$ math out before marked sees it, taking the fence opener.
        "- $\n  ```$\n  <img src=x onerror=alert(1)>\n  ```",
        "$\n```$\n<img src=x onerror=alert(1)>",
        "\\begin{x}\n```\n\\end{x}\n<img src=x onerror=alert(1)>\n```",
        "$a\\\\`$<img src=x onerror=alert(1)>`",
        # The GFM spec splits table cells on "|" even inside code spans.
        "| a | `x|<img src=x onerror=alert(1)>` |\n|---|---|",
        "| a | `b |\n|---|---|\n| <img src=x onerror=alert(1)>` | c |",
        # Indented code nested in containers is where parsers disagree most.
        "- a\n\n      <img src=x onerror=alert(1)>",
        ">     <img src=x onerror=alert(1)>",
        # Fences in lists and quotes, and indented ones: marked may not see them so.
        "> ```\n> <img src=x onerror=alert(1)>\n> ```",
        "1. item\n\n   ```\n   <img src=x onerror=alert(1)>\n   ```",
        "- a\n  ```\n<img src=x onerror=alert(1)>\n```",
        # Older marked reads text + fence + "---" as one setext heading.
        "Intro\n~~~\n<img src=x onerror=alert(1)>\n~~~\n---",
        "YAML:\n```yaml\n---\na: <img src=x onerror=alert(1)>\n```",
        # marked only ends a paragraph at an empty or all-space line, not one with a tab.
        "para\n  \t\n    <img src=x onerror=alert(1)>",
        # Indented code after a list or quote, even past lazy lines and a blank line.
        "- > x\ny\n\n    <img src=x onerror=alert(1)>",
        # Math cut out by JupyterLab can drop a backtick and so make a fence.
        "```py\\\\(`\\\\)\n```\n<img src=x onerror=alert(1)>\n```",
        # marked's URL and text rules swallow backticks; emphasis may close inside code.
        "see https://a`<img src=x onerror=alert(1)>`",
        "x~`<img src=x onerror=alert(1)>`",
        "*a ``*<img src=x onerror=alert(1)>``",
        # A failed mermaid diagram shows its source raw, and so may all after it.
        "```mermaid\n<img src=x onerror=alert(1)>\n```",
        "```mermaid\ngraph\n```\n\n```\n<img src=x onerror=alert(1)>\n```",
        "> ```mermaid\n--`<img src=x onerror=alert(1)>`",
        # An escaped "\<" next to a URL: marked's URL rule eats the backslash.
        "https://a\\<img src=x onerror=alert(1)>",
    ],
)
def test_code_that_jupyterlab_might_not_treat_as_code_is_escaped(attack: str) -> None:
    out = neutralize_html(attack)
    assert "<img" not in out
    assert_renders_safely(out)


@pytest.mark.parametrize(
    ("attack", "expected"),
    [
        # marked 15 writes an image description into alt="..." unescaped.
        ('![a" onerror="alert(1)](x.png)', "![a&quot; onerror=&quot;alert(1)](x.png)"),
        ('![`a" onerror="alert(1)`](x.png)', "![`a&quot; onerror=&quot;alert(1)`](x.png)"),
        # JupyterLab puts math back raw, here into an href.
        (
            '[x](https://a/$" onmouseover="alert(1)$)',
            "[x](https://a/$&quot; onmouseover=&quot;alert(1)$)",
        ),
        # JupyterLab's highlighter writes the info string into class="...".
        (
            '```py" onmouseover="alert(1)\nx = 1\n```',
            "```py&quot; onmouseover=&quot;alert(1)\nx = 1\n```",
        ),
    ],
)
def test_quotes_that_jupyterlab_puts_into_attributes_are_escaped(
    attack: str, expected: str
) -> None:
    out = neutralize_html(attack)
    assert out == expected
    assert_renders_safely(out)


def test_unsafe_links_are_replaced_in_code_too() -> None:
    # What is code differs between parsers, so links are neutralized everywhere.
    out = neutralize_html("```md\n[x](javascript:alert(1)) and `[y](data:x)`\n```\n")
    assert out == "```md\n[x](#unsafe-link-removed) and `[y](#unsafe-link-removed)`\n```\n"


def test_backslash_then_entity_is_decoded_like_marked_does() -> None:
    # marked drops the backslash and the browser decodes the entity in href="...".
    assert neutralize_html("[x](\\&#106;avascript:alert(1))") == f"[x]({REMOVED_LINK})"


def test_final_check_falls_back_when_code_detection_goes_wrong(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Pretend everything is code: the final parse must catch the raw HTML that survives.
    class EverythingIsCode(_sanitize._Scan):
        def __init__(self, text: str) -> None:
            self.kept = _sanitize._Ranges([(0, len(text))])
            self.blocks = _sanitize._Ranges([])
            self.quotes: set[int] = set()

    monkeypatch.setattr(_sanitize, "_Scan", EverythingIsCode)
    for attack in ATTACKS:
        assert_renders_safely(neutralize_html(attack))
    assert neutralize_html("<img src=x onerror=alert(1)>") == "&lt;img src=x onerror=alert(1)>"


# --- what must keep working ----------------------------------------------------------------------

UNCHANGED = [
    "# Title\n\nSome *emphasis*, **strong**, and `code`.\n",
    "- one\n- two\n  - nested\n\n1. first\n2. second\n",
    "| a | b |\n|---|:-:|\n| *x* | `y` |\n| 1 | [link](https://example.com) |\n",
    "See [docs](https://example.com/a_(b)?q=1#frag) and [home](/index.html).\n",
    "[mail](mailto:a@example.com), [anchor](#section), [rel](../x.md), [bare](x)\n",
    '[ref][r]\n\n[r]: https://example.com "Title"\n',
    "![alt](https://example.com/x.png)\n",
    "<https://example.com> is not kept as a link, but this is: https://example.com\n",
    "> quoted\n> > nested x > y\n",
    "x > y and y >= z\n",
    '```html\n<script>alert(1)</script>\n<div onclick="x">\n```\n',
    "~~~\n<b>tilde</b>\n~~~\n",
    "````md\n```html\n<b>nested fence</b>\n```\n````\n",
    "```\n<b>unclosed fence runs to the end\n\n<i>still code</i>\n",
    "text\n\n    <b>indented code</b>\n    if a < b: pass\n",
    'Here is the page:\n```html\n<div class="x">hi</div>\n```\nDone.\n',
    "- use `Vec<T>`\n- and `Option<&str>`\n  - nested `a<b>`\n\n> quoted `<br>`\n",
    "Use `<b>` or ``a ` <i>`` or `` `<br>` ``.\n",
    "Generic `Vec<T>` after a [link](https://x.y) is fine.\n",
    "```bash\necho $HOME < in > out\n```\n\nNo math here.\n",
    "Math $a + b$ and $$\\frac{1}{2}$$ stay.\n",
    '{"json": [1, 2]} and *a* _b_ ~~c~~\n',
]


@pytest.mark.parametrize("markdown", UNCHANGED)
def test_ordinary_markdown_is_unchanged(markdown: str) -> None:
    assert neutralize_html(markdown) == markdown.replace(
        "<https://example.com>", "&lt;https://example.com>"
    )


def test_code_blocks_are_byte_identical_amid_escaped_text() -> None:
    fence = '```python\nif a < b:\n    html = "<script>alert(1)</script>"\n```\n'
    indented = "    <img src=x onerror=alert(1)>\n"
    doc = f"<b>bold?</b>\n\n{fence}\n<i>x</i>\n\n{indented}\nand `<code>` <u>u</u>"
    out = neutralize_html(doc)
    assert fence in out and indented in out and "`<code>`" in out
    assert "&lt;b>bold?&lt;/b>" in out and "&lt;u>u&lt;/u>" in out
    assert_renders_safely(out)


def test_less_than_renders_visibly() -> None:
    out = neutralize_html("a < b and c<d and <b>not bold</b> and <!-- x --> <?x?> x<=1")
    # Only a "<" that could open a tag, comment or autolink needs escaping.
    assert out == "a < b and c&lt;d and &lt;b>not bold&lt;/b> and &lt;!-- x --> &lt;?x?> x<=1"
    assert visible_text(out) == "a < b and c<d and <b>not bold</b> and <!-- x --> <?x?> x<=1"


def test_math_with_bare_less_than_is_unchanged() -> None:
    # JupyterLab escapes math itself; an "&lt;" there would show as "&lt;".
    assert neutralize_html("$x < y$ and $$a <= b$$") == "$x < y$ and $$a <= b$$"


def test_backslash_escaped_less_than_keeps_showing_less_than() -> None:
    out = neutralize_html("An escaped \\<b>, an escaped backslash \\\\<i>.")
    assert out == "An escaped &lt;b>, an escaped backslash \\\\&lt;i>."
    assert visible_text(out) == "An escaped <b>, an escaped backslash \\<i>."


def test_blockquotes_still_work() -> None:
    out = neutralize_html("> x > y\n> <b>\n")
    assert out == "> x > y\n> &lt;b>\n"
    assert "<blockquote>" in MarkdownIt("commonmark").render(out)


def test_line_endings_become_newlines() -> None:
    assert neutralize_html("a\r\n```\r\n<b>\r\n```\r\n") == "a\n```\n<b>\n```\n"


def test_escape_html() -> None:
    assert (
        escape_html("<a href=\"x\">'&'</a>")
        == "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;&#x27;&lt;/a&gt;"
    )


# --- properties ----------------------------------------------------------------------------------

FRAGMENTS = [
    "<", ">", "/", "=", '"', "'", "`", "``", "```", "~~~", "    ", "\n", "\n\n", " ", "\t", "[",
    "]", "(", ")", "!", ":", "&", "#", ";", "\\", "|", "-", "*", "> ", "$", "x", "a", "img",
    "script", "svg", "src=x", "onerror=alert(1)", "javascript:", "JaVa", "data:", "&#x09;",
    "&colon;", "alert(1)", "<!--", "-->", "<img src=x onerror=alert(1)>", "<b>", "</b>", "[x](",
    "]: ", "https://a", "1. ", "- ", "\\begin{x}", "\\end{x}",
]  # fmt: skip
markdownish = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join) | st.text(max_size=60)


@given(markdownish)
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_text_renders_only_markdown_tags(text: str) -> None:
    out = neutralize_html(text)
    assert_renders_safely(out)
    assert neutralize_html(out) == out


@given(st.text(alphabet=st.characters(blacklist_characters='<]"\r'), max_size=80))
def test_text_without_angle_or_bracket_is_unchanged(text: str) -> None:
    assert neutralize_html(text) == text


code_line = st.text(
    alphabet=st.characters(blacklist_characters="`~$\\\n\r", blacklist_categories=["Cs", "Cc"]),
    max_size=30,
)
prose = st.text(alphabet=st.sampled_from(list("ab <>*_=\"'/")), max_size=30)


@given(prose, st.lists(code_line, min_size=1, max_size=5), prose)
def test_fenced_code_survives_byte_for_byte(before: str, body: list[str], after: str) -> None:
    fence = "```\n" + "\n".join(body) + "\n```\n"
    out = neutralize_html(f"{before}\n\n{fence}\n{after}")
    assert fence in out
    assert_renders_safely(out)
