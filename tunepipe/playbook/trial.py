"""One model + optimizer as a trial would build it, for the sanity stage's short runs.

Reuses the trainable's own pieces (tunepipe.train.loop: Hyper, make_optimizer, trial_seed), so
what the sanity stage checks is what the search will train.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tunepipe.config import StudyConfig
from tunepipe.data import PreparedData
from tunepipe.models import build_model, model_spec, task_head
from tunepipe.models.heads import TaskHead
from tunepipe.train.loop import Hyper, make_optimizer, trial_seed


@dataclass
class TrialSetup:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    hp: Hyper
    head: TaskHead
    loss_fn: torch.nn.Module
    config: dict[str, Any]
    seed: int


def set_up(study: StudyConfig, data: PreparedData, config: dict[str, Any]) -> TrialSetup:
    """Build the model and optimizer a trial with `config` would start from (same seed rule)."""
    seed = trial_seed(study.seed, config)
    torch.manual_seed(seed)  # model init draws from torch's generator, as in run_trial
    model = build_model(model_spec(study.model, config), data.input_shape, data.output_dim)
    if study.init_from:  # the sanity stage checks the start the trials really have
        from tunepipe.train.pretrained import load_pretrained

        load_pretrained(model, study.init_from)
    hp = Hyper.of(study, config)
    head = task_head(data.task)
    return TrialSetup(model, make_optimizer(model, hp), hp, head, head.loss_fn(), config, seed)


def chance_loss(data: PreparedData) -> float:
    """The chance-level loss (`PreparedData.chance_loss`: one definition for every check)."""
    return data.chance_loss()


def tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Copies (the prepared arrays may be read-only views from Ray's object store)."""
    return torch.from_numpy(np.array(x)), torch.from_numpy(np.array(y))


def subset(data: PreparedData, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` training rows drawn without replacement by a seeded generator (house style 7)."""
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(data.train), size=min(n, len(data.train)), replace=False))
    return tensors(data.train.x[idx], data.train.y[idx])
