"""Loading the best model of a run: `tunepipe.load_model(RUN_DIR)` returns it ready to predict."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tunepipe.errors import RunDirError


@dataclass
class LoadedModel:
    """The trained network plus its input normalisation and task head."""

    model: torch.nn.Module
    meta: dict[str, Any]

    @property
    def task(self) -> str:
        return self.meta["task"]

    def _inputs(self, x: Any) -> torch.Tensor:
        stats = self.meta["data_stats"]
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 1:  # one row given flat: a batch of one, not len(x) rows of one value
            x = x[None, :]
        x = x.reshape(len(x), -1)
        if x.shape[1] != len(stats["feature_mean"]):
            raise ValueError(
                f"each row needs {len(stats['feature_mean'])} feature values; got {x.shape[1]}"
            )
        x = (x - np.asarray(stats["feature_mean"], np.float32).reshape(1, -1)) / np.asarray(
            stats["feature_std"], np.float32
        ).reshape(1, -1)
        return torch.from_numpy(x.reshape(len(x), *self.meta["input_shape"]))

    @torch.no_grad()
    def predict(self, x: Any) -> np.ndarray:
        """Raw (un-normalised) rows in → class ids, 0/1, or targets in their own units out."""
        self.model.eval()
        out = self.model(self._inputs(x))
        if self.task == "classification":
            classes = np.asarray(self.meta["data_stats"]["classes"])
            return classes[out.argmax(dim=-1).numpy()]
        if self.task == "binary":
            return (out > 0).long().squeeze(-1).numpy()
        stats = self.meta["data_stats"]
        return out.numpy() * np.asarray(stats["target_std"]) + np.asarray(stats["target_mean"])

    @torch.no_grad()
    def predict_proba(self, x: Any) -> np.ndarray:
        """Class probabilities (softmax) or the positive class's probability (sigmoid)."""
        self.model.eval()
        out = self.model(self._inputs(x))
        return (out.softmax(-1) if self.task == "classification" else out.sigmoid()).numpy()


def load_model(run_dir: str) -> LoadedModel:
    """The best model a study saved under RUN_DIR/best_model (local path or URI)."""
    from tunepipe.models import build_model
    from tunepipe.storage import locate_run_dir
    from tunepipe.train import checkpoint as ckpt

    loc = locate_run_dir(run_dir)
    if loc.is_local and loc.exists("specialists.json"):  # one model per group, combined
        from tunepipe.specialists import load_specialists

        return load_specialists(loc.path)
    if not loc.exists("best_model"):
        raise RunDirError(
            f"{run_dir}: no best_model/ here; is this a finished run folder "
            "(it holds summary.json)? A study whose every trial failed has none"
        )
    if loc.is_local:
        state, meta = ckpt.load(f"{loc.path}/best_model")
    else:
        import pyarrow.fs as pafs

        with tempfile.TemporaryDirectory() as tmp:
            pafs.copy_files(f"{loc.path}/best_model", tmp, source_filesystem=loc.fs)
            state, meta = ckpt.load(tmp)
    model = build_model(meta["model"], tuple(meta["input_shape"]), meta["output_dim"])
    model.load_state_dict(state["model"])
    model.eval()
    return LoadedModel(model, meta)
