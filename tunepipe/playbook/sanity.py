"""The sanity stage: the playbook's before-you-tune checks, on the driver, without Ray.

Order: data checks (D1, P2, P8), the search space (L1), the initial loss (P2, P5), the LR range
test (P5, L1), then P1's overfit check with the largest model. Everything is in docs/sanity.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from tunepipe.config import AUTO_LR, LogUniform, StudyConfig
from tunepipe.errors import SanityFailed, TunepipeError
from tunepipe.playbook.result import Check, LRRange, SanityResult

if TYPE_CHECKING:
    from tunepipe.data import PreparedData

LOG_SCALE_KEYS = ("lr", "weight_decay")  # L1: rates are tuned over decades, on a log scale
DECADES_WARN = 100.0  # a uniform domain over two decades samples the top one 90% of the time


def run_sanity(study: StudyConfig, data: PreparedData | None) -> SanityResult:
    """Run every check that applies to the study; never raises for a failed check (see .passed)."""
    t0 = time.monotonic()
    if study.trainable or data is None:
        result = SanityResult(
            [space_check(study)],
            notes=[
                f"the study trains with its own trainable ({study.trainable}): the data, "
                "initial-loss, overfit and LR range checks need tunepipe's data and model "
                "and were skipped"
            ],
        )
    else:
        with _threads(max(1, int(study.resources.cpu))):
            result = _model_checks(study, data)
    result.seconds = time.monotonic() - t0
    return result


@contextmanager
def _threads(n: int) -> Iterator[None]:
    """Train with the CPUs one trial asks for (as the trainable does), then restore torch's
    setting: on a busy machine, extra threads of tiny nets mostly wait on each other."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _model_checks(study: StudyConfig, data: PreparedData) -> SanityResult:
    from tunepipe.playbook.data_checks import data_checks
    from tunepipe.playbook.init_loss import initial_loss_check
    from tunepipe.playbook.overfit import gradient_check, overfit_check, overfit_run
    from tunepipe.playbook.points import largest_config, lr_of, typical_config
    from tunepipe.playbook.trial import chance_loss, set_up

    checks = data_checks(data, study.data) + [space_check(study)]
    typical = typical_config(study)
    start = set_up(study, data, {**typical, "lr": lr_of(study)})
    init = initial_loss_check(start, data, study.data, pretrained=bool(study.init_from))
    lr_range = _lr_range(study, data, typical)
    lr = lr_of(study, lr_range.suggested_lr if lr_range else None)
    run = overfit_run(
        set_up(study, data, {**largest_config(study), "lr": lr}),
        data,
        study.playbook,
        chance_loss(data),
    )
    overfit = overfit_check(run)
    target = next((c for c in checks if c.name == "target scale" and c.status != "pass"), None)
    if overfit.status == "fail" and target is not None:
        overfit.causes.insert(0, target.causes[0])  # P2: what the data check already found
    checks += [init, lr_range_check(study, lr_range), gradient_check(run), overfit]
    return SanityResult(
        checks,
        lr_range=lr_range,
        initial_loss=init.values.get("loss"),
        overfit_curve=run.losses,
        overfit_target=run.target,
    )


def _lr_range(study: StudyConfig, data: PreparedData, typical: dict[str, Any]) -> LRRange:
    """P5: the LR range test with the typical model, optimizer and batch size of the space."""
    import torch

    from tunepipe.playbook.lr_range import lr_range_test
    from tunepipe.playbook.trial import set_up, tensors

    setup = set_up(study, data, {**typical, "lr": study.playbook.lr_range_start})
    p = study.playbook
    result = lr_range_test(
        setup.model,
        setup.optimizer,
        setup.loss_fn,
        *tensors(data.train.x, data.train.y),
        batch_size=min(setup.hp.batch_size, len(data.train)),
        start=p.lr_range_start,
        end=p.lr_range_end,
        steps=p.lr_range_steps,
        generator=torch.Generator().manual_seed(setup.seed),
    )
    result.setting = {"optimizer": setup.hp.optimizer, "batch_size": setup.hp.batch_size}
    result.setting["config"] = {k: v for k, v in typical.items() if k != "lr"}
    return result


