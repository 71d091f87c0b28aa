"""Models: init per playbook I1, CNN filters per F1, R1/RB1 layers when asked, task heads (P2),
and the user's own factory by import path."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tunepipe.config import CNNModel, CustomModel, MLPModel
from tunepipe.errors import TunepipeError
from tunepipe.models import build_model, model_spec, task_head
from tunepipe.models.nets import Residual, cnn, init_weights, mlp


def layers(net: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, kind)]


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


# ---------------------------------------------------------------- initialisation (I1)


def test_relu_layers_get_he_normal_init():
    net = mlp(1000, 10, hidden_width=1000, depth=2, activation="relu")
    first, second, head = layers(net, nn.Linear)
    for layer, fan_in in ((first, 1000), (second, 1000)):
        std = layer.weight.std().item()
        assert std == pytest.approx(math.sqrt(2 / fan_in), rel=0.02)
        assert layer.weight.mean().item() == pytest.approx(0, abs=1e-3)
    # and not Xavier: He is sqrt(2/fan_in), Xavier (gain 1) sqrt(2/(fan_in+fan_out))
    assert first.weight.std().item() > 1.3 * math.sqrt(2 / 2000)


def test_tanh_layers_get_xavier_normal_init():
    net = mlp(1000, 10, hidden_width=600, depth=1, activation="tanh")
    first = layers(net, nn.Linear)[0]
    # Glorot normal with PyTorch's recommended gain for tanh (5/3)
    expected = nn.init.calculate_gain("tanh") * math.sqrt(2 / (1000 + 600))
    assert first.weight.std().item() == pytest.approx(expected, rel=0.02)
    he = math.sqrt(2 / 1000)
    assert abs(first.weight.std().item() - he) > 0.1 * he


def test_biases_start_at_zero():
    for net in (mlp(20, 3, activation="relu"), mlp(20, 3, activation="tanh"), cnn((1, 8, 8), 3)):
        for layer in layers(net, nn.Linear) + layers(net, nn.Conv2d):
            if layer.bias is not None:
                assert torch.count_nonzero(layer.bias) == 0


def test_conv_layers_get_he_init_too():
    net = cnn((64, 8, 8), 10, channels=[256], pool_every=0, fc_width=8)
    (conv,) = layers(net, nn.Conv2d)
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.02)


def test_init_weights_overwrites_a_module():
    layer = nn.Linear(500, 500)
    nn.init.constant_(layer.weight, 3.0)
    nn.init.constant_(layer.bias, 1.0)
    init_weights(layer, "relu")
    assert layer.weight.std().item() == pytest.approx(math.sqrt(2 / 500), rel=0.03)
    assert torch.count_nonzero(layer.bias) == 0


# ---------------------------------------------------------------- CNN (F1) and the MLP's shape


def test_cnn_uses_3x3_filters_and_the_channels_given():
    net = cnn((3, 16, 16), 5, channels=[16, 32, 64], pool_every=1)
    convs = layers(net, nn.Conv2d)
    assert [c.out_channels for c in convs] == [16, 32, 64]
    assert [c.in_channels for c in convs] == [3, 16, 32]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert len(layers(net, nn.MaxPool2d)) == 3
    assert net(torch.zeros(2, 3, 16, 16)).shape == (2, 5)


def test_cnn_pooling_stops_at_one_pixel():
    net = cnn((1, 4, 4), 2, channels=[8, 8, 8, 8], pool_every=1)
    assert len(layers(net, nn.MaxPool2d)) == 2  # 4 -> 2 -> 1, then no more
    assert net(torch.zeros(1, 1, 4, 4)).shape == (1, 2)


def test_mlp_widths_and_depth():
    net = mlp(64, 10, hidden_width=32, depth=3)
    assert [(lin.in_features, lin.out_features) for lin in layers(net, nn.Linear)] == [
        (64, 32),
        (32, 32),
        (32, 32),
        (32, 10),
    ]
    assert len(layers(net, nn.ReLU)) == 3
    assert net(torch.zeros(4, 64)).shape == (4, 10)
    assert net(torch.zeros(4, 1, 8, 8)).shape == (4, 10)  # flattens images


def test_mlp_depth_zero_is_a_linear_model():
    net = mlp(5, 2, depth=0)
    assert [type(m) for m in net] == [nn.Flatten, nn.Linear]


def test_plain_nets_have_no_regularisers():
    for net in (mlp(8, 2), cnn((1, 8, 8), 2)):
        assert not layers(net, nn.Dropout)
        assert not layers(net, nn.modules.batchnorm._BatchNorm)
        assert not layers(net, Residual)


# ---------------------------------------------------------------- R1, RB1: present when asked


def test_mlp_dropout_batch_norm_residual_when_asked():
    net = mlp(8, 2, hidden_width=16, depth=3, dropout=0.25, batch_norm=True, residual=True)
    assert [d.p for d in layers(net, nn.Dropout)] == [0.25] * 3
    assert len(layers(net, nn.BatchNorm1d)) == 3
    assert len(layers(net, Residual)) == 2  # not the first block: it changes the width
    assert net(torch.zeros(4, 8)).shape == (4, 2)


def test_residual_adds_its_input():
    body = nn.Linear(4, 4)
    x = torch.randn(3, 4)
    torch.testing.assert_close(Residual(body)(x), x + body(x))


def test_cnn_dropout_batch_norm_residual_when_asked():
    net = cnn((1, 8, 8), 3, channels=[16, 16, 32], dropout=0.5, batch_norm=True, residual=True)
    assert [d.p for d in layers(net, nn.Dropout)] == [0.5]
    assert len(layers(net, nn.BatchNorm2d)) == 3
    assert all(c.bias is None for c in layers(net, nn.Conv2d))  # BN makes the bias redundant
    assert len(layers(net, Residual)) == 1  # only where the channel count stays 16 -> 16
    net.eval()
    assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 3)


# ---------------------------------------------------------------- task heads (P2, A1)


def test_classification_head_cross_entropy_on_logits():
    head = task_head("classification")
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.1, 0.2, 3.0]])
    y = torch.tensor([0, 1])
    expected = -(logits.log_softmax(-1)[[0, 1], y]).mean()
    torch.testing.assert_close(head.loss_fn()(logits, y), expected)
    torch.testing.assert_close(head.predict(logits).sum(-1), torch.ones(2))
    assert head.correct(logits, y).item() == 1


def test_binary_head_bce_with_logits():
    head = task_head("binary")
    out = torch.tensor([[3.0], [-2.0], [0.5]])
    y = torch.tensor([[1.0], [1.0], [0.0]])
    p = out.sigmoid()
    expected = -(y * p.log() + (1 - y) * (1 - p).log()).mean()
    torch.testing.assert_close(head.loss_fn()(out, y), expected)
    torch.testing.assert_close(head.predict(out), p)
    assert head.correct(out, y).item() == 1


def test_regression_head_mse_and_no_accuracy():
    head = task_head("regression")
    out, y = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 4.0]])
    assert head.loss_fn()(out, y).item() == pytest.approx((1 + 4) / 2)
    assert head.correct(out, y) is None
    assert torch.equal(head.predict(out), out)


def test_unknown_task_head():
    with pytest.raises(ValueError, match="multiclass"):
        task_head("multiclass")


# ---------------------------------------------------------------- specs and build_model


def test_model_spec_sampled_settings_override_the_study():
    spec = model_spec(
        MLPModel(kind="mlp", hidden_width=8, depth=1), {"hidden_width": 32, "lr": 0.1, "x": 1}
    )
    assert spec["kind"] == "mlp"
    assert spec["args"]["hidden_width"] == 32 and spec["args"]["depth"] == 1
    assert "lr" not in spec["args"] and "x" not in spec["args"]


@pytest.mark.parametrize(
    "cfg, input_shape, out",
    [
        (MLPModel(kind="mlp"), (64,), 10),
        (MLPModel(kind="mlp", depth=0), (1, 8, 8), 1),
        (CNNModel(kind="cnn", channels=[8, 16]), (1, 8, 8), 10),
        (CNNModel(kind="cnn", channels=[8]), (3, 5, 7), 4),
    ],
)
def test_build_model_output_dims(cfg, input_shape, out):
    net = build_model(model_spec(cfg, {}), input_shape, out)
    net.eval()
    assert net(torch.zeros(3, *input_shape)).shape == (3, out)


def test_cnn_on_flat_inputs_says_set_image_shape():
    with pytest.raises(
        TunepipeError, match=r"^model.kind: a cnn needs images; set data.image_shape"
    ):
        build_model(model_spec(CNNModel(kind="cnn"), {}), (64,), 10)


# ---------------------------------------------------------------- the user's own factory


FACTORY = """
import math
from torch import nn

