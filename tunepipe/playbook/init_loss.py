"""The initial-loss check: an untrained net's loss should sit at chance level (P2, P5, I1).

Cross-entropy near ln C (softmax near uniform), BCE near ln 2, regression predictions near the
targets' mean (loss near their variance). Far off means the init, the output scale or the
targets' scale is wrong, and every later decision measured against "the loss before training"
(the divergence rule) is off too.
"""

from __future__ import annotations

import math

import torch

from tunepipe.config import DataConfig
from tunepipe.data import PreparedData
from tunepipe.playbook.result import Check
from tunepipe.playbook.trial import TrialSetup, chance_loss, subset

ROWS = 1024  # enough rows for a stable mean loss, few enough to cost milliseconds
HIGH_RATIO = 1.5  # loss / chance: a random-logit std of ~1.4 already costs ln C + ~1 nat
HIGH_RATIO_REGRESSION = 3.0  # loss = target var + prediction var + bias²: He init adds ~1 var
LOW_RATIO = 0.5  # below half of chance before training: the answer is in the inputs


@torch.no_grad()
def initial_loss(setup: TrialSetup, data: PreparedData) -> tuple[float, torch.Tensor]:
    """Mean loss (dropout off) of the untrained model on up to ROWS training rows; outputs."""
    x, y = subset(data, ROWS, setup.seed)
    setup.model.eval()
    out = setup.model(x)
    return float(setup.loss_fn(out, y).item()), out


def initial_loss_check(
    setup: TrialSetup, data: PreparedData, cfg: DataConfig, pretrained: bool = False
) -> Check:
    """Compare the untrained model's loss with chance level; name the likely cause when far off.
    A pre-trained start (init_from) is expected to sit below chance: it is reported, not judged."""
    loss, out = initial_loss(setup, data)
    ref = chance_loss(data)
    ratio = loss / ref if ref > 0 else math.inf
    spread = float(out.float().std().item()) if out.numel() > 1 else 0.0
    values = {"loss": loss, "expected": ref, "ratio": ratio, "output_std": spread}
    name, what = "initial loss", _expected_text(data.task, ref)
    if not math.isfinite(loss):
        return Check(name, "fail", f"loss {loss} at initialisation", _nan_causes(), values)
    shown = f"{loss:.3f}" if abs(loss) < 1e3 else f"{loss:.4g}"
    detail = f"{shown} at init, expected ≈ {what} (ratio {ratio:.2f})"
    if pretrained:
        return Check(name, "pass", f"{shown} at a pre-trained start (init_from)", values=values)
    if ratio > (HIGH_RATIO_REGRESSION if data.task == "regression" else HIGH_RATIO):
        return Check(name, "warn", detail, _high_causes(data, spread, cfg), values)
    if ratio < LOW_RATIO and data.task != "regression":
        causes = [
            "the label (or a copy of it) is among the features: check data.features",
            "the model is not freshly initialised (a factory loading trained weights)",
        ]
        return Check(name, "warn", detail + " — below chance before training", causes, values)
    return Check(name, "pass", detail, values=values)


def _expected_text(task: str, ref: float) -> str:
    if task == "classification":
        return f"ln C = {ref:.4g}"
    if task == "binary":
        return f"ln 2 = {ref:.4g}"
    return f"target variance {ref:.4g}"


def _high_causes(data: PreparedData, spread: float, cfg: DataConfig) -> list[str]:
    causes = []
    if data.task == "regression":
        if not cfg.standardize_targets:
            causes.append("targets not standardised (P2): set data.standardize_targets: true")
        causes.append(
            f"output scaling: predictions start with std {spread:.3g} against targets of "
            "std ~1; scale the last layer's initial weights down"
        )
    else:
        causes.append(
            f"init: logits start with std {spread:.3g}; scale the output layer's initial "
            "weights down (e.g. x0.1 or zeros) so the softmax starts near uniform (I1, P4)"
        )
    if not cfg.normalize:
        causes.append("inputs not standardised: set data.normalize: true (D1)")
    return causes


def _nan_causes() -> list[str]:
    return [
        "the model outputs NaN/inf before any training: check the factory's init and any "
        "log/sqrt/division in forward",
        "inputs too large: set data.normalize: true (D1)",
    ]
