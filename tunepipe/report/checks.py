"""Checks that a written report is whole: every section present, every image a real picture.

Used by the tests and usable on any report.html (`problems(path)`), e.g. after a CI smoke run.
A check returns a list of human-readable problems; an empty list means the report passed.
"""

from __future__ import annotations

import base64
import binascii
import io
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
from matplotlib.image import imread

from tunepipe.report.html import SECTION_IDS

PNG_PREFIX = "data:image/png;base64,"


class _Collector(HTMLParser):
    """Collects element ids, <img> sources and external references of an HTML document."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.images: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.append(a["id"] or "")
        if tag == "img":
            self.images.append(a.get("src") or "")
        for key in ("src", "href"):
            ref = a.get(key) or ""
            if ref and not ref.startswith(("#", "data:")):
                self.external.append(ref)  # a self-contained page links nothing outside itself
        if tag == "script":
            self.external.append("<script>")


def parse(html: str) -> _Collector:
    """Parse an HTML string into its ids, image sources and external references."""
    collector = _Collector()
    collector.feed(html)
    return collector


def missing_sections(html: str, required: tuple[str, ...] = SECTION_IDS) -> list[str]:
    """The required section ids that the page lacks."""
    ids = set(parse(html).ids)
    return [s for s in required if s not in ids]


def image_problem(src: str) -> str | None:
    """Why an <img> source is not a real embedded PNG picture, or None when it is one.

    A picture is real when it decodes as a PNG and its pixels are not all one colour (a blank
    figure, e.g. an empty axes that autoscaled on NaN, fails this).
    """
    if not src.startswith(PNG_PREFIX):
        return f"not a base64 PNG data URI: {src[:40]!r}"
    try:
        raw = base64.b64decode(src[len(PNG_PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        return f"bad base64: {exc}"
    if not raw:
        return "empty image"
    try:
        pixels = imread(io.BytesIO(raw), format="png")
    except (OSError, ValueError, SyntaxError) as exc:
        return f"does not decode as PNG: {exc}"
    return "blank image (a single colour)" if is_blank(pixels) else None


def is_blank(pixels: np.ndarray) -> bool:
    """True when an image has no pixels or all its pixels have the same colour."""
    return pixels.size == 0 or float(np.var(pixels)) == 0.0


def problems(path: str | Path, required: tuple[str, ...] = SECTION_IDS) -> list[str]:
    """Everything wrong with a report.html: missing sections, broken images, external refs."""
    doc = parse(Path(path).read_text(encoding="utf-8"))
    found = [f"missing section id={s!r}" for s in required if s not in set(doc.ids)]
    for i, src in enumerate(doc.images):
        issue = image_problem(src)
        if issue:
            found.append(f"image {i}: {issue}")
    found += [f"external reference {ref!r}" for ref in doc.external]
    return found
