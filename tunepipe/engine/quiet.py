"""Ray's messages that are not the user's business in tunepipe's output.

Ray's own resume hint (`Tuner.restore(...)`) names an API the user never called; tunepipe prints
its own (`tunepipe resume RUN_DIR`). Ray's "Failed to fetch metrics" lists every trial that had
not reported yet when a study was interrupted; tunepipe's results read the trial logs
themselves. Ray's INFO lines about uploading a job's working folder say nothing actionable.
Each is dropped by a filter on the one Ray logger that emits it; everything else Ray logs stays.
"""

from __future__ import annotations

import logging

RAY_NOISE = {
    "ray.tune.tune": ("Resume experiment with", "Resume training with"),
    "ray.tune.analysis.experiment_analysis": ("Failed to fetch metrics",),
    "ray.dashboard.modules.dashboard_sdk": ("Uploading package",),
    "ray._private.runtime_env.packaging": ("Pushing file package", "Creating a file package"),
}


class DropMessages(logging.Filter):
    """Drop the records whose message contains one of `fragments`."""

    def __init__(self, fragments: tuple[str, ...]) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(f in message for f in self.fragments)


def quiet_ray() -> None:
    """Install the filters (once per logger; calling again changes nothing)."""
    for name, fragments in RAY_NOISE.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropMessages) for f in logger.filters):
            logger.addFilter(DropMessages(fragments))
