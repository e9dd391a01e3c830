"""Images in a prompt (issue #16): each provider's published token rule, scaling down to
each provider's limits (deterministically), and images from notebook objects."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from nbconvo._errors import UsageError
from nbconvo._images import LIMITS, MAX_PIXELS, fit, image_part, image_tokens, size_of, tokens_of
from nbconvo._parts import ImagePart, TextPart
from nbconvo._tokens import count_content
from nbconvo._values import image_note, image_of


def png(width: int, height: int, noise: bool = False, mode: str = "RGB") -> bytes:
    if noise:
        pixels = np.random.default_rng(width * height).integers(0, 256, (height, width, 3), dtype=np.uint8)
        image = Image.fromarray(pixels, "RGB")
    else:
        image = Image.new(mode, (width, height), "white")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


# -- the published rules ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "rule", "tokens"),
    [
        # OpenAI's worked examples: 1024² → 4 tiles; 2048×4096 → 768×1536 → 6 tiles
        ((1024, 1024), "openai", 765),
        ((2048, 4096), "openai", 1105),
        ((512, 512), "openai", 255),
        # Anthropic: width × height / 750, after the long edge comes down to 1568
        ((1000, 1000), "anthropic", 1334),
        ((1092, 1092), "anthropic", 1590),
        ((3136, 3136), "anthropic", 3279),
        # Gemini: 258 up to 384², else 258 per 768-pixel tile
        ((384, 384), "gemini", 258),
        ((1000, 1000), "gemini", 1032),
        ((640, 480), "gemini", 258),
    ],
)
def test_each_providers_published_rule(size: tuple[int, int], rule: str, tokens: int) -> None:
    assert image_tokens(*size, rule) == tokens  # type: ignore[arg-type]


def test_the_meter_counts_an_image_by_the_providers_rule() -> None:
    image = image_part(png(1024, 1024))
    content = (TextPart("what is this?"), image)
    text_tokens = count_content("what is this?")
    assert count_content(content, images="openai") == text_tokens + 765
    assert count_content(content, images="anthropic") == text_tokens + 1399
    assert count_content(content, images="gemini") == text_tokens + 1032
    assert tokens_of(image, "openai") == 765


# -- fitting to each provider's limits ---------------------------------------------------


def test_a_large_image_is_scaled_to_each_long_edge_keeping_its_shape() -> None:
    big = image_part(png(4000, 3000))
    for rule, edge in (("openai", 2048), ("anthropic", 1568), ("gemini", 3072)):
        fitted = fit(big, rule)  # type: ignore[arg-type]
        width, height = size_of(fitted)
        assert max(width, height) == edge and abs(width / height - 4 / 3) < 0.01
        assert fitted.media_type == "image/png"


def test_an_image_within_the_limits_is_sent_as_it_is() -> None:
    small = image_part(png(800, 600))
    assert fit(small, "anthropic") is small


def test_bytes_over_the_limit_become_jpeg_within_it_and_the_same_bytes_each_time() -> None:
    noisy = image_part(png(1500, 1500, noise=True))  # ≈ 6.7 MB of incompressible PNG
    assert len(noisy.data) > LIMITS["anthropic"].max_bytes
    once = fit.__wrapped__(noisy, "anthropic")  # type: ignore[attr-defined]
    again = fit.__wrapped__(noisy, "anthropic")  # type: ignore[attr-defined]
    assert once.media_type == "image/jpeg" and len(once.data) <= LIMITS["anthropic"].max_bytes
    assert once.data == again.data  # deterministic: a cassette made from it replays
    assert fit(noisy, "openai") is noisy  # OpenAI takes 20 MB


def test_bad_images_are_one_line() -> None:
    with pytest.raises(UsageError, match="could not read the image") as info:
        image_part(b"\x89PNG not really")
    assert "\n" not in str(info.value)
    out = io.BytesIO()
    Image.new("1", (12_000, 9_000)).save(out, format="PNG")  # 108 megapixels of nothing
    with pytest.raises(UsageError, match=f"more than {MAX_PIXELS:,} pixels"):
        image_part(out.getvalue())
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, format="TIFF")
    with pytest.raises(UsageError, match="images in TIFF are not taken"):
        image_part(out.getvalue())


# -- images from notebook objects --------------------------------------------------------


def test_a_matplotlib_figure_a_pil_image_and_an_ipython_image() -> None:
    import matplotlib

    matplotlib.use("Agg")
    from IPython.display import Image as IPythonImage
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.8), dpi=100)
    figure.subplots().plot([3, 1, 2])
    drawn = image_of("fig", figure)
    assert isinstance(drawn, ImagePart) and drawn.media_type == "image/png"
    assert image_note("fig", drawn) == "fig: image 640 × 480 px"
    assert image_of("fig", figure) == drawn  # the same figure draws the same bytes
    pil = image_of("im", Image.new("RGB", (30, 20)))
    assert pil is not None and size_of(pil) == (30, 20)
    shown = image_of("disp", IPythonImage(data=png(10, 10)))
    assert shown is not None and shown.data == png(10, 10)
    with pytest.raises(UsageError, match="an Image with no bytes"):
        image_of("remote", IPythonImage(url="https://example.org/a.png", embed=False))
    assert image_of("n", 42) is None


# -- PDFs ----------------------------------------------------------------------------------


def test_a_pdf_part_counts_its_pages_survives_json_and_is_checked_per_provider() -> None:
    import json

    from nbconvo._images import check_document, document_part, document_tokens
    from nbconvo._parts import part_from_json, part_to_json

    pdf = b"%PDF-1.7\n1 0 obj << /Type /Pages /Count 3 >>\n" + b"<< /Type /Page >>\n" * 3
    part = document_part(pdf, name="paper.pdf")
    assert part.pages == 3 and part.media_type == "application/pdf"
    assert part_from_json(json.loads(json.dumps(part_to_json(part)))) == part
    assert "bytes" in repr(part) and "%PDF" not in repr(part)
    assert document_tokens(part, "anthropic") == 4_500 and document_tokens(part, "gemini") == 774
    assert count_content((TextPart("read"), part), images="gemini") == count_content("read") + 774
    big = document_part(b"%PDF-1.7\n" + bytes(21 * 1024 * 1024), name="big.pdf")
    assert check_document(big, "anthropic", "anthropic:x") is big
    with pytest.raises(UsageError, match=r"big\.pdf is 21\.0 MB: gemini:x takes PDFs up to 20 MB"):
        check_document(big, "gemini", "gemini:x")
    with pytest.raises(UsageError, match=r"notes\.pdf is not a PDF"):
        document_part(b"<html>", name="notes.pdf")
