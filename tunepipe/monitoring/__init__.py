"""Monitoring: study metrics for Prometheus, Grafana dashboards, the live status view.

`names` (the metric catalogue) and `dashboards` (Grafana JSON built as plain data) import nothing
heavy; `metrics` holds the Ray Tune callback that exports the study's metrics and writes the run
folder's status.json; `grafana` exports and pushes dashboards; `status` renders the live view.
See docs/monitoring.md.
"""
