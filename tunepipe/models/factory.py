"""Build the study's model for one trial: built-in kinds or the user's own factory."""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from tunepipe.config import TRAIN_KEYS
from tunepipe.errors import TunepipeError
from tunepipe.models.nets import cnn, flat_size, mlp


def model_spec(model_cfg: Any, hp: dict[str, Any]) -> dict[str, Any]:
    """The model's kind and arguments for one trial: study settings overridden by sampled ones.

    The spec is plain JSON, saved with every checkpoint, so a model can be rebuilt without the
    study file (tunepipe.load_model).
    """
    if model_cfg.kind == "custom":
        args = dict(model_cfg.args)
        args.update({k: v for k, v in hp.items() if k not in TRAIN_KEYS})
        return {"kind": "custom", "factory": model_cfg.factory, "args": args}
    settings = model_cfg.model_dump(exclude={"kind"})
    settings.update({k: v for k, v in hp.items() if k in settings})
    return {"kind": model_cfg.kind, "args": settings}


def build_model(spec: dict[str, Any], input_shape: tuple[int, ...], output_dim: int) -> nn.Module:
    """Instantiate a spec from model_spec for the data's input shape and the task's output size."""
    kind, args = spec["kind"], dict(spec["args"])
    if kind == "mlp":
        return mlp(flat_size(input_shape), output_dim, **args)
    if kind == "cnn":
        if len(input_shape) != 3:
            raise TunepipeError(
                f"model.kind: a cnn needs images; set data.image_shape to "
                f"(channels, height, width) (inputs have shape {input_shape})"
            )
        return cnn(tuple(input_shape), output_dim, **args)
    factory = import_object(spec["factory"], "model.factory")
    net = factory(input_shape=tuple(input_shape), output_dim=output_dim, **args)
    if not isinstance(net, nn.Module):
        raise TunepipeError(
            f"model.factory: {spec['factory']} returned {type(net).__name__}, not a torch.nn.Module"
        )
    return net


def import_object(path: str, field: str) -> Any:
    """Import `package.module:name`, with an error naming the study field on failure."""
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TunepipeError(
            f"{field}: cannot import {module_name!r} ({exc}); put it on the "
            "import path or set code_dir in the study"
        ) from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise TunepipeError(f"{field}: module {module_name!r} has no {attr!r}") from None
