"""The case study's CNN (PLAYBOOK.md, net2 and later): three 3×3 convolutions of 32/64/128
filters, each followed by 2×2 max-pooling, two dense layers of 500, a linear output."""

from __future__ import annotations

from torch import nn


def case_study_cnn(input_shape: tuple[int, ...], output_dim: int, width: int = 500) -> nn.Module:
    c, h, w = input_shape
    layers: list[nn.Module] = []
    for c_out in (32, 64, 128):
        layers += [nn.Conv2d(c, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        c, h, w = c_out, h // 2, w // 2
    layers += [nn.Flatten(), nn.Linear(c * h * w, width), nn.ReLU(), nn.Linear(width, width)]
    layers += [nn.ReLU(), nn.Linear(width, output_dim)]
    return nn.Sequential(*layers)
