"""Task heads: the loss and the prediction per playbook P2/A1.

Multi-class: logits + cross-entropy (softmax); binary: one logit + BCE (sigmoid); regression: linear
output + mean squared error on standardised targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


class MaskedMSELoss(nn.Module):
    """Mean squared error over the present targets only: a NaN target (a missing label, kept by
    data.missing_labels: mask) adds nothing to the loss or its gradient. Without NaN it is
    nn.MSELoss."""

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        present = ~torch.isnan(targets)
        diff = torch.where(present, outputs - torch.nan_to_num(targets), 0.0)
        return (diff**2).sum() / present.sum().clamp(min=1)


@dataclass(frozen=True)
class TaskHead:
    task: str

    def loss_fn(self) -> nn.Module:
        return {
            "classification": nn.CrossEntropyLoss,
            "binary": nn.BCEWithLogitsLoss,
            "regression": MaskedMSELoss,
        }[self.task]()

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        """Class ids, 0/1 probabilities, or (standardised) regression values."""
        if self.task == "classification":
            return outputs.softmax(dim=-1)
        if self.task == "binary":
            return outputs.sigmoid()
        return outputs

    def correct(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        """Number of right answers in a batch (None for regression: no accuracy)."""
        if self.task == "classification":
            return (outputs.argmax(dim=-1) == y).sum()
        if self.task == "binary":
            return ((outputs > 0).float() == y).sum()
        return None


def task_head(task: str) -> TaskHead:
    if task not in ("classification", "binary", "regression"):
        raise ValueError(f"unknown task {task!r}")
    return TaskHead(task)
