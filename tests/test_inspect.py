"""`tunepipe inspect`: parameter counts, output shapes, the receptive field (P7)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

from tunepipe.models.inspection import inspect_model, receptive_field
from tunepipe.models.nets import cnn, mlp

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_parameter_counts_match_the_model():
    model = mlp(64, 10, hidden_width=32, depth=3, batch_norm=True)
    report = inspect_model(model, torch.zeros(1, 64))
    assert report.total_params == sum(p.numel() for p in model.parameters())
    assert sum(r.params for r in report.layers) == report.total_params
    assert report.layers[-1].output_shape == "(10)"
    assert report.receptive_field is None  # no convolutions


def test_two_3x3_convs_without_pooling_see_5x5():
    model = cnn((1, 8, 8), 10, channels=[8, 16], kernel_size=3, pool_every=0)
    assert receptive_field(model, (1, 8, 8)) == (5, 5)
    rows = inspect_model(model, torch.zeros(1, 1, 8, 8)).layers
    assert [r.receptive_field for r in rows if r.kind == "Conv2d"] == ["3×3", "5×5"]


def test_receptive_field_with_pooling_stride_and_dilation():
    pooled = cnn((1, 16, 16), 2, channels=[8, 16], pool_every=1)
    assert receptive_field(pooled, (1, 16, 16)) == (10, 10)  # 3, 4 (pool), 8, 10 (pool)
    dilated = nn.Sequential(nn.Conv2d(1, 2, 3, dilation=2), nn.Conv2d(2, 2, 3, stride=2))
    assert receptive_field(dilated, (1, 16, 16)) == (7, 7)  # 1 + 4, then + 2


def test_shared_and_container_parameters_are_counted_once():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Linear(4, 4)
            self.scale = nn.Parameter(torch.ones(4))

        def forward(self, x):
            return self.layer(self.layer(x)) * self.scale  # one layer used twice

    model = Net()
    report = inspect_model(model, torch.zeros(1, 4))
    assert report.total_params == 20 + 4
    assert [r.params for r in report.layers] == [20, 0, 4]  # second call, then (other)


def test_cli_prints_layers_and_receptive_field(tmp_path, capsys):
    from tunepipe.cli import main

    study = tmp_path / "cnn.yaml"
    study.write_text(
        "name: cnn\n"
        "data: {source: digits, label: label, image_shape: [1, 8, 8]}\n"
        "model: {kind: cnn, channels: [8, 16], pool_every: 0}\n"
        "search_space: {fc_width: {type: choice, values: [32, 64]}}\n"
    )
    argv, sys.argv = sys.argv, ["tunepipe", "inspect", str(study)]
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (0, None)
    finally:
        sys.argv = argv
    out = capsys.readouterr().out
    expected = cnn((1, 8, 8), 10, channels=[8, 16], pool_every=0, fc_width=64)
    assert f"parameters: {sum(p.numel() for p in expected.parameters()):,}" in out
    assert "receptive field (P7): 5×5 px on a 8×8 input" in out
    assert "search space: 2 combinations" in out
