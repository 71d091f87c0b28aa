"""A deliberately slow MLP for the interrupt/resume tests: each training batch sleeps.

The tests stop a study midway; on this 2-core machine a plain digits MLP finishes an epoch in
milliseconds, too fast to catch in the middle.
"""

from __future__ import annotations

import time

import torch


class SlowMLP(torch.nn.Module):
    def __init__(self, in_features: int, output_dim: int, delay: float) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(in_features, 32), torch.nn.ReLU(), torch.nn.Linear(32, output_dim)
        )
        self.delay = delay

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            time.sleep(self.delay)
        return self.net(x.flatten(1))


def slow_mlp(input_shape: tuple[int, ...], output_dim: int, delay: float = 0.05) -> SlowMLP:
    """The model factory a study names as `model: {kind: custom, factory: slow_net:slow_mlp}`."""
    n = 1
    for d in input_shape:
        n *= d
    return SlowMLP(n, output_dim, delay)
