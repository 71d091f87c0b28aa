"""The playbook's decisions: pure rules over plain numbers, and thin Ray Tune adapters.

Modules here that hold rules import neither Ray nor torch (house style 1); Ray adapters import Ray
lazily so that `import schedulers` stays cheap.
"""

from schedulers.reasons import STOP_REASONS, StopReason

__all__ = ["STOP_REASONS", "StopReason"]
