"""P1: the largest model in the space, regularisation off, must overfit a tiny subset.

A net that cannot drive the training loss of 64 samples towards zero has a bug in its inputs,
outputs, loss or model, not a hard problem. The same run records which parameters never get a
gradient (frozen or detached), the commonest such bug in a custom model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from tunepipe.config import PlaybookConfig
from tunepipe.data import PreparedData, iterate_batches
from tunepipe.playbook.result import Check
from tunepipe.playbook.trial import TrialSetup, subset

LITTLE_PROGRESS = 0.1  # the loss fell by under 10% of its start: the rate is too low to learn
STILL_FALLING = 0.01  # the last tenth of the steps still beat the tenth before by 1%: not stuck
DIVERGED = 3.0  # a step's loss above 3x the start: the rate overshoots (the divergence rule's k/3)
MAX_NAMES = 8  # parameter names listed in a message


@dataclass
class OverfitRun:
    """What happened while overfitting the subset."""

    losses: list[float]  # batch loss at each step, before the step
    initial: float  # subset loss before training
    final: float  # subset loss after training (dropout off)
    target: float
    lr: float
    samples: int
    config: dict[str, Any]
    frozen: list[str] = field(default_factory=list)  # requires_grad=False
    no_grad: list[str] = field(default_factory=list)  # trainable, but never a non-zero gradient
    detached: bool = False  # the loss had no gradient at all

    @property
    def passed(self) -> bool:
        return math.isfinite(self.final) and self.final < self.target

    @property
    def still_falling(self) -> bool:
        """The budget ran out while the loss was still clearly falling (a slow rate, not a bug)."""
        k = len(self.losses) // 10
        if k < 10 or not all(math.isfinite(v) for v in self.losses[-2 * k :]):
            return False
        recent, before = self.losses[-k:], self.losses[-2 * k : -k]
        return sum(recent) < (1 - STILL_FALLING) * sum(before)

    @property
    def diverged(self) -> bool:
        """P5: a step's loss turned NaN/inf or rose far above where it started."""
        return any(not math.isfinite(v) or v > DIVERGED * self.initial for v in self.losses)


def overfit_run(
    setup: TrialSetup, data: PreparedData, settings: PlaybookConfig, chance: float
) -> OverfitRun:
    """Train `setup` on `settings.overfit_samples` training rows for up to `overfit_steps` steps,
    stopping once a whole pass over the subset averages below the target."""
    x, y = subset(data, settings.overfit_samples, setup.seed)
    named = list(setup.model.named_parameters())
    run = OverfitRun(
        losses=[],
        initial=_subset_loss(setup, x, y),
        final=math.nan,
        target=settings.overfit_threshold * chance,
        lr=setup.hp.lr,
        samples=len(x),
        config=setup.config,
        frozen=[n for n, p in named if not p.requires_grad],
    )
    seen = {n: False for n, p in named if p.requires_grad}
    shuffle = torch.Generator().manual_seed(setup.seed)
    while len(run.losses) < settings.overfit_steps:
        passed = _one_pass(setup, x, y, run, seen, settings.overfit_steps, shuffle)
        if passed is None or passed < run.target:
            break
    run.no_grad = [n for n, hit in seen.items() if not hit]
    run.final = _subset_loss(setup, x, y)
    return run


def _one_pass(
    setup: TrialSetup,
    x: torch.Tensor,
    y: torch.Tensor,
    run: OverfitRun,
    seen: dict[str, bool],
    budget: int,
    shuffle: torch.Generator,
) -> float | None:
    """One shuffled pass over the subset; its mean loss, or None when training cannot go on."""
    model, opt = setup.model, setup.optimizer
    model.train()
    batch = min(setup.hp.batch_size, len(x))
    drop_last = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    total = []
    for xb, yb in iterate_batches(x, y, batch, shuffle, drop_last=drop_last):
        opt.zero_grad(set_to_none=True)
        loss = setup.loss_fn(model(xb), yb)
        run.losses.append(float(loss.item()))
        total.append(run.losses[-1])
        if not loss.requires_grad:
            run.detached = True
            return None
        if not math.isfinite(run.losses[-1]):
            return None
        loss.backward()
        _mark_gradients(model, seen)
        if setup.hp.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), setup.hp.grad_clip)  # M2
        opt.step()
        if len(run.losses) >= budget:
            break
    return sum(total) / len(total)


