"""Parsing rendered Markdown to check what a browser would do with it."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from markdown_it import MarkdownIt

MARKDOWN_TAGS = {
    "p", "em", "strong", "code", "pre", "a", "img", "ul", "ol", "li", "blockquote", "hr",
    "br", "table", "thead", "tbody", "tr", "th", "td", "h1", "h2", "h3", "h4", "h5", "h6",
}  # fmt: skip
SAFE_SCHEMES = {"http", "https", "mailto"}


class KeepLinks(MarkdownIt):
    """Like JupyterLab's trusted renderer: raw HTML and every link destination pass through."""

    def validateLink(self, url: str) -> bool:
        return True

    def normalizeLink(self, url: str) -> str:
        return url


RENDERERS = [MarkdownIt("commonmark"), KeepLinks("commonmark")]


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
    # The attribute value is already entity-decoded; browsers drop controls and whitespace.
    cleaned = re.sub(r"[\x00-\x20\x7f]", "", value).lower()
    scheme = re.match(r"([a-z][a-z0-9+.\-]*):", cleaned)
    return scheme is not None and scheme.group(1) not in SAFE_SCHEMES