def lr_range_check(study: StudyConfig, r: LRRange) -> Check:
    """The range test's advice, and whether the study's own lr sits where the loss falls."""
    name, lr = "lr range test", study.search_space.get("lr", study.train.lr)
    where = f"{r.setting.get('optimizer')}, batch {r.setting.get('batch_size')}"
    if r.suggested_range is None:
        causes = [
            f"no rate from {r.lrs[0]:.0e} to {r.lrs[-1]:.0e} lowered the loss: see the "
            "gradient-flow and overfit checks",
            "lr: auto needs a range: give lr as a loguniform domain instead",
        ]
        status = "fail" if lr == AUTO_LR else "warn"
        return Check(name, status, f"the loss never fell over the sweep ({where})", causes)
    lo, hi = r.suggested_range
    detail = f"suggested lr {r.suggested_lr:.2g}, range [{lo:.2g}, {hi:.2g}] ({where})"
    values = {"suggested_lr": r.suggested_lr, "low": lo, "high": hi}
    bounds = _bounds(lr)
    if bounds and (bounds[1] < lo or bounds[0] > hi):
        low, high = bounds
        given = f"{low:.2g}" if low == high else f"[{low:.2g}, {high:.2g}]"
        causes = [
            f"the study's lr {given} lies outside the range where the loss falls (L1: too "
            "low learns slowly, too high diverges); use lr: auto or `tunepipe sanity --apply`"
        ]
        return Check(name, "warn", detail + f"; the study's lr {given} is outside it", causes)
    return Check(name, "pass", detail, values=values)


def _bounds(lr: Any) -> tuple[float, float] | None:
    if isinstance(lr, (int, float)) and not isinstance(lr, bool):
        return float(lr), float(lr)
    if isinstance(lr, BaseModel) and hasattr(lr, "low"):
        return float(lr.low), float(lr.high)
    values = [v for v in getattr(lr, "values", []) if isinstance(v, (int, float))]
    return (min(values), max(values)) if values else None


def space_check(study: StudyConfig) -> Check:
    """L1: rates are searched on a log scale; a uniform domain over decades wastes the budget."""
    bad = [
        f"{k}: uniform over {v.high / v.low:.0f}x"
        for k, v in study.search_space.items()
        if k in LOG_SCALE_KEYS
        and getattr(v, "type", None) in ("uniform", "quniform")
        and v.low > 0
        and v.high / v.low >= DECADES_WARN
    ]
    n = len(study.search_space)
    if bad:
        causes = ["most samples fall in the top decade: use type: loguniform (L1)"]
        return Check("search space", "warn", "; ".join(bad), causes)
    if not n:
        return Check("search space", "pass", "no search space: every setting is fixed")
    auto = " (lr: auto, from the LR range test)" if study.search_space.get("lr") == AUTO_LR else ""
    return Check("search space", "pass", f"{n} hyperparameters, rates on a log scale{auto}")


def resolve_auto_lr(study: StudyConfig, result: SanityResult | None) -> StudyConfig:
    """`lr: auto` → a loguniform domain over the LR range test's suggested range.

    Call it before building the Tune space; a study without `lr: auto` comes back unchanged.
    Raises SanityFailed when the study asks for auto but the test found no range.
    """
    if study.search_space.get("lr") != AUTO_LR:
        return study
    found = result.lr_range.suggested_range if result and result.lr_range else None
    if not found:
        raise SanityFailed(
            "search_space.lr: auto, but the LR range test found no rate at which the loss "
            "falls; fix the failing sanity checks, or give lr as a loguniform domain"
        )
    space = dict(study.search_space)
    space["lr"] = LogUniform(type="loguniform", low=round_sig(found[0]), high=round_sig(found[1]))
    return study.model_copy(update={"search_space": space})


def failure(result: SanityResult, where: str) -> SanityFailed:
    """The error that stops a study: each failed check with its most likely cause."""
    lines = []
    for c in result.failures:
        lines.append(f"sanity check {c.name!r} failed: {c.detail}")
        if c.causes:
            lines.append(f"{c.name}: likely cause: {c.causes[0]}")
    lines.append(
        f"the study stopped before the search; details in {where}/sanity.json (to skip the "
        "stage: playbook: {sanity: false})"
    )
    return SanityFailed(lines)


def require_model(study: StudyConfig, what: str) -> None:
    if study.trainable:
        raise TunepipeError(f"trainable: {what} needs data + model; this study trains its own")


def round_sig(v: float) -> float:
    return float(f"{v:.3g}")
