"""The search algorithm beside PlaybookASHA/PlaybookPBT: Ray's random and grid search, held open
while the scheduler has a paused trial it is about to resume.

Why: Tune keeps a stopped trial's actor for the next trial (`reuse_actors=True`) only while more
trials may come: its search algorithm is not finished, or a trial is staged. A trial paused for an
LR decay (or a PBT exploit) after the last new trial has started would lose its actor, and resume
on a fresh worker process a moment later: Python, Ray and torch imported again, about 2.5 s on a
2-core machine, while that trial is the very next one to run. Counting the search as unfinished
until the scheduler has resumed its paused trials keeps one actor for it (Tune's actor cache keeps
one object when nothing else is wanted); the promotion and pause logic stay Ray's.
"""

from __future__ import annotations

from typing import Any

from ray.tune.search import BasicVariantGenerator, SearchGenerator


class ResumeFirstSearch(BasicVariantGenerator):
    """`BasicVariantGenerator` that is unfinished while `scheduler.awaiting_resume()` is true.

    Args:
        scheduler: anything with `awaiting_resume() -> bool` (PlaybookASHA, PlaybookPBT); other
            schedulers make this Ray's plain generator.
        **kwargs: as `BasicVariantGenerator` (random_state, ...).
    """

    def __init__(self, scheduler: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._scheduler = scheduler

    def is_finished(self) -> bool:
        awaiting = getattr(self._scheduler, "awaiting_resume", None)
        return super().is_finished() and not (awaiting is not None and awaiting())

    def get_state(self) -> Any:
        state = super().get_state()  # False when the space is evaluated lazily
        if state:
            state.pop("_scheduler", None)  # Tune saves the scheduler itself, in tuner.pkl
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        scheduler = self._scheduler
        super().set_state(state)
        self._scheduler = scheduler


class ResumeFirstSearchGenerator(SearchGenerator):
    """Ray's `SearchGenerator` (a Searcher such as OptunaSearch inside) with the same rule as
    ResumeFirstSearch: unfinished while the scheduler is about to resume a paused trial."""

    def __init__(self, searcher: Any, scheduler: Any) -> None:
        super().__init__(searcher)
        self._scheduler = scheduler

    def is_finished(self) -> bool:
        awaiting = getattr(self._scheduler, "awaiting_resume", None)
        return super().is_finished() and not (awaiting is not None and awaiting())
