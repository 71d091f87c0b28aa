"""Per-epoch diagnostics every built-in trial reports: grad_norm, update_ratio (L1), top_prob (P4),
dead_relu. Hooks on the optimizer and the model collect them, so the loop gains three lines.

- grad_norm: the global L2 norm of the gradients, averaged over every GRAD_EVERY-th step (after
  clipping, when grad_clip is set: it is what the step used).
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

GRAD_EVERY = 16  # sample one step in 16: keeps the cost near 1% of an epoch (benchmarks/)


class Diagnostics:
    """Attach to a model and its optimizer; read `epoch_metrics()` after each epoch."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, task: str) -> None:
        self.model, self.task = model, task
        self.params = [p for p in model.parameters() if p.requires_grad]
        self._hooks = [
            optimizer.register_step_pre_hook(self._before_step),
            optimizer.register_step_post_hook(self._after_step),
        ]
        self._reset()

    def _reset(self) -> None:
        self._step_in_epoch = 0
        self._ratio_done = False
        self._grad: list[torch.Tensor] = []
        self._ratio: list[torch.Tensor] = []
        self._before: list[torch.Tensor] | None = None
        self._top: list[torch.Tensor] = []
        self._alive: list[torch.Tensor] = []
        self._first_batch = True

    # ------------------------------------------------------------------ training steps

    def _before_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        sample_grad = self._step_in_epoch % GRAD_EVERY == 0
        self._step_in_epoch += 1
        if not (sample_grad or not self._ratio_done) or not self.params:
            return  # the common case: as little Python as possible per step
        if sample_grad:
            grads = [p.grad.detach() for p in self.params if p.grad is not None]
            if grads:
                self._grad.append(_global_norm(grads))
        if not self._ratio_done and not _fresh_adam(optimizer):
            self._before = [p.detach().clone() for p in self.params]
            self._ratio_done = True

    def _after_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self._before is None:
            return
        pairs = zip(self.params, self._before, strict=True)
        delta = _global_norm([p.detach() - before for p, before in pairs])
        self._ratio.append(delta / _global_norm(self._before).clamp_min(1e-12))
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
        if self.task == "classification":  # max softmax = exp(max logit - logsumexp): no softmax
            logits = out.detach().float()
            self._top.append((logits.amax(dim=-1) - logits.logsumexp(dim=-1)).exp())
        elif self.task == "binary":
            p = out.detach().sigmoid()
            self._top.append(torch.maximum(p, 1 - p).reshape(-1))

    def _on_relu(self, module: Any, inputs: Any, out: Any) -> None:
        if not self._first_batch or not isinstance(out, torch.Tensor) or out.dim() < 2:
            return
        peak = out.detach()
        if peak.dim() > 2:  # a conv map: a channel is one unit, alive anywhere in the image
            peak = peak.flatten(2).amax(dim=-1)
        self._alive.append(peak.amax(dim=0) > 0)  # a max then one compare: ~8x cheaper than any()

    # ------------------------------------------------------------------ per epoch

    def epoch_metrics(self) -> dict[str, float]:
        """This epoch's diagnostics (absent when nothing was measured), then start afresh."""
        parts: dict[str, torch.Tensor] = {}
        if self._grad:
            parts["grad_norm"] = torch.stack(self._grad).mean()
        if self._ratio:
            parts["update_ratio"] = torch.stack(self._ratio).mean()
        if self._top:
            parts["top_prob"] = torch.cat(self._top).float().mean()
        if self._alive:
            alive = torch.cat([a.reshape(-1) for a in self._alive])
            parts["dead_relu"] = 1.0 - alive.float().mean()
        self._reset()
        if not parts:
            return {}
        values = torch.stack([v.float() for v in parts.values()]).tolist()  # one device sync
        return dict(zip(parts, values, strict=True))

    def detach(self) -> None:
        """Remove the optimizer hooks (the model's are only there while validating)."""
        for h in self._hooks:
            h.remove()


def _fresh_adam(optimizer: Any) -> bool:
    """Adam's first step moves every weight by ~lr whatever the gradient (bias correction): not
    a step to judge the rate by. Read from the optimizer's state, so a resumed trial agrees."""
    return not optimizer.state and any("betas" in g for g in optimizer.param_groups)


def _global_norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    """‖(t1, t2, ...)‖₂ as one vector, without concatenating them."""
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in tensors]))
