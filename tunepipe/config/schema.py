"""The JSON Schema of study files (`tunepipe schema`), agreeing with `validate` where JSON Schema
can say the rule: editors then flag what `validate` would.

pydantic writes most of it from the models. Added here: the draft it follows (`$schema`), a
loguniform's `low > 0` (a validator in code, invisible to pydantic's schema), and each searched
setting's own bounds (a searched dropout below 1, a width of at least 1, ...), which `validate`
checks in `checks._space_value_problems`: for training settings always, for model settings when
the model is a built-in one.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

DRAFT = "https://json-schema.org/draft/2020-12/schema"
BOUNDS = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")
RANGES = ("uniform", "quniform", "loguniform")


def study_json_schema() -> dict[str, Any]:
    """StudyConfig's JSON Schema with the rules above."""
    from tunepipe.config.model import CNNModel, MLPModel
    from tunepipe.config.study import StudyConfig
    from tunepipe.config.training import TrainConfig

    schema = {"$schema": DRAFT, **StudyConfig.model_json_schema()}
    schema["$defs"]["LogUniform"]["properties"]["low"]["exclusiveMinimum"] = 0
    rules: list[dict[str, Any]] = [_searched(TrainConfig)]
    # As the model's discriminator reads it: no kind is an MLP unless a factory is named.
    mlp = {
        "anyOf": [
            {"properties": {"kind": {"const": "mlp"}}, "required": ["kind"]},
            {"not": {"anyOf": [{"required": ["kind"]}, {"required": ["factory"]}]}},
        ]
    }
    cnn = {"properties": {"kind": {"const": "cnn"}}, "required": ["kind"]}
    for model, kind in ((MLPModel, mlp), (CNNModel, cnn)):
        when = {"properties": {"model": {"type": "object", **kind}}, "required": ["model"]}
        rules.append({"if": when, "then": _searched(model)})
    schema["allOf"] = rules
    return schema


def _searched(model: type[BaseModel]) -> dict[str, Any]:
    """search_space.<setting> may only take values the setting itself accepts."""
    fields = model.model_json_schema()["properties"]
    settings = {name: b for name, f in fields.items() if (b := _bounds(f))}
    props = {name: _domain_within(b) for name, b in settings.items() if name != "batch_size"}
    return {"properties": {"search_space": {"properties": props}}}


def _bounds(field: dict[str, Any]) -> dict[str, Any]:
    """A numeric field's bounds, also when it may be null (anyOf [number, null])."""
    for option in [field, *field.get("anyOf", [])]:
        found = {k: option[k] for k in BOUNDS if k in option}
        if found:
            return found
    return {}


def _domain_within(bounds: dict[str, Any]) -> dict[str, Any]:
    """A search-space entry whose constant, range ends or choices lie within `bounds`."""
    number = {"if": {"type": "number"}, "then": bounds}

    def typed(*kinds: str) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"type": {"enum": list(kinds)}},
            "required": ["type"],
        }

    return {
        "allOf": [
            number,
            {"if": typed(*RANGES), "then": {"properties": {"low": bounds, "high": bounds}}},
            {"if": typed("randint"), "then": {"properties": {"low": bounds}}},
            {"if": typed("choice", "grid"), "then": {"properties": {"values": {"items": number}}}},
        ]
    }
