"""Incremental rung bookkeeping for ASHA: Ray's cutoff, without re-sorting every record.

Ray 2.60's `_Bracket.cutoff` calls ``np.nanpercentile`` over every reward recorded at a rung,
each time a trial reaches that rung: O(n log n) per milestone, so a 10,000-trial study pays for
10,000 sorts per rung. `SortedRung` keeps the rewards sorted as they arrive (bisect: O(log n)
search, one memmove) and `nan_percentile_sorted` reads the percentile off the sorted list with
numpy's own "linear" formula, so the cutoff is bit-for-bit the one Ray computes (tested).
No Ray import: the simulator and the tests use it directly.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from typing import Any


def nan_percentile_sorted(values: list[float], q: float) -> float:
    """``np.nanpercentile(values, q)`` for a sorted list with the NaNs already left out.

    Mirrors numpy's "linear" method: virtual index (n - 1) * q / 100, and numpy's `_lerp`,
    which interpolates from the upper neighbour when the weight is >= 0.5.
    """
    n = len(values)
    if n == 0:
        return math.nan  # numpy warns "All-NaN slice" and returns nan
    virtual = (n - 1) * (q / 100)
    if virtual >= n - 1:
        lo = hi = values[-1]
        gamma = virtual - (n - 1)
    else:
        below = math.floor(virtual)
        lo, hi = values[below], values[below + 1]
        gamma = virtual - below
    diff = hi - lo
    if gamma >= 0.5:
        return hi - diff * (1 - gamma)
    return lo + diff * gamma


class SortedRung(dict):
    """A rung's ``{trial_id: reward}`` that also keeps its non-NaN rewards sorted.

    A dict so that Ray's `_Bracket.on_result` (membership tests, assignment) runs unchanged.
    """

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.sorted: list[float] = []
        for key, value in (items or {}).items():
            self[key] = value

    def __setitem__(self, key: str, value: Any) -> None:
        if key in self:
            self._discard(dict.__getitem__(self, key))
        super().__setitem__(key, value)
        if value is not None and value == value:  # NaN != NaN: nanpercentile skips it
            bisect.insort(self.sorted, float(value))

    def __delitem__(self, key: str) -> None:
        self._discard(dict.__getitem__(self, key))
        super().__delitem__(key)

    def _discard(self, value: Any) -> None:
        if value is not None and value == value:
            del self.sorted[bisect.bisect_left(self.sorted, float(value))]

    def __reduce__(self):  # pickle rebuilds through __init__ (Ray's scheduler save/restore)
        return (type(self), (dict(self),))

    def in_top(self, value: float, rf: float) -> bool:
        """Whether `value`, already recorded here, ranks in the top 1/rf of the rung's rewards
        (higher is better), at least the single best: the rank rule (`PlaybookASHA`'s
        ``rung_rule="rank"``, Optuna's successive halving). A NaN reward is never in the top."""
        if value is None or value != value:
            return False
        keep = max(1, math.floor(len(self.sorted) / rf))
        return float(value) >= self.sorted[-keep]

    def percentile(self, q: float) -> float | None:
        """Ray's cutoff: None for an empty rung, else the q-th percentile of its rewards."""
        if not self:
            return None
        return nan_percentile_sorted(self.sorted, q)
