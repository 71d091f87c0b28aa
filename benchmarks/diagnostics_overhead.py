"""Cost of the per-epoch diagnostics (grad_norm, update_ratio, top_prob, dead_relu) on digits.

Two measures, because a shared machine makes epoch times noisy:
- "epoch diff": the fastest epoch (train_epoch + evaluate) with the Diagnostics hooks against the
  fastest without (the minimum is the time least disturbed by other processes, as in timeit),
  alternating the two in ABBA order so load drift hits both alike;
- "hook time": the time spent inside the hooks themselves, summed per epoch (direct, low noise).
Budget: at most 5% of an epoch.

    PYTHONPATH=. python benchmarks/diagnostics_overhead.py [--epochs 60]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from tunepipe.models import build_model, model_spec, task_head
from tunepipe.playbook.stage import load_study_data
from tunepipe.study import load_study
from tunepipe.train.diagnostics import Diagnostics
from tunepipe.train.loop import Hyper, evaluate, make_optimizer, to_tensors, train_epoch

STUDY = Path(__file__).resolve().parent.parent / "examples" / "digits.yaml"
CASES = [  # (batch_size, hidden_width, optimizer): small batches are the worst case
    (16, 64, "adam"),
    (16, 256, "sgd"),
    (64, 128, "adam"),
    (128, 256, "adam"),
]


class TimedDiagnostics(Diagnostics):
    """Diagnostics that add up the time spent in their own hooks."""

    seconds = 0.0

    def _timed(self, fn: Any, *args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.seconds += time.perf_counter() - t0

    def _before_step(self, *a: Any) -> None:
        self._timed(super()._before_step, *a)

    def _finish_ratio(self) -> None:
        self._timed(super()._finish_ratio)

    def _on_output(self, *a: Any) -> None:
        self._timed(super()._on_output, *a)

    def _on_relu(self, *a: Any) -> None:
        self._timed(super()._on_relu, *a)

    def epoch_metrics(self) -> dict[str, float]:
        return self._timed(super().epoch_metrics)


def one_epoch(run: dict[str, Any], study: Any, data: Any, tensors: dict, hp: Hyper) -> float:
    head = task_head(data.task)
    t0 = time.perf_counter()
    train_epoch(run["model"], run["opt"], run["loss"], *tensors["train"], hp, run["gen"])
    probe = run["probe"]
    if probe is None:
        evaluate(run["model"], head, run["loss"], *tensors["val"], data)
    else:
        with probe.validating():
            evaluate(run["model"], head, run["loss"], *tensors["val"], data)
        probe.epoch_metrics()
    return time.perf_counter() - t0


def measure(study: Any, data: Any, case: tuple[int, int, str], epochs: int) -> dict[str, float]:
    """Fastest epoch without/with diagnostics and the hooks' own time per epoch (mean)."""
    batch, width, opt = case
    config = {"batch_size": batch, "hidden_width": width, "optimizer": opt, "lr": 1e-3}
    hp, tensors = Hyper.of(study, config), to_tensors(data)
    runs = []
    for with_diag in (False, True):
        torch.manual_seed(0)
        model = build_model(model_spec(study.model, config), data.input_shape, data.output_dim)
        optimizer = make_optimizer(model, hp)
        probe = TimedDiagnostics(model, optimizer, data.task) if with_diag else None
        runs.append(
            {"model": model, "opt": optimizer, "probe": probe, "times": [],
             "gen": torch.Generator().manual_seed(0), "loss": task_head(data.task).loss_fn()}
        )  # fmt: skip
    for epoch in range(epochs):
        for run in runs if epoch % 2 == 0 else runs[::-1]:  # ABBA
            run["times"].append(one_epoch(run, study, data, tensors, hp))
    plain, diag = (min(r["times"]) for r in runs)
    return {"plain": plain, "diag": diag, "hooks": runs[1]["probe"].seconds / epochs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as a trial with resources.cpu: 1
    study = load_study(STUDY)
    data = load_study_data(study, STUDY.parent)
    print(f"digits MLP, {len(data.train)} training rows, best of {args.epochs} epochs, 1 thread")
    head = f"{'batch':>5} {'width':>5} {'opt':>4} {'plain ms':>9} {'diag ms':>8}"
    print(head + f" {'epoch diff':>10} {'hook ms':>8} {'hook %':>7}")
    for case in CASES:
        m = measure(study, data, case, args.epochs)
        diff = 100 * (m["diag"] - m["plain"]) / m["plain"]
        hook = 100 * m["hooks"] / m["plain"]
        print(
            f"{case[0]:>5} {case[1]:>5} {case[2]:>4} {1e3 * m['plain']:>9.1f} "
            f"{1e3 * m['diag']:>8.1f} {diff:>9.1f}% {1e3 * m['hooks']:>8.2f} {hook:>6.1f}%"
        )


if __name__ == "__main__":
    main()
