"""`init_from: RUN_DIR`: start every trial from an earlier run's best model (the case study's
pre-training of specialists from net6/net7). Layers whose name and shape match are loaded, the
rest keep their fresh initialisation; a run folder from which nothing matches is refused."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tunepipe.errors import RunDirError


@dataclass
class Transfer:
    """What init_from did: tensors loaded, tensors left fresh, and why the first one was."""

    loaded: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)
    first_mismatch: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"loaded": self.loaded, "fresh": self.fresh, "first_mismatch": self.first_mismatch}


def match_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> Transfer:
    """Which of the model's tensors `state` holds under the same name with the same shape."""
    out = Transfer()
    for name, tensor in model.state_dict().items():
        given = state.get(name)
        if given is not None and tuple(given.shape) == tuple(tensor.shape):
            out.loaded.append(name)
            continue
        out.fresh.append(name)
        if out.first_mismatch is None:
            out.first_mismatch = (
                f"{name}: not in the run's model"
                if given is None
                else f"{name}: shape {list(given.shape)} there, {list(tensor.shape)} here"
            )
    return out


def read_best_state(run_dir: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of RUN_DIR/best_model (a local run folder)."""
    path = Path(run_dir) / "best_model" / "state.pt"
    if not path.is_file():
        raise RunDirError(
            f"init_from: {run_dir} has no best_model/state.pt; give a finished run folder "
            "(<storage>/<study name>) whose study produced a best model"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state["model"]


def load_pretrained(model: torch.nn.Module, run_dir: str | Path) -> Transfer:
    """Load every matching tensor of RUN_DIR's best model into `model`; RunDirError when none
    matches (another input shape, another architecture), naming the first mismatch."""
    state = read_best_state(run_dir)
    transfer = match_state(model, state)
    if not transfer.loaded:
        raise RunDirError(
            f"init_from: nothing in {run_dir}'s best model fits this study's model (first "
            f"mismatch: {transfer.first_mismatch}); use a run of the same architecture and "
            "input shape, or drop init_from"
        )
    model.load_state_dict({k: state[k] for k in transfer.loaded}, strict=False)
    return transfer


def resolve_init_from(study: Any, data: Any, study_dir: Path) -> tuple[Any, Transfer | None]:
    """On the driver, before Ray: the study with init_from made absolute, and what it loads into
    the study's model (so a run folder of another shape stops the run here, exit 2)."""
    if not study.init_from:
        return study, None
    if data is None or study.model is None:
        raise RunDirError("init_from: needs a study with data: and model: (not a trainable)")
    from tunepipe.models import build_model, model_spec

    path = Path(study.init_from).resolve()  # like storage: from where tunepipe runs
    del study_dir
    _same_inputs(path, list(data.input_shape))
    model = build_model(model_spec(study.model, {}), data.input_shape, data.output_dim)
    transfer = load_pretrained(model, path)
    return study.model_copy(update={"init_from": str(path)}), transfer


def _same_inputs(run_dir: Path, shape: list[int]) -> None:
    """A model trained on other inputs (another image size) is refused, even where its
    convolutions would fit: the case study pre-trains on the same images."""
    meta_file = run_dir / "best_model" / "meta.json"
    if not meta_file.is_file():
        return  # read_best_state names the missing model
    import json

    theirs = json.loads(meta_file.read_text()).get("input_shape")
    if theirs is not None and list(theirs) != shape:
        raise RunDirError(
            f"init_from: {run_dir} was trained on inputs of shape {theirs}, this study's are "
            f"{shape}; pre-train on the same data.image_shape (first mismatch: the input shape)"
        )
