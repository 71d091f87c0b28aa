"""The study report: plots and one self-contained HTML page from a run folder (docs/report.md).

`write_report` loads matplotlib, so it is imported on first use: `tunepipe results` reads the
trials table from this package and answers at once.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SECTION_IDS", "write_report"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tunepipe.report import html

        return getattr(html, name)
    raise AttributeError(f"module 'tunepipe.report' has no attribute {name!r}")
