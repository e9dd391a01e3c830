"""The renderer without a browser: model Markdown → safe HTML (``nbconvo._html``), whole
and streamed, and the streamed answer's outputs (``nbconvo._display``).

The payload corpus (tests/support/corpus.py) is the one the browsers see in
tests/integration/test_xss_browser.py; here each payload's HTML is read as a browser
would (tests/support/markup.py) and must hold nothing that runs, loads or restyles."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from bs4 import BeautifulSoup
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from nbconvo import _html
from nbconvo._display import StreamingMarkdown
from nbconvo._html import MarkdownStream, render_blocks, render_markdown
from tests.support import reliability_counts as counts
from tests.support.corpus import (
    CATEGORIES,
    ORDINARY,
    ORDINARY_EXPECT,
    PAYLOADS,
    SECTIONS,
    answer,
    instantiate,
    joined,
    pieces,
)
from tests.support.helpers import NotebookOutputs, notebook_outputs
from tests.support.markup import safety_problems

LEAK = "http://127.0.0.1:9/leak"


def soup(html: str) -> BeautifulSoup:
    return BeautifulSoup(html, "html.parser")


# --- ordinary Markdown still renders -------------------------------------------------


def test_ordinary_markdown_renders_as_elements() -> None:
    page = soup(render_markdown(ORDINARY))
    for selector, at_least in ORDINARY_EXPECT:
        assert len(page.select(selector)) >= at_least, selector
    assert safety_problems(str(page)) == []


def test_math_is_kept_for_mathjax_and_prices_stay_prose() -> None:
    page = soup(render_markdown("A lift with $p < 0.05$ costs $5 to $10 a seat.\n\n$$\n\\sum_i x_i\n$$\n"))
    container = page.select_one("div.nbconvo-md")
    assert container is not None and "mathjax_ignore" in container["class"]  # prose untouched
    inline = page.select("span.math.mathjax_process")
    assert [span.get_text() for span in inline] == ["\\(p < 0.05\\)"]
    assert [div.get_text() for div in page.select("div.math.display")] == ["\\[\\sum_i x_i\\]"]
    assert "costs $5 to $10 a seat." in container.get_text()


def test_code_is_coloured_once_sealed_and_its_text_is_exact() -> None:
    code = 'def at_risk(a) -> bool:\n    return a.seats < 0.66 * a.bought and "<div>" != "&amp;"\n'
    page = soup(render_markdown(f"```python\n{code}```\n\n```nosuchlanguage\n{code}```\n"))
    blocks = page.select("div.nbconvo-code pre code")
    assert [block.get_text() for block in blocks] == [code, code]
    coloured = blocks[0].select("span[style]")
    assert coloured and all("var(--jp-mirror-editor-" in span["style"] for span in coloured)
    assert blocks[1].select("span") == []  # an unknown language is shown plain


def test_images_are_links_to_their_address_and_never_load() -> None:
    page = soup(
        render_markdown(
            "![chart](http://127.0.0.1:9999/c.png?secret=43) ![d](data:image/png;base64,AAAA) "
            '<img src="http://127.0.0.1:9999/raw-img.png?secret=42">'
        )
    )
    assert page.select("img, [src], [srcset]") == []
    links = page.select("a")
    assert [a["href"] for a in links] == ["http://127.0.0.1:9999/c.png?secret=43"]
    assert links[0].get_text() == "🖼 chart (http://127.0.0.1:9999/c.png?secret=43)"
    assert links[0]["rel"] == ["noopener", "noreferrer", "nofollow"] and links[0]["target"] == "_blank"
    text = page.get_text()
    assert "🖼 d" in text and '<img src="http://127.0.0.1:9999/raw-img.png?secret=42">' in text


@pytest.mark.parametrize(
    ("markdown", "href"),
    [
        ("[a](https://example.org/x)", "https://example.org/x"),
        ("[a](mailto:team@example.org)", "mailto:team@example.org"),
        ("<https://example.org>", "https://example.org"),
        ("[a](javascript:alert(1))", None),
        ("[a](jav&#x61;script:alert(1))", None),
        ("[a](relative/page.html)", None),
        ("[a][r]\n\n[r]: vbscript:msgbox(1)", None),
    ],
)
def test_links_keep_only_web_and_mail_addresses(markdown: str, href: str | None) -> None:
    links = soup(render_markdown(markdown)).select("a[href]")
    assert [a["href"] for a in links] == ([href] if href else [])


# --- the payload corpus --------------------------------------------------------------


def test_the_corpus_covers_every_category() -> None:
    assert len(PAYLOADS) >= 200
    for category in CATEGORIES:
        assert sum(p.category == category for p in PAYLOADS) >= 12, category


@pytest.mark.parametrize("index", range(len(PAYLOADS)), ids=[p.name for p in PAYLOADS])
def test_payload_renders_inert_whole_and_streamed(index: int) -> None:
    text = instantiate(PAYLOADS[index], index, LEAK)
    whole = render_markdown(joined(text))
    assert safety_problems(whole) == [], whole
    assert f"{LEAK}/{index}" not in " ".join(
        str(tag.get(name, "")) for tag in soup(whole).find_all(True) for name in ("src", "srcset")
    )
    # Streamed in the payload's own pieces, then character by character near the end.
    stream = MarkdownStream()
    shown: list[str] = []
    for piece in pieces(text):
        stream.feed(piece)
        step = stream.step(suffix=" ▌")
        shown += [step.sealed_html, step.open_html]
    for step_html in shown:
        assert safety_problems(step_html) == [], step_html
    assert stream.final() == render_blocks(joined(text))
    counts.add("xss: payloads rendered (whole and streamed)", 1)


# --- streaming: the same result, at O(new text) a step ---------------------------------


@settings(max_examples=40, deadline=None, derandomize=True, phases=[Phase.generate])
@given(
    start=st.integers(0, len(SECTIONS) - 1),
    cuts=st.lists(st.integers(1, 40), min_size=1, max_size=400),
    steps=st.lists(st.booleans(), min_size=1, max_size=400),
)
def test_a_streamed_answer_ends_exactly_as_rendered_whole(
    start: int, cuts: list[int], steps: list[bool]
) -> None:
    text = "".join(SECTIONS[start:] + SECTIONS[:start])[:12_000]
    stream = MarkdownStream()
    shown = ""  # the source of what left the live output: shown for good
    position = i = 0
    while position < len(text):
        size = cuts[i % len(cuts)]
        stream.feed(text[position : position + size])
        position += size
        if steps[i % len(steps)]:
            step = stream.step(suffix=" ▌")
            shown += step.sealed_source + step.moved_source
            assert shown + step.open_source == text[:position]  # nothing lost or doubled
        i += 1
    assert stream.final() == render_blocks(text)


def test_a_reference_defined_after_its_use_is_resolved_in_the_final_answer() -> None:
    stream = MarkdownStream()
    for line in ["See [the docs][d].\n", "\n", "More text.\n", "\n", "[d]: https://example.org/d\n"]:
        stream.feed(line)
        stream.step()
    assert '<a href="https://example.org/d"' in stream.final()


@pytest.fixture
def parsed_characters(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    md = _html._markdown()
    seen: list[int] = []
    original = md.parse

    def counting(src: str, env: Any = None) -> Any:
        seen.append(len(src))
        return original(src, env)

    monkeypatch.setattr(md, "parse", counting)
    yield seen


@pytest.mark.parametrize("size", [10_240, 102_400])
def test_each_step_parses_the_open_block_not_the_answer(
    parsed_characters: list[int], size: int
) -> None:
    """Counted, not timed: the text one step hands markdown-it does not grow with the
    answer (before the rewrite it was the whole answer, up to 8 times)."""
    text = answer(size)
    tokens = _html._markdown().parse(text)
    lines = [0, *(i + 1 for i, c in enumerate(text) if c == "\n")]
    spans = [tokens[first].map for first, _ in _html._top_level(tokens)]
    largest_block = max(lines[end] - lines[start] for start, end in spans if start < end < len(lines))
    parsed_characters.clear()
    stream = MarkdownStream()
    for position in range(0, len(text), 40):  # ≈10 tokens a step
        stream.feed(text[position : position + 40])
        stream.step(suffix=" ▌")
    assert len(parsed_characters) >= len(text) // 40  # every step renders its open block
    assert max(parsed_characters) <= largest_block + 200 < len(text) / 4


# --- the streamed answer's outputs -----------------------------------------------------


def stream_into_cell(text: str, tokens_per_update: int = 10) -> tuple[StreamingMarkdown, NotebookOutputs, list[int]]:
    """``text`` through ``StreamingMarkdown`` as ≈4-character tokens, an update every
    ``tokens_per_update`` tokens (a fake clock), into a notebook-like publisher; returns
    the bytes each update sent."""
    now = [0.0]
    sent: list[int] = []
    output = StreamingMarkdown(max_rate=20.0, clock=lambda: now[0], cpu=lambda: 0.0)
    with notebook_outputs() as publisher:
        original = publisher.publish

        def publish(data: dict[str, Any], *args: Any, **kwargs: Any) -> None:
            sent.append(len(json.dumps(data)))
            original(data, *args, **kwargs)

        publisher.publish = publish  # type: ignore[method-assign]
        output.start()
        for i, position in enumerate(range(0, len(text), 4)):
            if i % tokens_per_update == 0:
                now[0] += 0.05
            output.feed(text[position : position + 4])
        output.finish(text)
    return output, publisher, sent[1:-1]  # the placeholder and the final answer aside


def test_a_long_answer_streams_in_bounded_updates_and_ends_as_one_output() -> None:
    text = answer(102_400)
    output, cell, sent = stream_into_cell(text)
    assert output.outputs > 10  # sealed blocks stayed in earlier outputs
    assert output.updates >= len(text) // 40 - 1
    assert cell.clears == 1 and len(cell.outputs) == 1
    assert cell.outputs[0]["data"] == {"text/html": render_markdown(text), "text/plain": text}
    _, _, small = stream_into_cell(answer(1024))
    mean = sum(sent) / len(sent)
    assert mean <= 1.5 * sum(small) / len(small), (mean, sum(small) / len(small))


def test_a_short_answer_is_updated_in_place() -> None:
    output, cell, _ = stream_into_cell("Just **one** line.")
    assert output.outputs == 1 and cell.clears == 0
    assert cell.outputs[0]["data"]["text/plain"] == "Just **one** line."
    assert "<strong>one</strong>" in cell.outputs[0]["data"]["text/html"]


def test_updates_wait_in_proportion_to_their_cost() -> None:
    """However fast the model, the display takes at most ``share`` of a core: after an
    update that cost 5 ms of CPU the next waits 5 / 0.03 = 167 ms, not the 50 ms of 20/s."""
    now, cpu = [0.0], [0.0]

    def spend() -> float:
        cpu[0] += 0.005  # read before and after each update: 5 ms an update
        return cpu[0]

    output = StreamingMarkdown(max_rate=20.0, clock=lambda: now[0], cpu=spend, share=0.03)
    with notebook_outputs():
        output.start()
        for _ in range(10_000):  # 10,000 tokens over 2 seconds
            now[0] += 0.0002
            output.feed("word ")
        output.finish()
    assert output.updates == 12  # 2 s / 0.167 s
