"""PBT's explore step, the playbook's way (pure: no Ray, no torch).

A search space is described by plain dicts, as the study file gives it::

    {"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1},
     "momentum": {"type": "uniform", "low": 0.8, "high": 0.999},
     "batch_size": {"type": "choice", "values": [16, 32, 64, 128]},
     "width": {"type": "int", "low": 32, "high": 512}}

`playbook_explore` moves the learning rate by the decay factors of L1 (x0.5, x0.3, and their
inverses: PBT explores both ways), raises momentum (SGD's ``momentum``, Adam's ``beta1``)
towards 0.99-0.999 as net4 of the case study did (MO1 starts it at 0.9), moves batch size
along powers of two (B1), and treats other entries as Ray's PBT does (x1.2/x0.8, or a list shift).
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SPACE_TYPES = ("loguniform", "uniform", "int", "choice")
MOMENTUM_CAP = 0.999  # beyond it the running average remembers too many stale gradients


@dataclass(frozen=True)
class Sampler:
    """A picklable resampler for one space entry (Ray's PBT calls it; lambdas don't pickle)."""

    spec: tuple[tuple[str, Any], ...]
    seed: int | None = None

    def __call__(self, rng: random.Random | None = None) -> Any:
        return sample(dict(self.spec), rng or random.Random(self.seed))


def check_space(space: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise a ValueError naming the entry and the rule for a malformed space description."""
    for name, spec in space.items():
        kind = spec.get("type")
        if kind not in SPACE_TYPES:
            raise ValueError(f"space.{name}.type={kind!r}: use one of {SPACE_TYPES}")
        if kind == "choice":
            if not spec.get("values"):
                raise ValueError(f"space.{name}.values: a choice needs a non-empty list")
        elif not spec["low"] < spec["high"]:
            raise ValueError(f"space.{name}: low={spec['low']!r} must be < high={spec['high']!r}")
        if kind == "loguniform" and not spec["low"] > 0:
            raise ValueError(f"space.{name}.low={spec['low']!r}: a loguniform needs low > 0")


def sample(spec: Mapping[str, Any], rng: random.Random) -> Any:
    """Draw one value from a space entry."""
    kind = spec["type"]
    if kind == "choice":
        return rng.choice(list(spec["values"]))
    if kind == "int":
        return rng.randint(int(spec["low"]), int(spec["high"]))
    if kind == "loguniform":
        return math.exp(rng.uniform(math.log(spec["low"]), math.log(spec["high"])))
    return rng.uniform(spec["low"], spec["high"])


def powers_of_two(spec: Mapping[str, Any]) -> list[int]:
    """Batch sizes a space allows, as powers of two (B1: 16, 32, 64, 128)."""
    if spec["type"] == "choice":
        values = sorted(int(v) for v in spec["values"])
        return [v for v in values if v > 0 and v & (v - 1) == 0] or values
    low, high = max(1, int(spec["low"])), int(spec["high"])
    return [2**k for k in range(low.bit_length() - 1, high.bit_length()) if low <= 2**k <= high]


def mutations_from_space(
    space: Mapping[str, Mapping[str, Any]], batch_key: str = "batch_size"
) -> dict[str, Any]:
    """Ray PBT's ``hyperparam_mutations``: lists for discrete entries, samplers otherwise."""
    check_space(space)
    out: dict[str, Any] = {}
    for name, spec in space.items():
        if name == batch_key:
            out[name] = powers_of_two(spec)
        elif spec["type"] == "choice":
            out[name] = list(spec["values"])
        else:
            out[name] = Sampler(tuple(sorted(spec.items())))
    return out


def _clip(value: float, spec: Mapping[str, Any]) -> float:
    return min(max(value, spec["low"]), spec["high"])


def _shift(values: Sequence[Any], current: Any, rng: random.Random) -> tuple[Any, str]:
    if current not in values:
        return rng.choice(list(values)), "resample"
    idx = values.index(current) + rng.choice((-1, 1))
    idx = min(max(idx, 0), len(values) - 1)
    return values[idx], f"shift to {values[idx]}"


@dataclass(frozen=True)
class ExplorePolicy:
    """Which config entries get the playbook's moves, and how far they go."""

    lr_key: str = "lr"
    momentum_keys: tuple[str, ...] = ("momentum", "beta1")
    batch_key: str = "batch_size"
    decay_factors: tuple[float, ...] = (0.5, 0.3)  # L1
    momentum_step: float = 0.5  # halves 1 - momentum: 0.9 -> 0.95 -> 0.975 ...
    resample_probability: float = 0.25  # Ray PBT's default


def _move(name: str, value: Any, spec: Mapping[str, Any], p: ExplorePolicy, rng) -> tuple:
    """One entry's new value and a word on how it moved."""
    if name == p.batch_key:
        return _shift(powers_of_two(spec), value, rng)
    if spec["type"] == "choice":
        return _shift(list(spec["values"]), value, rng)
    if name == p.lr_key:
        factors = [*p.decay_factors, *(1 / f for f in p.decay_factors)]
        factor = rng.choice(factors)
        return _clip(value * factor, spec), f"x {factor:.3g}"
    if name in p.momentum_keys:
        cap = min(spec["high"], MOMENTUM_CAP)
        return min(cap, 1 - (1 - value) * p.momentum_step), "raised"
    factor = rng.choice((1.2, 0.8))
    new = _clip(value * factor, spec)
    return (int(round(new)) if spec["type"] == "int" else new), f"x {factor}"


def playbook_explore(
    config: Mapping[str, Any],
    space: Mapping[str, Mapping[str, Any]],
    rng: random.Random,
    policy: ExplorePolicy = ExplorePolicy(),
) -> tuple[dict[str, Any], dict[str, str]]:
    """A perturbed copy of `config` (the trial being cloned) and {entry: how it moved}."""
    new = copy.deepcopy(dict(config))
    ops: dict[str, str] = {}
    for name, spec in space.items():
        if name not in new or rng.random() < policy.resample_probability:
            new[name], ops[name] = sample(spec, rng), "resample"
        else:
            new[name], ops[name] = _move(name, new[name], spec, policy, rng)
    return new, ops
