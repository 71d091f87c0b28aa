"""In-trial learning-rate schedules (playbook L1; the case study's net4 for `linear`)."""

from __future__ import annotations

import pytest

from tunepipe.config import LRSchedule
from tunepipe.train.loop import Hyper, schedule_at

HP = Hyper(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=0.0, batch_size=32, grad_clip=None)


def at(schedule: LRSchedule, epoch: int, max_epochs: int = 11) -> tuple[float, float]:
    return schedule_at(schedule, HP, epoch, max_epochs)


def test_constant_keeps_the_base_rate_and_momentum():
    assert at(LRSchedule(), 7) == (0.1, 0.9)


def test_step_multiplies_by_gamma_every_step_size_epochs():
    s = LRSchedule(kind="step", step_size=3, gamma=0.5)
    assert [at(s, e)[0] for e in (1, 3, 4, 6, 7)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])


def test_linear_falls_to_final_fraction_while_momentum_rises_as_in_net4():
    s = LRSchedule(kind="linear", final_fraction=0.01, momentum_end=0.999)
    assert at(s, 1) == pytest.approx((0.1, 0.9))
    assert at(s, 11) == pytest.approx((0.001, 0.999))
    # Epoch 6 of 11 is halfway: each value is the midpoint of its start and end.
    assert at(s, 6) == pytest.approx(((0.1 + 0.001) / 2, (0.9 + 0.999) / 2))
    lrs = [at(s, e)[0] for e in range(1, 12)]
    assert len({round(b - a, 12) for a, b in zip(lrs, lrs[1:], strict=False)}) == 1  # linear


def test_cosine_goes_half_a_cosine_from_base_to_final_fraction():
    s = LRSchedule(kind="cosine", final_fraction=0.0)
    assert at(s, 1)[0] == pytest.approx(0.1)
    assert at(s, 6)[0] == pytest.approx(0.05)
    assert at(s, 11)[0] == pytest.approx(0.0, abs=1e-12)
    # Epoch 3 is a fifth of the way (36 degrees of the half turn); cos 36° = (1 + √5) / 4.
    assert at(s, 3)[0] == pytest.approx(0.1 * (1 + (1 + 5**0.5) / 4) / 2)
    # Half a cosine is point-symmetric about its middle: lr(t) + lr(1 - t) = base + final.
    assert at(s, 3)[0] + at(s, 9)[0] == pytest.approx(0.1)


def test_a_plateau_decay_scales_the_schedules_base_rate():
    s = LRSchedule(kind="step", step_size=3, gamma=0.5)
    decayed = Hyper(**{**HP.__dict__, "lr": 0.05})
    assert schedule_at(s, decayed, 4, 11)[0] == pytest.approx(at(s, 4)[0] * 0.5)
