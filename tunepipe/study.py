"""Reading a study file: YAML → StudyConfig, every problem at once as `path: what (got VALUE)`."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from tunepipe.config import TAGS_IN_PATHS, StudyConfig, cross_field_problems, did_you_mean
from tunepipe.errors import StudyFileError

CONSTANT_KINDS = ("bool", "int", "float", "str", "none")  # the members of a constant's union
MAX_STUDY_BYTES = 1 << 20  # a study file is a page of YAML; anything bigger is a wrong path


def load_study(path: str | Path, sets: list[str] | tuple[str, ...] = ()) -> StudyConfig:
    """Read and validate a study file, with command-line `--set key=value` overrides applied
    first (tunepipe.overrides). Raises StudyFileError listing every problem found."""
    from tunepipe.overrides import apply_overrides

    path = Path(path)
    raw = apply_overrides(_read_yaml(path), sets)
    source = f"{path} (with --set {' '.join(sets)})" if sets else str(path)
    return parse_study(raw, source=source)


def parse_study(raw: Any, source: str = "<study>") -> StudyConfig:
    """Validate an already-parsed mapping (what a YAML study file holds)."""
    if not isinstance(raw, dict):
        kind = type(raw).__name__ if raw is not None else "nothing"
        raise StudyFileError(
            f"{source}: a study file is a YAML mapping of keys (name:, data:, ...), "
            f"but this one holds {kind}",
            source=source,
        )
    try:
        study = StudyConfig.model_validate(raw)
    except ValidationError as exc:
        lines = format_validation_error(exc, raw)
        lines += [line for line in _cross_field_despite(exc, raw) if line not in lines]
        raise StudyFileError(lines, source=source) from None
    problems = [_line(p, m, v) for p, m, v in cross_field_problems(study)]
    if problems:
        raise StudyFileError(problems, source=source)
    return study


def _cross_field_despite(exc: ValidationError, raw: dict) -> list[str]:
    """The cross-field rules, run on the study without the entries that failed their own checks
    (a search_space entry, else the whole section), so one `validate` lists every problem.
    Problems about what was left out are not repeated."""
    trimmed, dropped = copy.deepcopy(raw), set()
    for round_ in range(3):  # the entry first; when its section stays invalid, the section
        for err in exc.errors(include_url=False):
            loc = [str(p) for p in err["loc"] if str(p) not in TAGS_IN_PATHS]
            if not loc:
                return []
            section = trimmed.get(loc[0])
            if round_ == 0 and len(loc) > 1 and isinstance(section, dict):
                section.pop(loc[1], None)
                dropped.add(f"{loc[0]}.{loc[1]}")
            else:
                trimmed.pop(loc[0], None)
                dropped.add(loc[0])
        trimmed.setdefault("name", "study")  # stand-ins: what they decide is known from raw
        if "trainable" in raw:
            trimmed.setdefault("trainable", "module:function")
        try:
            study = StudyConfig.model_validate(trimmed)
            break
        except ValidationError as again:
            exc = again
    else:
        return []
    return [
        _line(p, m, v)
        for p, m, v in cross_field_problems(study)
        if not any(p == d or p.startswith(d + ".") for d in dropped)
    ]


def _read_yaml(path: Path) -> Any:
    import yaml

    if not path.exists():
        raise StudyFileError(f"{path}: no such file; check the path (cwd is {Path.cwd()})")
    if path.is_dir():
        raise StudyFileError(f"{path}: is a folder; give the study's .yaml file")
    try:
        size = path.stat().st_size  # before reading: a wrong path may name a huge file
        if size > MAX_STUDY_BYTES:
            raise StudyFileError(
                f"{path}: {size} bytes is far too big for a study file; is this the right file?"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise StudyFileError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if not data.strip():
        raise StudyFileError(f"{path}: the file is empty; start from examples/digits.yaml")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StudyFileError(
            f"{path}: not a text file (byte {exc.start} is not UTF-8); a study file is YAML text"
        ) from None
    if "\x00" in text:
        raise StudyFileError(f"{path}: holds NUL bytes, so it is binary, not a YAML study file")
    try:
        return yaml.load(text, Loader=yaml_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise StudyFileError(f"{path}: not valid YAML{where}: {what}") from None


def yaml_loader() -> type:
    """PyYAML's SafeLoader, but a key given twice in one mapping is an error, not "last wins"."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            first: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *anchor` may be overridden by the keys beside it
                key = self.construct_object(key_node, deep=deep)
                try:
                    line = first.setdefault(key, key_node.start_mark.line)
                except TypeError:  # an unhashable key: SafeLoader reports it below
                    continue
                if line != key_node.start_mark.line:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"key {key!r} is given twice (first at line {line + 1}); keep one",
                        key_node.start_mark,
                    )
            return super().construct_mapping(node, deep=deep)

    # YAML 1.1 reads 1e-3 (no dot, or no exponent sign) as a string: learning rates written that
    # way would reach a trial as text. Read them as numbers, as YAML 1.2 and JSON do.
    UniqueKeyLoader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
        list("-+0123456789."),
    )
    return UniqueKeyLoader


