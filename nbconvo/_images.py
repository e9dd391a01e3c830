"""Images in a prompt: each provider's limits, scaling down to them, and the tokens each
provider's published rule charges for an image.

* OpenAI (and Azure, and the compatible servers): the image is fitted in 2048×2048,
  then its short side brought down to 768; 85 tokens plus 170 per 512-pixel tile.
* Anthropic: the long edge is brought down to 1568 pixels (the API does so itself
  otherwise); about width × height / 750 tokens. At most 5 MB an image.
* Gemini: 258 tokens when both sides are at most 384 pixels, else 258 per 768-pixel
  tile.

Scaling uses Pillow, keeps the aspect ratio and is deterministic (the same bytes in, the
same bytes out), so a cassette made from a scaled image replays. Decoding refuses images
of more than 100 megapixels (a decompression bomb), in one line.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from nbconvo._errors import UsageError
from nbconvo._parts import DocumentPart, ImagePart

Rule = Literal["openai", "anthropic", "gemini"]
MAX_PIXELS = 100_000_000
MEDIA_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}


@dataclass(frozen=True)
class ImageLimits:
    long_edge: int  # pixels
    max_bytes: int


LIMITS: dict[Rule, ImageLimits] = {
    "openai": ImageLimits(2048, 20 * 1024 * 1024),
    "anthropic": ImageLimits(1568, 5 * 1024 * 1024),
    "gemini": ImageLimits(3072, 7 * 1024 * 1024),
}


def rule_for(provider: str) -> Rule:
    """Which published image rule a provider prefix follows."""
    if provider == "anthropic":
        return "anthropic"
    if provider == "gemini":
        return "gemini"
    return "openai"


def _open(data: bytes):  # type: ignore[no-untyped-def]
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        image = Image.open(io.BytesIO(data))
        image.size  # noqa: B018  (reads the header)
    except Image.DecompressionBombError:
        raise UsageError(
            f"the image has more than {MAX_PIXELS:,} pixels: scale it down first; nothing was sent"
        ) from None
    except Exception as error:
        raise UsageError(
            f"could not read the image ({type(error).__name__}): attach a PNG, JPEG, GIF or "
            "WebP file; nothing was sent"
        ) from None
    if image.width * image.height > MAX_PIXELS:
        raise UsageError(
            f"the image has more than {MAX_PIXELS:,} pixels: scale it down first; nothing was sent"
        )
    return image


@lru_cache(maxsize=256)
def size_of(part: ImagePart) -> tuple[int, int]:
    """(width, height) in pixels."""
    image = _open(part.data)
    return int(image.width), int(image.height)


def image_part(data: bytes, name: str | None = None) -> ImagePart:
    """An image part from a file's or an object's bytes: its media type read from the
    bytes themselves, its size checked."""
    image = _open(data)
    media_type = MEDIA_TYPES.get(str(image.format))
    if media_type is None:
        raise UsageError(
            f"images in {image.format} are not taken: attach a PNG, JPEG, GIF or WebP file; "
            "nothing was sent"
        )
    return ImagePart(data, media_type, name=name)


@lru_cache(maxsize=64)
def fit(part: ImagePart, rule: Rule) -> ImagePart:
    """``part`` within ``rule``'s long edge and bytes: unchanged when it is, else scaled
    down (PNG stays PNG while it fits; else JPEG)."""
    limits = LIMITS[rule]
    width, height = size_of(part)
    if max(width, height) <= limits.long_edge and len(part.data) <= limits.max_bytes:
        return part
    from PIL import Image

    image = _open(part.data)
    scale = min(1.0, limits.long_edge / max(width, height))
    while True:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        resized = image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB")
        resized = resized.resize(size, resample=Image.Resampling.BICUBIC)
        out = io.BytesIO()
        if part.media_type == "image/png":
            resized.save(out, format="PNG", optimize=False)
            media_type = "image/png"
        if part.media_type != "image/png" or out.tell() > limits.max_bytes:
            out = io.BytesIO()
            resized.convert("RGB").save(out, format="JPEG", quality=85)
            media_type = "image/jpeg"
        if out.tell() <= limits.max_bytes or scale < 0.05:
            return ImagePart(out.getvalue(), media_type, name=part.name)
        scale *= 0.75


def image_tokens(width: int, height: int, rule: Rule) -> int:
    """Tokens ``rule``'s provider charges for an image of this size (see the module doc)."""
    if width <= 0 or height <= 0:
        return 0
    if rule == "anthropic":
        scale = min(1.0, 1568 / max(width, height))
        return max(1, math.ceil(width * scale * height * scale / 750))
    if rule == "gemini":
        if width <= 384 and height <= 384:
            return 258
        return math.ceil(width / 768) * math.ceil(height / 768) * 258
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    short = min(w, h)
    if short > 768:
        w, h = w * 768 / short, h * 768 / short
    return 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)


def tokens_of(part: ImagePart, rule: Rule) -> int:
    """The tokens of an image part for ``rule`` (an unreadable one counts as a 1024² one)."""
    try:
        width, height = size_of(part)
    except UsageError:
        width = height = 1024
    return image_tokens(width, height, rule)


THUMBNAIL_EDGE = 160


@lru_cache(maxsize=64)
def thumbnail(part: ImagePart, edge: int = THUMBNAIL_EDGE) -> ImagePart:
    """A small PNG of ``part`` (long edge ``edge``) for the widget: drawn again here, so
    what the browser gets is always a plain PNG of bounded size."""
    from PIL import Image

    image = _open(part.data).convert("RGBA")
    image.thumbnail((edge, edge), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return ImagePart(out.getvalue(), "image/png", name=part.name)


# -- documents (PDFs) ---------------------------------------------------------------------

DOCUMENT_LIMITS: dict[Rule, int] = {  # bytes of one PDF in a request
    "openai": 32 * 1024 * 1024,
    "anthropic": 32 * 1024 * 1024,
    "gemini": 20 * 1024 * 1024,
}
# Tokens a page costs: OpenAI and Anthropic read each page's text and an image of it
# (Anthropic's guide: 1,500 to 3,000 a page; the lower end here), Gemini 258 a page.
PAGE_TOKENS: dict[Rule, int] = {"openai": 1500, "anthropic": 1500, "gemini": 258}
_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


def document_part(data: bytes, name: str | None = None) -> DocumentPart:
    """A PDF's part, its pages counted; anything that is not a PDF is one line."""
    if not data.startswith(b"%PDF-"):
        raise UsageError(f"{name or 'the file'} is not a PDF (no %PDF- header); nothing was sent")
    return DocumentPart(data, "application/pdf", name=name, pages=len(_PAGE.findall(data)) or 1)


def check_document(part: DocumentPart, rule: Rule, label: str) -> DocumentPart:
    """``part`` if ``rule``'s provider takes a PDF that large, else a one-line refusal."""
    limit = DOCUMENT_LIMITS[rule]
    if len(part.data) > limit:
        raise UsageError(
            f"{part.name or 'the PDF'} is {len(part.data) / 1024 / 1024:.1f} MB: {label} takes "
            f"PDFs up to {limit // 1024 // 1024} MB; split it; nothing was sent"
        )
    return part


def document_tokens(part: DocumentPart, rule: Rule) -> int:
    return max(part.pages, 1) * PAGE_TOKENS[rule]
