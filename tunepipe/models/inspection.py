"""`tunepipe inspect`: the model layer by layer, its receptive field (P7) and parameter count.

One forward pass on one sample, with hooks on every leaf module, records what each layer outputs
in the order the layers run. The receptive field follows that order through convolutions and
pooling (exact for chains and residual blocks, an upper bound for parallel branches).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

RF_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d)
RF_LAYERS += (nn.AvgPool2d,)
GLOBAL_LAYERS = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


@dataclass
class LayerRow:
    name: str
    kind: str
    output_shape: str
    params: int
    receptive_field: str = ""  # "5×5" after a conv/pool layer; "" elsewhere


@dataclass
class ModelReport:
    layers: list[LayerRow]
    total_params: int
    trainable_params: int
    receptive_field: tuple[int, ...] | None  # after the last conv/pool layer (None: no convs)
    input_shape: tuple[int, ...]
    notes: list[str] = field(default_factory=list)


def inspect_model(model: nn.Module, sample: torch.Tensor) -> ModelReport:
    """Rows in execution order (a module called twice shows twice, its parameters once)."""
    order: list[tuple[str, nn.Module, Any]] = []
    names = {m: n for n, m in model.named_modules()}
    leaves = [m for m in model.modules() if not list(m.children())]
    hooks = [
        m.register_forward_hook(lambda m, i, o: order.append((names[m], m, o))) for m in leaves
    ]
    model.eval()  # batch norm cannot use batch statistics of one sample
    try:
        with torch.no_grad():
            model(sample)
    finally:
        for h in hooks:
            h.remove()
    rows, counted, rf = _rows(order, len(sample.shape) - 2)
    for m in leaves:
        if m not in counted and _own_params(m):
            rows.append(LayerRow(names[m], type(m).__name__, "not called", _own_params(m)))
            counted.add(m)
    total = sum(p.numel() for p in model.parameters())
    listed = sum(r.params for r in rows)
    if listed != total:  # parameters held by containers themselves (a custom nn.Parameter)
        rows.append(LayerRow("(other)", "parameters", "", total - listed))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return ModelReport(rows, total, trainable, rf, tuple(sample.shape[1:]))


def _rows(
    order: list[tuple[str, nn.Module, Any]], spatial_dims: int
) -> tuple[list[LayerRow], set[nn.Module], tuple[int, ...] | None]:
    rows, counted = [], set()
    field_, jump, last = [1] * max(spatial_dims, 1), [1] * max(spatial_dims, 1), None
    for name, module, out in order:
        params = 0 if module in counted else _own_params(module)
        counted.add(module)
        rf_text = ""
        if isinstance(module, RF_LAYERS):
            field_, jump = receptive_step(module, field_, jump)
            last = tuple(field_)
            rf_text = "×".join(map(str, last))
        elif isinstance(module, GLOBAL_LAYERS):
            rf_text = "global"
        rows.append(LayerRow(name, type(module).__name__, _shape(out), params, rf_text))
    return rows, counted, last


def receptive_step(
    module: nn.Module, field_: list[int], jump: list[int]
) -> tuple[list[int], list[int]]:
    """One layer of the receptive-field recurrence (Araujo et al. 2019, "Computing Receptive
    Fields of Convolutional Neural Networks"): r += (k_eff - 1) * j; j *= stride, per axis,
    with k_eff = dilation * (k - 1) + 1."""
    n = len(field_)
    k, s, d = (_per_axis(getattr(module, a, 1), n) for a in ("kernel_size", "stride", "dilation"))
    axes = zip(field_, k, d, jump, strict=True)
    new_field = [r + dd * (kk - 1) * j for r, kk, dd, j in axes]  # k_eff - 1 = d * (k - 1)
    return new_field, [j * ss for j, ss in zip(jump, s, strict=True)]


def receptive_field(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The receptive field after the last conv/pool layer for inputs of `input_shape` (C, H, W)."""
    return inspect_model(model, torch.zeros(1, *input_shape)).receptive_field


def _per_axis(v: Any, n: int) -> list[int]:
    if v is None:  # pooling layers' stride defaults to their kernel size; handled by torch
        return [1] * n
    return list(v) if isinstance(v, (tuple, list)) else [int(v)] * n


def _own_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters(recurse=False))


def _shape(out: Any) -> str:
    if isinstance(out, torch.Tensor):
        return "(" + ", ".join(str(d) for d in out.shape[1:]) + ")"
    if isinstance(out, (tuple, list)):
        return " ".join(_shape(o) for o in out)
    return type(out).__name__


def human(n: int) -> str:
    """1234567 → "1.23M"."""
    if n < 1000:
        return str(n)
    exp = min(int(math.log10(n) // 3), 3)
    return f"{n / 10 ** (3 * exp):.3g}{' kMG'[exp]}"
