"""The study's Ray scheduler: the playbook rules (tunepipe_schedulers/) with Ray's ASHA or PBT."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from ray.tune import Callback

from tunepipe.config import TRAIN_KEYS, StudyConfig
from tunepipe_schedulers.judge import MetricKeys, PlaybookJudge
from tunepipe_schedulers.rules import DivergenceRule, OverfittingRule, PlateauRule


def build_judge(study: StudyConfig, data: Any = None) -> PlaybookJudge:
    """The rules from `stopping:`; they read losses (P3), named by `metrics:` for own trainables."""
    st = study.stopping
    keys = MetricKeys(**study.metrics.model_dump()) if study.trainable else MetricKeys()
    plateau = PlateauRule(**st.plateau.model_dump()) if st.plateau else None
    if study.scheduler.kind == "pbt":
        plateau = None  # PBT's exploit already moves a stalled trial's lr by the same factors
    return PlaybookJudge(
        divergence=DivergenceRule(**st.divergence.model_dump()) if st.divergence else None,
        overfitting=OverfittingRule(**st.overfitting.model_dump()) if st.overfitting else None,
        plateau=plateau,
        keys=keys,
        mode="min",
        initial_loss=st.initial_loss
        if st.initial_loss is not None
        else expected_initial_loss(study, data),
    )


def expected_initial_loss(study: StudyConfig, data: Any) -> float | None:
    """The loss of a sane untrained model (P5's reference): ln C, ln 2, or the standardised
    regression targets' variance (`PreparedData.chance_loss`). None for own trainables."""
    if study.trainable or data is None:
        return None
    return data.chance_loss()


def nothing_learned(summary: dict[str, Any], chance: float | None) -> str | None:
    """Why no trial counts as best when even the best val loss sits at chance level (a model no
    better than guessing is never shown as "best"), else None."""
    best = summary.get("best_val_loss")
    if chance is None or best is None or best < chance:
        return None
    reasons = summary["stop_reasons"]
    hint = (
        "the rates may be too low: widen the lr range upwards, or run `tunepipe sanity` (P5)"
        if set(reasons) <= {"plateau", "completed"} and not reasons.get("diverged")
        else "lower the learning rate (P5)"
    )
    return (
        f"no trial learned: the best val_loss {best:.4g} is not below the chance-level loss "
        f"{chance:.4g} (stop reasons: {reasons}); {hint}"
    )


def build_scheduler(study: StudyConfig, data: Any = None) -> Any:
    """PlaybookASHA (asha, fifo) or PlaybookPBT over `training_iteration` (one per epoch)."""
    from tunepipe_schedulers.ray_asha import PlaybookASHA

    s, judge = study.scheduler, build_judge(study, data)
    common: dict[str, Any] = {}  # metric and mode reach the scheduler through TuneConfig
    if s.kind == "pbt":
        from tunepipe_schedulers.explore import ExplorePolicy
        from tunepipe_schedulers.ray_pbt import PlaybookPBT

        policy = ExplorePolicy(
            decay_factors=tuple(s.lr_factors), resample_probability=s.resample_probability
        )
        return PlaybookPBT(
            pbt_space(study),
            judge=judge,
            policy=policy,
            seed=study.seed,
            perturbation_interval=s.perturbation_interval,
            burn_in_period=s.burn_in_period,
            quantile_fraction=s.quantile_fraction,
            max_t=s.max_epochs,
            **common,
        )
    if s.kind == "fifo":  # one rung at the end: nothing is pruned, the rules still run
        return PlaybookASHA(
            judge=judge,
            max_t=s.max_epochs,
            grace_period=s.max_epochs,
            reduction_factor=s.reduction_factor,
            **common,
        )
    return PlaybookASHA(
        judge=judge,
        max_t=s.max_epochs,
        grace_period=s.grace_period,
        reduction_factor=s.reduction_factor,
        brackets=s.brackets,
        rung_rule=s.rung_rule,
        **common,
    )


PBT_EXPLORED = tuple(k for k in (*TRAIN_KEYS, "dropout") if k != "optimizer")


def pbt_space(study: StudyConfig) -> dict[str, dict[str, Any]]:
    """The search space as plain dicts for PBT's explore step (constants are not explored).

    Only training settings and dropout are explored: an exploit clones the donor's weights and
    optimizer state, so a setting that shapes them (widths, depth, channels, a custom factory's
    arguments, the optimizer itself) must stay the donor's, or restoring them fails (a size
    mismatch; Adam's state in an SGD optimizer) and the trial errors.
    """
    out = {}
    for name, dom in study.search_space.items():
        if not isinstance(dom, BaseModel) or name not in PBT_EXPLORED:
            continue
        if dom.type in ("choice", "grid"):
            out[name] = {"type": "choice", "values": list(dom.values)}
        elif dom.type in ("randint", "lograndint"):
            out[name] = {"type": "int", "low": dom.low, "high": dom.high - 1}
        elif dom.type == "qrandint":
            out[name] = {"type": "int", "low": dom.low, "high": dom.high}
        elif dom.type == "quniform":
            out[name] = {"type": "uniform", "low": dom.low, "high": dom.high}
        else:
            out[name] = {"type": dom.type, "low": dom.low, "high": dom.high}
    return out


def decision_dict(record: Any) -> dict[str, Any]:
    """A scheduler's StopRecord as plain JSON-ready data."""
    if record is None:
        return {}
    reason = getattr(record.reason, "value", record.reason)
    return {"reason": reason, "detail": record.detail, "best_epoch": record.best_epoch}


DECISIONS_FILE = "decisions.json"


class DecisionLog(Callback):
    """Writes the scheduler's stop decisions to the run folder as each trial ends.

    A scheduler keeps its decisions in memory; after a driver crash, `tunepipe resume` rebuilds
    the scheduler from Tune's older snapshot, so without this log a trial stopped for
    overfitting or plateau before the crash would come back with no reason.
    """

    def __init__(self, scheduler: Any, loc: Any) -> None:
        self.scheduler, self.loc = scheduler, loc

    def _write(self) -> None:
        merged = read_decisions(self.loc)
        merged.update({tid: decision_dict(r) for tid, r in self.scheduler.decisions.items()})
        for tid, exploits in getattr(self.scheduler, "exploits", {}).items():  # PBT's history
            merged.setdefault(tid, {})["exploits"] = exploits
        self.loc.write_json(DECISIONS_FILE, merged)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write()


def read_decisions(loc: Any) -> dict[str, dict[str, Any]]:
    """The decisions logged in a run folder (empty when none were)."""
    return loc.read_json(DECISIONS_FILE) if loc.exists(DECISIONS_FILE) else {}
