"""Per-epoch diagnostics every built-in trial reports: grad_norm, update_ratio (L1), top_prob (P4),
dead_relu. Hooks on the optimizer and the model collect them, so the loop gains three lines.

- grad_norm: the global L2 norm of the gradients, averaged over each epoch's steps 0, 32, 64, ...
  (after clipping, when grad_clip is set: it is what the step used).
- update_ratio: ‖Δw‖ / ‖w‖ of one step, the epoch's first (Adam's very first step is skipped:
  it moves every weight by ~lr whatever the gradient). L1: near 1e-3 is healthy; far below
  learns slowly, far above is unstable.
- top_prob (classifiers): mean top softmax (or sigmoid) probability on the validation split. P4:
  near 1/C early, moving towards 1 as the net learns.
- dead_relu: fraction of ReLU units (features; channels for conv maps) never positive on the
  first validation batch. Only nn.ReLU modules are seen (F.relu has no module to hook).

Everything accumulates as tensors on the model's device; `.item()` runs once per epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

GRAD_EVERY = 32  # one step in 32 (and each epoch's first): ~1% of a digits epoch (benchmarks/)


class Diagnostics:
    """Attach to a model and its optimizer; read `epoch_metrics()` after each epoch."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, task: str) -> None:
        self.model, self.task = model, task
        self.params = [p for p in model.parameters() if p.requires_grad]
        # One pre-step hook only: the update of step k is read at step k + 1 (or at the epoch's
        # end), as nothing else changes the weights in between; a post hook would cost per step.
        self._hooks = [optimizer.register_step_pre_hook(self._before_step)]
        self._reset()

    def _reset(self) -> None:
        self._step_in_epoch = 0
        self._ratio_done = False
        # 0-d tensors, read with one device sync per epoch; counts as Python ints
        self._grad: list[torch.Tensor] = []
        self._ratio: list[torch.Tensor] = []
        self._before: torch.Tensor | None = None
        self._top: list[torch.Tensor] = []  # sums of top probabilities, per validation batch
        self._top_n = 0
        self._alive: list[torch.Tensor] = []  # live units, per ReLU call
        self._units = 0
        self._first_batch = True

    # ------------------------------------------------------------------ training steps

    def _before_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        sample_grad = self._step_in_epoch % GRAD_EVERY == 0
        self._step_in_epoch += 1
        if self._before is not None:
            self._finish_ratio()
        if not (sample_grad or not self._ratio_done) or not self.params:
            return  # the common case: as little Python as possible per step
        if sample_grad:
            grads = [p.grad for p in self.params if p.grad is not None]
            if grads:
                self._grad.append(_flat(grads).norm())
        if not self._ratio_done and not _fresh_adam(optimizer):
            self._before = _flat(self.params)  # a copy: cat allocates
            self._ratio_done = True

    def _finish_ratio(self) -> None:
        delta = (_flat(self.params) - self._before).norm()
        self._ratio.append(delta / self._before.norm().clamp_min(1e-12))
        self._before = None

    # ------------------------------------------------------------------ validation

    @contextmanager
    def validating(self) -> Iterator[None]:
        """Wrap the validation pass: hooks read the outputs (top_prob) and ReLUs (dead_relu)."""
        hooks = [self.model.register_forward_hook(self._on_output)]
        hooks += [
            m.register_forward_hook(self._on_relu)
            for m in self.model.modules()
            if isinstance(m, torch.nn.ReLU)
        ]
        self._first_batch = True
        try:
            yield
        finally:
            for h in hooks:
                h.remove()

    def _on_output(self, module: Any, inputs: Any, out: Any) -> None:
        self._first_batch = False  # ReLU hooks of this forward ran already
        if not isinstance(out, torch.Tensor) or out.dim() != 2:
            return
        if self.task == "classification":  # max softmax = 1 / Σ exp(logit - max): no softmax
            logits = out.detach().float()
            top = (logits - logits.amax(dim=-1, keepdim=True)).exp().sum(dim=-1).reciprocal()
        elif self.task == "binary":
            p = out.detach().float().sigmoid()
            top = torch.maximum(p, 1 - p)
        else:
            return
        self._top.append(top.sum())
        self._top_n += top.numel()

    def _on_relu(self, module: Any, inputs: Any, out: Any) -> None:
        if not self._first_batch or not isinstance(out, torch.Tensor) or out.dim() < 2:
            return
        peak = out.detach()
        if peak.dim() > 2:  # a conv map: a channel is one unit, alive anywhere in the image
            peak = peak.flatten(2).amax(dim=-1)
        alive = peak.amax(dim=0) > 0  # a max then one compare: ~8x cheaper than any()
        self._alive.append(alive.sum())
        self._units += alive.numel()

    # ------------------------------------------------------------------ per epoch

    def epoch_metrics(self) -> dict[str, float]:
        """This epoch's diagnostics (absent when nothing was measured), then start afresh."""
        if self._before is not None:  # the epoch's last step was the measured one
            self._finish_ratio()
        parts = [self._grad, self._ratio, self._top, self._alive]
        scalars = [t.float() for part in parts for t in part]
        values = torch.stack(scalars).tolist() if scalars else []  # one device sync
        sums = []
        for part in parts:
            sums.append(sum(values[: len(part)]))
            values = values[len(part) :]
        out: dict[str, float] = {}
        if self._grad:
            out["grad_norm"] = sums[0] / len(self._grad)
        if self._ratio:
            out["update_ratio"] = sums[1] / len(self._ratio)
        if self._top_n:
            out["top_prob"] = sums[2] / self._top_n
        if self._units:
            out["dead_relu"] = 1.0 - sums[3] / self._units
        self._reset()
        return out

    def detach(self) -> None:
        """Remove the optimizer hooks (the model's are only there while validating)."""
        for h in self._hooks:
            h.remove()


def _fresh_adam(optimizer: Any) -> bool:
    """Adam's first step moves every weight by ~lr whatever the gradient (bias correction): not
    a step to judge the rate by. Read from the optimizer's state, so a resumed trial agrees."""
    return not optimizer.state and any("betas" in g for g in optimizer.param_groups)


def _flat(tensors: list[torch.Tensor]) -> torch.Tensor:
    """All tensors as one detached vector: two kernel launches instead of one per tensor, which
    is what small nets pay for (benchmarks/diagnostics_overhead.py)."""
    return torch.cat([t.detach().reshape(-1) for t in tensors])
