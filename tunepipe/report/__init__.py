"""The study report: plots and one self-contained HTML page from a run folder (docs/report.md)."""

from tunepipe.report.html import SECTION_IDS, write_report

__all__ = ["SECTION_IDS", "write_report"]
