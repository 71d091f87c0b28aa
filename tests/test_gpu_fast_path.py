"""The GPU fast path on a machine without a GPU: settings, `auto` on a CPU, the CPU path's results
unchanged, buffer reuse, compile-free state dicts, the GPU-request check, and both benchmarks'
CPU modes (issue 18; the GPU measurements themselves need a GPU machine, docs/gpu.md)."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO, study_dict
from tunepipe.config import StudyConfig, TrainConfig
from tunepipe.data import iterate_batches
from tunepipe.engine.gpu_check import ResourceError, gpu_batch_notes, gpu_request_problem
from tunepipe.train import checkpoint as ckpt
from tunepipe.train import fast as fastpath
from tunepipe.train.loop import Hyper, make_optimizer, train_epoch

CPU = torch.device("cpu")


def test_settings_validate_and_default_to_auto():
    train = TrainConfig()
    assert (train.precision, train.channels_last, train.compile) == ("auto", "auto", "auto")
    ok = TrainConfig(precision="bf16", channels_last=True, compile=False)
    assert ok.precision == "bf16" and ok.channels_last is True and ok.compile is False
    for bad in ({"precision": "fp64"}, {"compile": "sometimes"}, {"channels_last": "yes please"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TrainConfig(**bad)


def test_fractional_gpu_above_one_is_refused():
    StudyConfig.model_validate(study_dict(resources={"gpu": 0.25}))
    StudyConfig.model_validate(study_dict(resources={"gpu": 2}))
    with pytest.raises(ValueError, match="whole number"):
        StudyConfig.model_validate(study_dict(resources={"gpu": 1.5}))


def test_auto_resolves_to_the_plain_loop_on_a_cpu():
    fast = fastpath.resolve(TrainConfig(), CPU, steps=10**7, image_input=True, train_bytes=1)
    assert (fast.precision, fast.channels_last, fast.compile, fast.data_on_device) == (
        "fp32",
        False,
        False,
        False,
    )
    assert fast.amp_dtype is None and fast.grad_scaler() is None


def test_explicit_settings_are_honoured_on_a_cpu():
    train = TrainConfig(precision="bf16", channels_last=True, compile=True)
    fast = fastpath.resolve(train, CPU, steps=1, image_input=True, train_bytes=1)
    assert (fast.precision, fast.channels_last, fast.compile) == ("bf16", True, True)
    x = torch.rand(2, 1, 8, 8)
    assert fast.inputs(x).is_contiguous(memory_format=torch.channels_last)
    with fast.autocast():
        assert torch.nn.Linear(4, 2)(torch.rand(3, 4)).dtype == torch.bfloat16


def _reference_epoch(model, optimizer, loss_fn, x, y, hp, shuffle):
    """The training epoch as it was before the fast path: x[idx] gathers, a sync per batch."""
    model.train()
    total, count = 0.0, 0
    for xb, yb in iterate_batches(x, y, hp.batch_size, shuffle):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(xb)
        count += len(xb)
    return total / count


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_cpu_epochs_are_bit_identical_to_the_plain_loop(optimizer):
    x, y = torch.randn(203, 12), torch.randint(0, 3, (203,))
    hp = Hyper(optimizer, 0.01, 0.9, 0.0, 16, None)
    runs = []
    for epoch_fn in (_reference_epoch, train_epoch):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(12, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
        opt = make_optimizer(model, hp)
        gen = torch.Generator().manual_seed(1)
        losses = [epoch_fn(model, opt, torch.nn.CrossEntropyLoss(), x, y, hp, gen) for _ in "abc"]
        runs.append((losses, [p.detach().clone() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1], strict=True))


def test_a_non_finite_batch_makes_the_epoch_diverge():
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    x[37] = float("inf")
    model = torch.nn.Linear(4, 1)
    hp = Hyper("sgd", 0.01, 0.9, 0.0, 16, None)
    loss = train_epoch(
        model,
        make_optimizer(model, hp),
        torch.nn.MSELoss(),
        x,
        y,
        hp,
        torch.Generator().manual_seed(0),
    )
    assert math.isnan(loss)


def test_reused_buffers_give_the_same_batches_and_alternate():
    x, y = torch.arange(50.0).reshape(25, 2), torch.arange(25)
    plain = [
        (xb.clone(), yb.clone())
        for xb, yb in iterate_batches(x, y, 4, torch.Generator().manual_seed(3))
    ]
    reused, pointers = [], []
    for xb, yb in iterate_batches(x, y, 4, torch.Generator().manual_seed(3), reuse_buffers=True):
        reused.append((xb.clone(), yb.clone()))
        pointers.append(xb.data_ptr())
    assert len(plain) == len(reused) == 7  # the last, partial batch of 1 row is kept
    assert all(
        torch.equal(a, c) and torch.equal(b, d)
        for (a, b), (c, d) in zip(plain, reused, strict=True)
    )
    assert pointers[0] == pointers[2] != pointers[1]  # two buffers, alternately


def test_compiled_models_save_plain_state_dicts(tmp_path):
    fast = fastpath.FastPath(CPU, compile=True)
    model, forward = fastpath.prepare_model(torch.nn.Sequential(torch.nn.Linear(3, 2)), fast)
    assert forward is not model and type(forward).__name__ == "OptimizedModule"
    assert list(model.state_dict()) == ["0.weight", "0.bias"]  # no _orig_mod. prefix
    ckpt.save(tmp_path, model=model, optimizer=None, epoch=1, rng=None, meta={})
    fresh = torch.nn.Sequential(torch.nn.Linear(3, 2))
    fresh.load_state_dict(ckpt.load(tmp_path)[0]["model"])
    assert torch.equal(fresh[0].weight, model[0].weight)


def test_gpu_request_rule():
    assert gpu_request_problem(0, 0, None) is None
    assert gpu_request_problem(0.25, 1, None) is None
    assert gpu_request_problem(1, 0, 8) is None  # the autoscaler can add GPU nodes
    problem = gpu_request_problem(0.25, 0, None)
    assert "resources.gpu" in problem and "0.25" in problem and "no autoscaler" in problem
    assert "node types 0" in gpu_request_problem(2, 1, 0)


def test_gpu_batch_size_note():
    assert gpu_batch_notes(StudyConfig.model_validate(study_dict())) == []
    study = StudyConfig.model_validate(
        study_dict(
            resources={"gpu": 0.5},
            search_space={"batch_size": {"type": "choice", "values": [16, 64, 100]}},
        )
    )
    (note,) = gpu_batch_notes(study)
    assert "16, 100" in note and "B1" in note


def test_the_autoscaler_lookup_ray_keeps_private_still_exists():
    from ray._private.state import state  # tunepipe.engine.gpu_check.autoscaler_gpus reads it

    assert callable(state.get_max_resources_from_cluster_config)


@pytest.mark.ray
def test_a_gpu_study_on_a_cluster_without_gpus_stops_before_any_trial(ray_session, tmp_path):
    from tunepipe.engine.runner import run_study

    study = StudyConfig.model_validate(
        study_dict(resources={"gpu": 0.25}, storage=str(tmp_path), playbook={"sanity": False})
    )
    with pytest.raises(ResourceError, match="resources.gpu") as caught:
        run_study(study, progress=False)
    assert caught.value.exit_code == 2
    assert not list(tmp_path.rglob("result.json"))  # no trial started


def test_loader_benchmark_prints_its_table():
    done = subprocess.run(
        [
            sys.executable,
            "benchmarks/loader.py",
            "--rows",
            "300",
            "--features",
            "64",
            "--batch",
            "32",
            "--repeats",
            "1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for method in ("memcpy", "numpy take", "x[idx]", "tunepipe iterate_batches", "DataLoader"):
        line = next(ln for ln in done.stdout.splitlines() if method in ln)
        assert float(line.split()[-1]) > 0


@pytest.mark.ray
def test_gpu_throughput_benchmark_runs_on_the_cpu():
    done = subprocess.run(
        [sys.executable, "benchmarks/gpu_throughput.py", "--cpu"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    assert "device: CPU" in out
    for label in (
        "(a) plain eager fp32",
        "(b) tunepipe fast path",
        "(a) usual",
        "(b) tunepipe run",
    ):
        line = next(ln for ln in out.splitlines() if ln.startswith(label))
        numbers = [float(v) for v in line.split()[-3:] if v.replace(".", "").isdigit()]
        assert numbers and all(v > 0 for v in numbers), line
    assert "speed-up, whole process:" in out
