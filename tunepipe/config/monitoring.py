"""The study file's `monitoring:` section (docs/monitoring.md)."""

from __future__ import annotations

from pydantic import Field

from tunepipe.config.common import Strict


class MonitoringConfig(Strict):
    """What a running study exports for Prometheus and Grafana."""

    metrics: bool = Field(
        True,
        description="export the study's metrics through Ray's metrics port (ray_tunepipe_*)",
    )
