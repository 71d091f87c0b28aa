"""One trial's training, top to bottom (house style 8). Independent of Ray: `report` is injected.

The Ray trainable (tunepipe.train.trainable) wraps `run_trial` with Ray's report and checkpoint
functions; tests and the sanity stage call it directly on tiny tensors.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tunepipe.config import TRAIN_KEYS, StudyConfig
from tunepipe.data import PreparedData, iterate_batches
from tunepipe.data.augment import FlipPlan, random_hflip
from tunepipe.models import build_model, model_spec, task_head
from tunepipe.train import checkpoint as ckpt
from tunepipe.train import fast as fastpath
from tunepipe.train.ckpt_policy import CheckpointPolicy
from tunepipe.train.diagnostics import Diagnostics
from tunepipe.train.pretrained import load_pretrained

# report(metrics, checkpoint_dir or None) -> None; raises to stop the trial if the caller wants.
ReportFn = Callable[[dict[str, Any], "str | None"], None]
# keep_best(checkpoint_dir, epoch) -> None: keep these weights as the trial's best, apart from
# the checkpoints reported (train.checkpoint.keep_best); called before the epoch's report.
KeepBestFn = Callable[[str, int], None]


@dataclass
class Hyper:
    """The training settings of one trial: the study's, overridden by the sampled config."""

    optimizer: str
    lr: float
    momentum: float
    weight_decay: float
    batch_size: int
    grad_clip: float | None
    nesterov: bool = False

    @classmethod
    def of(cls, study: StudyConfig, config: dict[str, Any]) -> Hyper:
        base = study.train.model_dump(include=set(TRAIN_KEYS))
        base.update({k: config[k] for k in TRAIN_KEYS if k in config})
        return cls(
            optimizer=str(base["optimizer"]),
            lr=float(base["lr"]),
            momentum=float(base["momentum"]),
            weight_decay=float(base["weight_decay"]),
            batch_size=int(base["batch_size"]),
            grad_clip=float(base["grad_clip"]) if base["grad_clip"] else None,
            nesterov=study.train.nesterov,
        )


