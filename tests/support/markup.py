"""Checking HTML that nbconvo hands a front end, as a browser would read it."""

from __future__ import annotations

import re
from html.parser import HTMLParser

# What nbconvo's outputs may contain: the renderer's allowlist, plus the few tags of its
# own listings (footer, comparison table).
TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "em", "strong", "s", "del",
    "code", "pre", "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr",
    "th", "td", "span", "div", "sub", "caption", "b",
}  # fmt: skip
ATTRIBUTES = {"href", "title", "target", "rel", "class", "style", "start"}
SAFE_SCHEMES = {"http", "https", "mailto"}
# Style properties nbconvo writes itself (code colours, table alignment, the compare table).
STYLE_PROPERTIES = {
    "color", "font-weight", "font-style", "text-align", "vertical-align", "table-layout", "width",
    "background-color", "padding", "border-radius",
}  # fmt: skip


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.comments: list[str] = []
        self.others: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)

    def handle_decl(self, decl: str) -> None:
        self.others.append(decl)

    def handle_pi(self, data: str) -> None:
        self.others.append(data)

    def unknown_decl(self, data: str) -> None:
        self.others.append(data)


def parse(rendered: str) -> Page:
    page = Page()
    page.feed(rendered)
    page.close()
    return page


def dangerous_url(value: str) -> bool:
    """Not an absolute http, https or mailto address (relative ones included: nbconvo
    keeps none). The value is entity-decoded; browsers drop controls and whitespace."""
    cleaned = re.sub(r"[\x00-\x20\x7f]", "", value).lower()
    scheme = re.match(r"([a-z][a-z0-9+.\-]*):", cleaned)
    return scheme is None or scheme.group(1) not in SAFE_SCHEMES


def safety_problems(html: str) -> list[str]:
    """Everything in ``html`` that could run, load or restyle beyond nbconvo's own rules."""
    page = parse(html)
    problems = [f"comment {c!r}" for c in page.comments] + [f"markup {o!r}" for o in page.others]
    for tag, attrs in page.tags:
        if tag not in TAGS:
            problems.append(f"tag <{tag}>")
        for name, value in attrs:
            if name not in ATTRIBUTES:
                problems.append(f"attribute {name}= on <{tag}>")
            elif name == "href" and (value is None or dangerous_url(value)):
                problems.append(f"href {value!r}")
            elif name == "style":
                for declaration in filter(None, (value or "").split(";")):
                    prop, _, val = declaration.partition(":")
                    if prop.strip().lower() not in STYLE_PROPERTIES or "url(" in val.lower():
                        problems.append(f"style {declaration!r}")
    return problems
