"""Kubernetes (KubeRay): manifests for a tuning cluster and the RayJob that runs one study."""
