"""Reading a written report.html back: one section's HTML, its table rows as plain text."""

from __future__ import annotations

import re
from html import unescape

_TAGS = re.compile(r"<[^>]+>")


def section(html: str, sid: str) -> str:
    """The inner HTML of the section with id `sid` (AssertionError if absent)."""
    found = re.search(rf'<section id="{re.escape(sid)}">(.*?)</section>', html, re.S)
    assert found, f"no section {sid!r}"
    return found.group(1)


def text(fragment: str) -> str:
    """The visible text of an HTML fragment."""
    return unescape(_TAGS.sub("", fragment))


def rows(fragment: str) -> list[list[str]]:
    """Every body row of the tables in `fragment`, as lists of cell texts."""
    body = "".join(re.findall(r"<tbody>(.*?)</tbody>", fragment, re.S))
    return [
        [text(c) for c in re.findall(r"<td>(.*?)</td>", r, re.S)]
        for r in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


def cards(fragment: str) -> dict[str, str]:
    """The summary's cards as {label: value text}."""
    pairs = re.findall(r'<div class="k">(.*?)</div><div class="v">(.*?)</div>', fragment, re.S)
    return {text(k): text(v) for k, v in pairs}


def captions(fragment: str) -> list[str]:
    """The file names under the section's pictures."""
    return re.findall(r"<figcaption>(.*?)</figcaption>", fragment)