def format_validation_error(exc: ValidationError, raw: Any) -> list[str]:
    """One line per error: `path.to.field: what is wrong (got VALUE)`, with "did you mean"."""
    lines = []
    for err in exc.errors(include_url=False):
        if err["type"] == "extra_forbidden" and "bad-domain" in err["loc"]:
            continue  # the bad `type` is the problem; low/high/values are not unknown keys
        if "constant" in err["loc"] and err["loc"][-1] in CONSTANT_KINDS:
            # One line for a constant, not one per type it could have been: the number's.
            if isinstance(err["input"], float) and err["loc"][-1] != "float":
                continue
            if not isinstance(err["input"], float):
                err = {**err, "msg": "must be a number, a string, true/false or null"}
            err = {**err, "loc": err["loc"][:-1]}
        loc = [str(p) for p in err["loc"] if str(p) not in TAGS_IN_PATHS]
        path = ".".join(loc) or "(top level)"
        msg = _message(err, raw)
        if err["type"] == "model_kind":  # point at the key itself and show its value
            path, msg = f"{path}.kind", "must be mlp, cnn or custom"
            given = err["input"]
            err = {**err, "input": given.get("kind") if isinstance(given, dict) else given}
        if err["type"] == "missing":
            lines.append(f"{path}: {msg}")
        else:
            lines.append(_line(path, msg, err.get("input")))
    return list(dict.fromkeys(lines))  # unions can repeat an error


def _message(err: dict, raw: Any) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        known = _known_keys(err["loc"][:-1])
        hint = did_you_mean(str(err["loc"][-1]), known) if known else ""
        return f"unknown key{hint}" + (
            f"; known keys: {', '.join(sorted(known))}" if not hint and known else ""
        )
    if kind == "missing":
        return "required, but missing"
    if kind in ("float_type", "int_type") and isinstance(err.get("input"), bool):
        return "must be a number, not true/false (YAML reads yes/no/on/off as true/false)"
    if kind == "literal_error":
        return msg.replace("Input should be", "must be")
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return msg[0].lower() + msg[1:] if msg else kind


def _known_keys(loc: tuple) -> set[str]:
    """The field names of the model at `loc` (so unknown keys can get a "did you mean")."""
    candidates: list[type[BaseModel]] = [StudyConfig]
    for part in map(str, loc):
        tagged = [m for m in candidates if _tag_of(m) == part]
        if tagged:
            candidates = tagged
            continue
        inner = [
            m
            for c in candidates
            if part in c.model_fields
            for m in _models_in(c.model_fields[part].annotation)
        ]
        if inner:
            candidates = inner
        # otherwise `part` is a dict key or list index: the models stay the same
    return set().union(*({f.alias or n for n, f in m.model_fields.items()} for m in candidates))


def known_keys(loc: tuple[str, ...]) -> set[str] | None:
    """The keys a study mapping allows at `loc` (a dotted key's leading parts); None below a
    free-form mapping's keys (search_space names, model kwargs), set() below a plain value."""
    import typing

    models: list[type[BaseModel]] = [StudyConfig]
    free = False  # True: `part` names an entry of a dict, whose values are `models`
    for part in loc:
        if free:
            free = False
            continue
        fields = [m.model_fields[part].annotation for m in models if part in m.model_fields]
        if not fields:
            return None  # `part` itself is unknown: the caller reports it one level up
        dicts = [a for f in fields for a in _flat(f) if typing.get_origin(a) is dict]
        if dicts:
            models, free = [m for d in dicts for m in _models_in(typing.get_args(d)[1])], True
        else:
            models = [m for f in fields for m in _models_in(f)]
        if not models and not free:
            return set()
    return None if free or not models else set().union(*(set(m.model_fields) for m in models))


def _flat(annotation: Any) -> list[Any]:
    """An annotation and, through Optional/Union/Annotated, every type inside it."""
    import typing

    inner = typing.get_args(annotation) if typing.get_origin(annotation) is not dict else ()
    return [annotation, *(a for arg in inner for a in _flat(arg))]


def _tag_of(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("type") or model.model_fields.get("kind")
    args = getattr(field.annotation, "__args__", ()) if field else ()
    return args[0] if len(args) == 1 else None


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The BaseModel classes inside an annotation (Optional, Union, Annotated, dict values)."""
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _line(path: str, msg: str, value: Any) -> str:
    return f"{path}: {msg} (got {_short(value)})"


def _short(value: Any) -> str:
    if isinstance(value, BaseModel):  # cross-field rules see parsed domains; show what was written
        value = value.model_dump(exclude_unset=True)
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
