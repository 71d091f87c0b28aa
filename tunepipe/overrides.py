"""`--set key=value` on the command line: dotted keys, YAML values, applied to the study's mapping
before validation, so an override is checked exactly as if it were written in the file.

    tunepipe run examples/digits.yaml --set num_samples=4 --set scheduler.max_epochs=3
    tunepipe run study.yaml --set 'search_space.lr={type: loguniform, low: 1e-4, high: 1e-2}'
"""

from __future__ import annotations

import copy
from typing import Any

from tunepipe.errors import StudyFileError

KEY_PART = r"[A-Za-z0-9_-]+"


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b.c=VALUE` → (["a", "b", "c"], VALUE read as YAML, as it would be in the study file)."""
    import re

    import yaml

    from tunepipe.study import yaml_loader

    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not re.fullmatch(rf"{KEY_PART}(\.{KEY_PART})*", key):
        raise StudyFileError(
            f"--set {text}: write it as KEY=VALUE with a dotted key, "
            "e.g. --set scheduler.max_epochs=3"
        )
    try:
        parsed = yaml.load(value, Loader=yaml_loader()) if value.strip() else None  # noqa: S506
    except yaml.YAMLError as exc:
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise StudyFileError(
            f"--set {text}: the value is not valid YAML ({what}); quote the whole argument "
            "for the shell, e.g. --set 'search_space.lr={type: loguniform, low: 1e-4, high: 0.1}'"
        ) from None
    return key.split("."), parsed


def apply_overrides(raw: Any, sets: list[str] | tuple[str, ...]) -> Any:
    """A copy of the study mapping `raw` with every `--set` applied in order (the last wins).

    A key the study format does not know is reported here, with a "did you mean", naming the
    dotted key as the user typed it; values are left to validation, like values in the file.
    """
    if not sets or not isinstance(raw, dict):
        return raw
    out = copy.deepcopy(raw)
    problems = []
    for text in sets:
        try:
            path, value = parse_override(text)
        except StudyFileError as exc:
            problems += exc.problems
            continue
        problem = _unknown_key(path) or _put(out, path, value)
        if problem:
            problems.append(f"--set {text}: {problem}")
    if problems:
        raise StudyFileError(problems)
    return out


def _put(target: dict, path: list[str], value: Any) -> str | None:
    """Set target[a][b][c] = value, making the sections that are missing; a problem or None."""
    node = target
    for depth, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(path[: depth + 1])
            return f"{where} holds {child!r}, not a section, so it has no key {path[depth + 1]!r}"
        node = child
    node[path[-1]] = value
    return None


def _unknown_key(path: list[str]) -> str | None:
    """A "not a study key (did you mean …)" message for the first unknown part of `path`."""
    import difflib

    from tunepipe.study import known_keys

    for depth, part in enumerate(path):
        known = known_keys(tuple(path[:depth]))
        where = ".".join(path[: depth + 1])
        if known is None:  # below a free-form mapping (search_space names, model kwargs)
            return None
        if not known:
            return f"{'.'.join(path[:depth])} is a value, not a section; it has no key {part!r}"
        if part not in known:
            # The whole dotted key in the hint, ready to paste back.
            close = [k for k in sorted(known) if len(part) >= 3 and k.startswith(part)]
            close = close or difflib.get_close_matches(part, sorted(known), n=1, cutoff=0.6)
            stem = ".".join(path[:depth] + [""])
            hint = f" (did you mean {stem}{close[0]}?)" if close else ""
            listing = "" if hint else f"; known keys here: {', '.join(sorted(known))}"
            return f"{where} is not a study key{hint}{listing}"
    return None