def linear(input_shape, output_dim, bias=True):
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), output_dim, bias=bias))

def not_a_module(input_shape, output_dim):
    return {"weights": [1, 2]}
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    name = f"user_nets_{tmp_path.name}"  # unique: sys.modules caches across tests
    (tmp_path / f"{name}.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_custom_factory_by_import_path(user_module):
    cfg = CustomModel(factory=f"{user_module}:linear", args={"bias": True})
    spec = model_spec(cfg, {"bias": False, "lr": 0.1})  # sampled args win; train keys stay out
    assert spec == {"kind": "custom", "factory": f"{user_module}:linear", "args": {"bias": False}}
    net = build_model(spec, (1, 4, 4), 3)
    (linear,) = layers(net, nn.Linear)
    assert (linear.in_features, linear.out_features, linear.bias) == (16, 3, None)


def test_custom_factory_returning_non_module(user_module):
    spec = model_spec(CustomModel(factory=f"{user_module}:not_a_module"), {})
    with pytest.raises(
        TunepipeError, match=r"^model.factory: .* returned dict, not a torch.nn.Module"
    ):
        build_model(spec, (4,), 2)


def test_custom_factory_module_not_importable():
    spec = model_spec(CustomModel(factory="no_such_pkg_xyz.nets:build"), {})
    with pytest.raises(
        TunepipeError, match=r"^model.factory: cannot import 'no_such_pkg_xyz.nets'"
    ):
        build_model(spec, (4,), 2)


def test_custom_factory_missing_function(user_module):
    spec = model_spec(CustomModel(factory=f"{user_module}:nope"), {})
    with pytest.raises(
        TunepipeError, match=f"^model.factory: module '{user_module}' has no 'nope'"
    ):
        build_model(spec, (4,), 2)
