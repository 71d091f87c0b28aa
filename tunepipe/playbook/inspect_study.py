"""`tunepipe inspect STUDY`: the study's model at a point of its space, layer by layer (P7)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunepipe.config import AUTO_LR, StudyConfig
from tunepipe.models.inspection import ModelReport, human


@dataclass
class StudyInspection:
    study: StudyConfig
    config: dict[str, Any]  # the point of the search space the model was built at
    which: str  # "typical" or "largest"
    model: ModelReport
    space_size: str
    output_dim: int


def inspect_study(path: str | Path, *, largest: bool = False) -> StudyInspection:
    """Build the study's model at the space's typical point (or its largest, P1) and inspect it
    with one training sample; raises TunepipeError for a study with its own trainable."""
    import torch

    from tunepipe.models import build_model, model_spec
    from tunepipe.models.inspection import inspect_model
    from tunepipe.playbook.points import largest_config, typical_config
    from tunepipe.playbook.sanity import require_model
    from tunepipe.playbook.stage import load_study_data
    from tunepipe.space import space_size
    from tunepipe.study import load_study

    path = Path(path)
    study = load_study(path)
    require_model(study, "inspect")
    data = load_study_data(study, path.parent)
    config = largest_config(study) if largest else typical_config(study)
    torch.manual_seed(study.seed)
    model = build_model(model_spec(study.model, config), data.input_shape, data.output_dim)
    sample = torch.from_numpy(data.train.x[:1].copy())
    size = space_size(study)
    if study.search_space.get("lr") == AUTO_LR:
        size += " (+ lr: auto, a loguniform range from the LR range test)"
    report = inspect_model(model, sample)
    which = "largest" if largest else "typical"
    return StudyInspection(study, config, which, report, size, data.output_dim)


def print_inspection(ins: StudyInspection, console: Any = None) -> None:
    """The layer table, then totals, the receptive field against the input (P7), the space."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    m = ins.model
    point = ", ".join(f"{k}={_num(v)}" for k, v in ins.config.items()) or "the study's settings"
    table = Table(title=f"{ins.study.name}: model at the {ins.which} point ({point})")
    for col, justify in (("layer", "left"), ("type", "left"), ("output shape", "left")):
        table.add_column(col, justify=justify)
    table.add_column("params", justify="right")
    convs = m.receptive_field is not None
    if convs:
        table.add_column("receptive field", justify="right")
    for r in m.layers:
        params = f"{r.params:,}" if r.params else ""
        table.add_row(r.name, r.kind, r.output_shape, params, *([r.receptive_field] * convs))
    console.print(table)
    frozen = m.total_params - m.trainable_params
    console.print(
        f"parameters: {m.total_params:,} ({human(m.total_params)})"
        + (f", {frozen:,} frozen" if frozen else "")
    )
    console.print(f"input {m.input_shape} → {ins.output_dim} outputs ({ins.study.task})")
    if m.receptive_field:
        console.print(_rf_line(m.receptive_field, m.input_shape))
    console.print(f"search space: {ins.space_size}; {ins.study.num_samples} samples")


def _rf_line(rf: tuple[int, ...], input_shape: tuple[int, ...]) -> str:
    """P7: does the last convolutional layer see enough context?"""
    spatial = input_shape[1:]
    text = "×".join(map(str, rf))
    if len(spatial) == len(rf):
        covers = min(r / s for r, s in zip(rf, spatial, strict=True))
        size = "×".join(map(str, spatial))
        where = "the whole image" if covers >= 1 else f"{covers:.0%} of the image side"
        return f"receptive field (P7): {text} px on a {size} input — covers {where}"
    return f"receptive field (P7): {text}"


def _num(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)
