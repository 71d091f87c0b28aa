"""Exceptions a user can act on. The CLI prints them as short lines and exits 2 (house style 5)."""

from __future__ import annotations


class TunepipeError(Exception):
    """Base for errors the user caused and can fix; never shown with a traceback (unless --debug).

    `problems` holds one line per problem, each saying what is wrong, where, and how to fix it.
    """

    exit_code = 2

    def __init__(self, problems: str | list[str], *, source: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        super().__init__("\n".join(self.problems))


class StudyFileError(TunepipeError):
    """The study file is missing, unreadable, not YAML, or fails validation."""


class DataError(TunepipeError):
    """The data the study names cannot be trained on (missing column, NaN, too few rows, ...)."""


class RunDirError(TunepipeError):
    """The run folder is in a state that would lose or mix results (already exists, not a run)."""


class StudyFailed(TunepipeError):
    """The study ran but produced no usable trial (CLI exit code 1)."""

    exit_code = 1


class StorageError(TunepipeError):
    """The storage cannot hold the run folder where every node of the cluster reaches it."""


class SanityFailed(StudyFailed):
    """A sanity check failed (P1, P2): the study stops before the search (CLI exit code 1)."""
