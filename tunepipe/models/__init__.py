"""Model factories with the playbook's defaults (I1, F1, A1, R1, RB1) and task heads (P2)."""

from tunepipe.models.factory import build_model, model_spec
from tunepipe.models.heads import TaskHead, task_head

__all__ = ["TaskHead", "build_model", "model_spec", "task_head"]
