"""The playbook's decisions: pure rules over plain numbers, and thin Ray Tune adapters.

Modules here that hold rules import neither Ray nor torch (house style 1); Ray adapters import Ray
lazily so that `import tunepipe_schedulers` stays cheap.

The folder sits beside `tunepipe/` (decisions apart from the engine) under a name no other
distribution uses: a top-level package called plain `schedulers` would be shadowed by, or shadow,
any other installed distribution that ships one, and Ray workers import by that name.
"""

from tunepipe_schedulers.reasons import STOP_REASONS, StopReason

__all__ = ["STOP_REASONS", "StopReason"]