def _mark_gradients(model: torch.nn.Module, seen: dict[str, bool]) -> None:
    """Note parameters that got a non-zero gradient (checked until every one has)."""
    if all(seen.values()):
        return
    for name, p in model.named_parameters():
        if not seen.get(name, True) and p.grad is not None and bool(p.grad.any()):
            seen[name] = True


@torch.no_grad()
def _subset_loss(setup: TrialSetup, x: torch.Tensor, y: torch.Tensor) -> float:
    setup.model.eval()
    return float(setup.loss_fn(setup.model(x), y).item())


def gradient_check(run: OverfitRun) -> Check:
    """Every trainable parameter should receive a gradient; name those that do not."""
    name = "gradient flow"
    if run.detached:
        causes = [
            "the model's output is detached from its parameters (.detach(), torch.no_grad(), "
            "a numpy round trip, or .data in forward)"
        ]
        if run.frozen:
            causes.insert(0, f"frozen parameters (requires_grad=False): {_names(run.frozen)}")
        return Check(name, "fail", "the loss has no gradient: nothing can train", causes)
    if run.frozen or run.no_grad:
        causes = []
        if run.frozen:
            causes.append(f"frozen parameters (requires_grad=False): {_names(run.frozen)}")
        if run.no_grad:
            causes.append(
                f"parameters whose gradient stays None/zero: {_names(run.no_grad)} (unused in "
                "forward, on a detached branch, or behind dead ReLUs)"
            )
        n = len(run.frozen) + len(run.no_grad)
        return Check(name, "warn", f"{n} parameter tensors never receive a gradient", causes)
    return Check(name, "pass", "every parameter tensor receives a gradient")


def overfit_check(run: OverfitRun) -> Check:
    """P1's verdict, with the likely causes ranked by what the run showed."""
    steps = len(run.losses)
    config = ", ".join(f"{k}={v}" for k, v in run.config.items() if k != "lr")
    detail = (
        f"loss {run.initial:.4g} → {run.final:.4g} in {steps} step{'s' * (steps != 1)} on "
        f"{run.samples} samples at lr {run.lr:.3g} (target < {run.target:.3g}; {config})"
    )
    values = {"initial": run.initial, "final": run.final, "target": run.target, "steps": steps}
    values["lr"] = run.lr
    if run.passed:
        return Check("overfit tiny subset", "pass", detail, values=values)
    return Check("overfit tiny subset", "fail", detail, overfit_causes(run), values)


def overfit_causes(run: OverfitRun) -> list[str]:
    """Likely causes, most likely first (what the run showed), then the usual suspects."""
    causes = []
    if run.detached or run.frozen or run.no_grad:
        causes.append(gradient_check(run).causes[0])
    if run.diverged or not math.isfinite(run.final) or run.final > run.initial:
        causes.append(
            f"learning rate too high (lr={run.lr:.3g}): the loss rose or turned NaN; "
            f"try {run.lr / 10:.3g} or less (P5, L1)"
        )
    elif not run.detached and run.final > run.initial * (1 - LITTLE_PROGRESS):
        fell = 100 * (1 - run.final / run.initial) if run.initial else 0.0
        causes.append(
            f"learning rate too low (lr={run.lr:.3g}): the loss fell only {fell:.1f}% in "
            f"{len(run.losses)} steps; L1's usual values are 0.01 to 0.0001"
        )
    elif run.still_falling:
        causes.append(
            f"learning rate too low for this model (lr={run.lr:.3g}): the loss was still "
            f"falling after {len(run.losses)} steps; raise lr (L1) or playbook.overfit_steps"
        )
    causes += [
        "loss/label mismatch: class ids 0..C-1 for classification, 0/1 for binary, "
        "standardised numbers for regression (P2); is task: right?",
        "features and labels misaligned (sorted or shuffled separately): no net fits labels "
        "that do not depend on its inputs",
        "the model too small or still regularised: raise the largest width/depth in the space",
    ]
    return causes


def _names(names: list[str]) -> str:
    more = f" and {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else ""
    return ", ".join(names[:MAX_NAMES]) + more