def trial_seed(study_seed: int, config: dict[str, Any]) -> int:
    """A per-trial seed derived from the study seed and the trial's sampled config."""
    text = json.dumps({"seed": study_seed, "config": config}, sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def make_optimizer(model: torch.nn.Module, hp: Hyper) -> torch.optim.Optimizer:
    """O1: Adam by default (momentum is its beta1); SGD with momentum 0.9 (MO1).

    torch's fused implementation when the parameters allow it: one kernel per step instead of a
    loop over tensors, the same update. On this machine's CPU a digits MLP epoch took 26 ms
    instead of 36 with Adam, 23 instead of 25 with SGD (batch 16, one thread).
    """
    params = list(model.parameters())
    if hp.optimizer == "sgd":
        cls, kwargs = torch.optim.SGD, {"momentum": hp.momentum, "nesterov": hp.nesterov}
    else:
        cls, kwargs = torch.optim.Adam, {"betas": (hp.momentum, 0.999)}
    kwargs.update(lr=hp.lr, weight_decay=hp.weight_decay)
    try:
        return cls(params, fused=True, **kwargs)
    except (RuntimeError, ValueError):  # a device or dtype the fused kernels do not cover
        return cls(params, **kwargs)


def trial_device(study: StudyConfig) -> torch.device:
    """The GPU Ray gave this trial when the study asks for one (Ray sets CUDA_VISIBLE_DEVICES
    to the trial's share), else the CPU. Data moves to it once per trial, not per batch."""
    if study.resources.gpu > 0 and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def trial_fast_path(study: StudyConfig, data: PreparedData, hp: Hyper) -> fastpath.FastPath:
    """The trial's precision, layout, compilation and data placement (tunepipe.train.fast)."""
    steps = fastpath.steps_per_trial(len(data.train.x), hp.batch_size, study.scheduler.max_epochs)
    return fastpath.resolve(
        study.train,
        trial_device(study),
        steps=steps,
        image_input=len(data.input_shape) == 3,
        train_bytes=data.train.x.nbytes + data.train.y.nbytes,
    )


def to_tensors(data: PreparedData) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    with warnings.catch_warnings():  # arrays from Ray's object store are read-only; never written
        warnings.simplefilter("ignore", UserWarning)
        out = {
            "train": (torch.from_numpy(data.train.x), torch.from_numpy(data.train.y)),
            "val": (torch.from_numpy(data.val.x), torch.from_numpy(data.val.y)),
        }
        if data.test is not None:
            out["test"] = (torch.from_numpy(data.test.x), torch.from_numpy(data.test.y))
    return out


def run_trial(
    config: dict[str, Any],
    data: PreparedData,
    study: StudyConfig,
    report: ReportFn,
    restore_from: str | Path | None = None,
    keep_best: KeepBestFn | None = None,
) -> str:
    """Train one trial for up to scheduler.max_epochs; returns how it ended (a stop reason).

    With `keep_best`, each new best of the study's metric hands its weights to it, and the
    checkpoints reported are only those a decision or a resume needs (train.ckpt_policy)."""
    hp = Hyper.of(study, config)
    seed = trial_seed(study.seed, config)
    torch.manual_seed(seed)  # model init and dropout draw from torch's generator in this process
    spec = model_spec(study.model, config)
    model = build_model(spec, data.input_shape, data.output_dim)
    if study.init_from:  # pre-training: matching layers from that run's best model
        load_pretrained(model, study.init_from)
    fast = trial_fast_path(study, data, hp)  # on a CPU: fp32, eager, as before (docs/gpu.md)
    model, forward = fastpath.prepare_model(model, fast)
    optimizer = make_optimizer(model, hp)
    probe = Diagnostics(model, optimizer, data.task)  # grad_norm, update_ratio (L1), top_prob (P4)
    head = task_head(data.task)
    loss_fn = head.loss_fn()
    shuffle = torch.Generator().manual_seed(seed)  # D2: a fresh seeded order every epoch
    tensors = fastpath.device_tensors(to_tensors(data), fast)  # on the GPU once per worker
    flip = data.flip.to(fast.device) if data.flip is not None else None  # training batches only
    meta = {
        "model": spec,
        "input_shape": list(data.input_shape),
        "output_dim": data.output_dim,
        "task": data.task,
        "config": config,
        "data_stats": data.stats(),
    }

    start_epoch, decays, initial_config, restored, record = 0, 0, dict(config), {}, []
    if restore_from is not None:
        start_epoch, restored = _restore(restore_from, model, optimizer, shuffle)
        if study.scheduler.kind != "pbt":  # a PBT exploit's new config is what the trial runs
            initial_config = restored.get("initial_config", initial_config)
            decays = restored.get("lr_decays", 0) + (hp.lr < restored.get("lr_base", hp.lr) * 0.999)
        # The trial's own record of the epochs its weights went through (a PBT clone: the
        # donor's), so an epoch whose report Ray lost is still known (results.trial_records).
        record = [r for r in restored.get(ckpt.RECORD_KEY, []) if r.get("epoch", 0) <= start_epoch]
    # Results show the sampled values, not decayed ones; under PBT they show the config the
    # trial ran last (Ray's, after its exploits), so no initial_config is kept.
    if study.scheduler.kind != "pbt":
        meta["initial_config"] = initial_config
    policy = CheckpointPolicy(
        study, restored.get("checkpoint_policy"), best_apart=keep_best is not None
    )
    if start_epoch >= study.scheduler.max_epochs and restored.get("metrics"):
        # Trained to the end, but the driver died before the last report reached it (its
        # checkpoint did): report it again, or the trial would end with no final epoch.
        report(restored["metrics"], None)
        return "completed"

    for epoch in range(start_epoch + 1, study.scheduler.max_epochs + 1):
        lr, momentum = schedule_at(study.train.lr_schedule, hp, epoch, study.scheduler.max_epochs)
        set_rates(optimizer, lr, momentum)  # after a restore too: a decay changed config["lr"]
        train_loss = train_epoch(
            model, optimizer, loss_fn, *tensors["train"], hp, shuffle, fast, forward, flip=flip
        )
        metrics = {"epoch": epoch, "train_loss": train_loss, "lr": lr, "lr_decays": decays}
        if not math.isfinite(train_loss):
            report({**metrics, "val_loss": float("nan"), "stop_reason": "diverged"}, None)
            return "diverged"  # P5: never crash the study; say why the trial ended
        with probe.validating():
            metrics.update(
                evaluate(
                    model, head, loss_fn, *tensors["val"], data, "val", fast=fast, forward=forward
                )
            )
        metrics.update(probe.epoch_metrics())
        record.append(dict(metrics))
        if not math.isfinite(metrics["val_loss"]):
            report({**metrics, "stop_reason": "diverged"}, None)
            return "diverged"
        due = policy.due(epoch, metrics["val_loss"])  # when a decision or resume can need it
        best = policy.improves(metrics)
        if due or best:
            with tempfile.TemporaryDirectory(prefix="tunepipe-ckpt-") as tmp:
                ckpt.save(
                    tmp,
                    model=model,
                    optimizer=optimizer,
                    epoch=epoch,
                    rng=shuffle,
                    meta={
                        **meta,
                        "lr_base": hp.lr,
                        "lr_decays": decays,
                        "checkpoint_policy": policy.state(epoch),
                        "metrics": metrics,
                        ckpt.RECORD_KEY: record,
                    },
                )
                if best and keep_best is not None:  # before the report: it may be the last
                    keep_best(tmp, epoch)
                report(metrics, tmp if due else None)
        else:
            report(metrics, None)
    return "completed"


def schedule_at(sched: Any, hp: Hyper, epoch: int, max_epochs: int) -> tuple[float, float]:
    """(lr, momentum) for an epoch: the base rate `hp.lr` shaped by the in-trial schedule (L1).

    step: × gamma every step_size epochs; linear: down to final_fraction × lr, with momentum
    rising to momentum_end (the case study's net4); cosine: half a cosine to final_fraction.
    """
    progress = (epoch - 1) / max(max_epochs - 1, 1)
    momentum = hp.momentum
    if sched.kind == "step":
        return hp.lr * sched.gamma ** ((epoch - 1) // sched.step_size), momentum
    if sched.kind == "linear":
        if sched.momentum_end is not None:
            momentum = hp.momentum + (sched.momentum_end - hp.momentum) * progress
        return hp.lr * (1 - (1 - sched.final_fraction) * progress), momentum
    if sched.kind == "cosine":
        f = sched.final_fraction
        return hp.lr * (f + (1 - f) * 0.5 * (1 + math.cos(math.pi * progress))), momentum
    return hp.lr, momentum


def set_rates(optimizer: torch.optim.Optimizer, lr: float, momentum: float) -> None:
    """Set lr and momentum (SGD's momentum, Adam's beta1) on every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr
        if "betas" in group:
            group["betas"] = (momentum, group["betas"][1])
        elif "momentum" in group:
            group["momentum"] = momentum


def _restore(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    shuffle: torch.Generator,
) -> tuple[int, dict[str, Any]]:
    """Load a checkpoint into the trial; returns (its epoch, its meta)."""
    state, meta = ckpt.load(path)
    model.load_state_dict(state["model"])
    if state.get("optimizer"):
        optimizer.load_state_dict(state["optimizer"])
    if state.get("rng") is not None:
        shuffle.set_state(state["rng"])
    if state.get("torch_rng") is not None:
        torch.set_rng_state(state["torch_rng"])
    return int(state["epoch"]), meta


def train_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    hp: Hyper,
    shuffle: torch.Generator,
    fast: fastpath.FastPath | None = None,
    forward: Any = None,
    flip: FlipPlan | None = None,
) -> float:
    """One pass over the shuffled training split; the mean batch loss (dropout on). With `flip`,
    a random share of each batch is mirrored as it is drawn (the data stays as it is).

    The loss is summed on the device and read once at the end: one device sync per epoch, not
    per batch. A non-finite batch loss makes the sum non-finite, and the trial stops as diverged.
    """
    fast = fast or fastpath.FastPath(x.device)
    forward = forward or model
    scaler = fast.grad_scaler()
    model.train()
    total = torch.zeros((), dtype=torch.float64, device=fast.device)
    count = 0
    drop_last = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    batches = iterate_batches(
        x, y, hp.batch_size, shuffle, drop_last=drop_last, reuse_buffers=True, device=fast.device
    )
    for xb, yb in batches:
        if flip is not None:  # new tensors: the reused batch buffers are never written
            xb, yb = random_hflip(xb, yb, flip, shuffle)
        optimizer.zero_grad(set_to_none=True)
        with fast.autocast():
            loss = loss_fn(forward(fast.inputs(xb)), yb)
        total += loss.detach().double() * len(xb)
        count += len(xb)
        if scaler is None:
            loss.backward()
        else:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)  # so grad_clip sees the true gradient norm
        if hp.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), hp.grad_clip)  # M2
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)
            scaler.update()
    mean = total.item() / max(count, 1)
    return mean if math.isfinite(mean) else float("nan")


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    head: Any,
    loss_fn: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    data: PreparedData,
    prefix: str = "val",
    batch_size: int = 4096,
    fast: fastpath.FastPath | None = None,
    forward: Any = None,
) -> dict[str, float]:
    """Loss (dropout off) and accuracy or RMSE (in the targets' own units) on one split."""
    fast = fast or fastpath.FastPath(x.device)
    forward = forward or model
    model.eval()
    total, correct, sq_err = 0.0, 0.0, 0.0
    regression = data.task == "regression"
    if regression:  # RMSE in the targets' own units: undo the standardisation per target (P2)
        std = torch.as_tensor(data.target_std if data.target_std is not None else 1.0)
        std = std.to(fast.device)
    present = 0
    for xb, yb in iterate_batches(x, y, batch_size):
        xb, yb = fastpath.to_device(xb, fast.device), fastpath.to_device(yb, fast.device)
        with fast.autocast():
            out = forward(fast.inputs(xb)).float()
        if regression:  # averaged over present labels (NaN: missing, masked)
            seen = ~torch.isnan(yb)
            total += loss_fn(out, yb).item() * int(seen.sum())
            sq_err += (torch.where(seen, (out - torch.nan_to_num(yb)) * std, 0.0) ** 2).sum().item()
            present += int(seen.sum())
        else:
            total += loss_fn(out, yb).item() * len(xb)
            correct += head.correct(out, yb).item()
    n = max(present if regression else len(x), 1)
    metrics = {f"{prefix}_loss": total / n}
    if regression:
        metrics[f"{prefix}_rmse"] = math.sqrt(sq_err / n)
    else:
        metrics[f"{prefix}_acc"] = correct / n
    return metrics
