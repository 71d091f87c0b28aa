"""Tests of the study report on synthetic run folders written with pyarrow (docs/run-dir.md)."""

from __future__ import annotations

import base64
import io
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from matplotlib.figure import Figure

from tests.report_parse import captions, cards, rows, section
from tunepipe.report import SECTION_IDS, write_report
from tunepipe.report.checks import image_problem, missing_sections, parse, problems
from tunepipe.report.html import STATUS_COLORS, fmt, fmt_seconds
from tunepipe.report.plots import curve_columns
from tunepipe.report.rundir import load_run, ranked_trials, read_sanity
from tunepipe.report.style import spans_decades

REASONS = ["completed", "pruned", "overfitting", "plateau", "diverged", "pruned", "error"]


def _trial_history(i: int, epochs: int, rng: np.random.Generator, diverged: bool) -> dict:
    e = np.arange(1, epochs + 1, dtype=float)
    train = 2.3 * np.exp(-0.35 * e * (1 + 0.2 * i)) + 0.01
    val = train * 1.1 + 0.02 * np.maximum(0, e - 6) ** 1.5 + rng.normal(0, 0.005, epochs)
    lr = 0.01 * 0.3 ** np.floor(e / 5) * (1 + i)
    if diverged:  # loss explodes, then NaN: what a too-large learning rate does (P5)
        train[2:], val[2:] = np.inf, np.nan
    return {
        "epoch": e.astype(int).tolist(),
        "train_loss": train.tolist(),
        "val_loss": val.tolist(),
        "val_acc": np.clip(1 - val / 2.5, 0, 1).tolist(),
        "lr": lr.tolist(),
        "grad_norm": (5 * np.exp(-0.2 * e) + 0.3).tolist(),
        "update_ratio": (1e-3 * np.exp(-0.1 * e) * 3).tolist(),
        "top_prob": (1 - 0.9 * np.exp(-0.3 * e)).tolist(),
        "dead_relu": (0.05 + 0.01 * e).tolist(),
    }


def _trial_result(i: int, tid: str, reason: str, h: dict, rng: np.random.Generator) -> dict:
    """One results.parquet row for a synthetic trial with history `h`."""
    val = np.array(h["val_loss"])
    best = int(np.nanargmin(val)) if np.isfinite(val).any() else 0
    return {
        "trial_id": tid,
        "config.lr": float(10 ** rng.uniform(-4, -1)),
        "config.batch_size": [16, 32, 64, 128][i % 4],
        "config.optimizer": ["adam", "sgd"][i % 2],
        "config.dropout": float(rng.uniform(0, 0.5)),
        "val_loss": float(val[best]) if reason != "diverged" else math.nan,
        "val_acc": h["val_acc"][best],
        "train_loss": h["train_loss"][best],
        "best_epoch": best + 1,
        "epochs": len(val),
        "stop_reason": reason,
        "checkpoint": f"/tmp/ckpt/{tid}" if reason != "error" else None,
        "lr_decays": len(val) // 5,
    }


def make_run(
    root: Path,
    n_trials: int = 6,
    mode: str = "min",
    all_diverged: bool = False,
    sanity: object = "default",
) -> Path:
    """Write a synthetic run folder (results, history, summary, sanity) and return its path.

    `sanity` is "default" (a full sanity.json), None (no file), a dict, or raw file text.
    """
    rng = np.random.default_rng(1)
    run = root / "study-demo"
    run.mkdir(parents=True, exist_ok=True)
    history: dict[str, list] = {}
    results: dict[str, list] = {}
    for i in range(n_trials):
        tid, epochs = f"trial_{i:03d}", 4 + 3 * (i % 4)
        reason = "diverged" if all_diverged else REASONS[i % len(REASONS)]
        h = _trial_history(i, epochs, rng, diverged=reason == "diverged")
        for k, v in {"trial_id": [tid] * epochs, **h}.items():
            history.setdefault(k, []).extend(v)
        for k, v in _trial_result(i, tid, reason, h, rng).items():
            results.setdefault(k, []).append(v)
    pq.write_table(pa.table(results), run / "results.parquet")
    pq.write_table(pa.table(history), run / "history.parquet")
    _write_summary(run, results, mode)
    if sanity == "default":
        sanity = _sanity()
    if sanity is not None:
        (run / "sanity.json").write_text(sanity if isinstance(sanity, str) else json.dumps(sanity))
    return run


def _write_summary(run: Path, results: dict, mode: str) -> None:
    metric = "val_loss" if mode == "min" else "val_acc"
    values = np.array(results[metric], dtype=float)
    finite = np.isfinite(values)
    best = None
    if finite.any():
        best = int(np.nanargmin(values) if mode == "min" else np.nanargmax(values))
    counts: dict[str, int] = {}
    for r in results["stop_reason"]:
        counts[r] = counts.get(r, 0) + 1
    summary = {
        "study": "demo",
        "metric": metric,
        "mode": mode,
        "n_trials": len(values),
        "best_trial_id": results["trial_id"][best] if best is not None else None,
        f"best_{metric}": float(values[best]) if best is not None else math.nan,
        "best_config": {"lr": 0.003, "batch_size": 64} if best is not None else {},
        "stop_reasons": counts,
        "wall_seconds": 754.2,
        "tunepipe_version": "0.1.0",
        "test": {"test_loss": 0.123, "test_acc": 0.91},
    }
    (run / "summary.json").write_text(json.dumps(summary))


def _sanity() -> dict:
    lrs = np.logspace(-6, 0, 60)
    loss = 2.3 - 1.5 / (1 + np.exp(-(np.log10(lrs) + 3.5) * 2)) + np.exp(np.log10(lrs) * 3) * 40
    return {
        "checks": [
            {"name": "initial_loss", "status": "pass", "detail": "2.31 ≈ ln(10)"},
            {"name": "overfit_tiny_subset", "status": "warn", "detail": "reached 0.08 < 0.1"},
            {"name": "target_scale", "status": "fail", "detail": "targets up to 10000 (P2)"},
        ],
        "lr_range": {
            "lrs": lrs.tolist(),
            "losses": loss.tolist(),
            "smoothed": loss.tolist(),
            "suggested_lr": 3e-3,
            "suggested_range": [1e-4, 1e-2],
        },
    }


@pytest.fixture(scope="module")
def full_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(make_run(tmp_path_factory.mktemp("full")))


# ---- whole reports -----------------------------------------------------------------------------


def test_full_report_has_every_section_and_real_images(full_report: Path) -> None:
    assert problems(full_report) == []
    doc = parse(full_report.read_text())
    assert len(doc.images) == 6  # curves, stop reasons, lr history, hparams, lr range, diagnostics
    pngs = sorted(p.name for p in full_report.parent.glob("report_*.png"))
    assert pngs == [
        "report_curves.png",
        "report_diagnostics.png",
        "report_hyperparameters.png",
        "report_lr_history.png",
        "report_lr_range.png",
        "report_stop_reasons.png",
    ]


def test_full_report_content(full_report: Path) -> None:
    html = full_report.read_text()
    summary = section(html, "summary")
    assert cards(summary)["wall time"] == "12 min 34 s"  # 754.2 s
    assert rows(summary) == [["test_loss", "0.123"], ["test_acc", "0.91"]]
    sanity = section(html, "sanity")
    # Each check in its own row, its status badge coloured for that status (not another's).
    assert [r[:2] for r in rows(sanity)] == [
        ["pass", "initial_loss"],
        ["warn", "overfit_tiny_subset"],
        ["fail", "target_scale"],
    ]
    for status, color in STATUS_COLORS.items():
        assert f'style="background:{color}">{status}</span>' in sanity
    assert captions(sanity) == ["report_lr_range.png"]


def test_checks_find_a_missing_section(full_report: Path, tmp_path: Path) -> None:
    broken = tmp_path / "report.html"
    broken.write_text(full_report.read_text().replace('id="sanity"', 'id="renamed"'))
    assert missing_sections(broken.read_text()) == ["sanity"]
    assert problems(broken) == ["missing section id='sanity'"]


def _png_data_uri(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_checks_find_a_blank_or_broken_image(full_report: Path, tmp_path: Path) -> None:
    blank = _png_data_uri(Figure(figsize=(2, 2)))  # an empty figure: all white
    assert image_problem(blank) == "blank image (a single colour)"
    assert "does not decode" in image_problem(
        "data:image/png;base64," + base64.b64encode(b"not a png").decode()
    )
    assert "not a base64 PNG" in image_problem("report_curves.png")
    html = full_report.read_text()
    first = parse(html).images[0]
    broken = tmp_path / "report.html"
    broken.write_text(html.replace(first, blank))
    assert problems(broken) == ["image 0: blank image (a single colour)"]


def test_every_trial_diverged_still_reports(tmp_path: Path) -> None:
    out = write_report(make_run(tmp_path, all_diverged=True))
    assert problems(out) == []
    html = out.read_text()
    assert "every trial" in html and "NaN" in html
    assert "None: no trial reached a finite metric value." in html  # no best config is crowned
    assert "no trial has a finite metric" in html  # diagnostics say whose they are


def test_max_mode_ranks_highest_first(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, mode="max")
    run = load_run(run_dir)
    acc = dict(zip(run.trial_ids, run.results["val_acc"], strict=True))
    ranked = ranked_trials(run)
    assert acc[ranked[0]] == max(acc.values())
    out = write_report(run_dir, top_k=3)
    assert problems(out) == []
    assert "higher is better" in out.read_text()


def test_single_trial_without_sanity(tmp_path: Path) -> None:
    out = write_report(make_run(tmp_path, n_trials=1, sanity=None))
    assert problems(out) == []
    assert "Sanity stage not run." in out.read_text()


def test_user_metric_names_and_missing_lr(tmp_path: Path) -> None:
    run = tmp_path / "own"
    run.mkdir()
    pq.write_table(
        pa.table(
            {
                "trial_id": ["a", "b"],
                "config.width": [8, 64],
                "val_rmse": [0.5, 0.2],
                "stop_reason": ["completed", "pruned"],
            }
        ),
        run / "results.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "trial_id": ["a"] * 3 + ["b"] * 3,
                "epoch": [1, 2, 3] * 2,
                "loss": [3.0, 2.0, 1.5, 2.0, 1.0, 0.4],
                "val_rmse": [0.9, 0.6, 0.5, 0.7, 0.3, 0.2],
            }
        ),
        run / "history.parquet",
    )
    (run / "summary.json").write_text(json.dumps({"metric": "val_rmse", "mode": "min"}))
    out = write_report(run)
    assert problems(out) == []
    html = out.read_text()
    assert "No learning rate was reported." in html and "reported no diagnostics" in html
    assert "report_curves.png" in html


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps([{"name": "x", "status": "pass"}]),
        json.dumps({"checks": None}),
        json.dumps(
            {
                "lr_range": {
                    "lrs": [1e-5, 1e-3, 1e-1],
                    "losses": [2.0, 1.0],
                    "suggested_lr": None,
                    "suggested_range": [1e-4],
                }
            }
        ),
    ],
)
def test_damaged_sanity_json_is_tolerated(tmp_path: Path, content: str) -> None:
    out = write_report(make_run(tmp_path, n_trials=2, sanity=content))
    assert problems(out) == []


BLOCK_PANDAS = """
import sys


class _NoPandas:  # a machine without pandas: importing it fails as if it were not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "pandas":
            raise ModuleNotFoundError("No module named 'pandas'", name=name)


sys.meta_path.insert(0, _NoPandas())
"""


def test_report_needs_no_pandas(tmp_path: Path) -> None:
    run = make_run(tmp_path, n_trials=2, sanity=None)
    code = BLOCK_PANDAS + (
        "from tunepipe.report import write_report\n"
        f"write_report({str(run)!r})\n"
        "assert 'pandas' not in sys.modules\n"
    )
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, timeout=120)


def test_not_a_run_folder_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="run folder"):
        write_report(tmp_path)


DEGENERATE = {
    "summary only": ({}, {}, {"study": "x", "metric": "val_loss", "n_trials": 0}),
    "results only": (
        {"trial_id": ["a", "b"], "val_loss": [0.3, math.inf], "config.flag": [True, False]},
        {},
        None,
    ),
    "null epochs, odd counts": (
        {"trial_id": ["a"], "val_loss": [0.3]},
        {"trial_id": ["a", "a"], "epoch": [None, None], "val_loss": [1.0, None]},
        {"metric": "val_loss", "mode": "MAX", "stop_reasons": {"weird": 2, "completed": None}},
    ),
    "no finite history": (
        {"trial_id": ["a"], "val_loss": [math.nan]},
        {"trial_id": ["a", "a"], "epoch": [1, 2], "train_loss": [math.nan, math.inf],
         "lr": [0.1, 0.1], "grad_norm": [math.inf, math.nan]},
        None,
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", DEGENERATE)
def test_degenerate_run_folders_still_report(tmp_path: Path, case: str) -> None:
    results, history, summary = DEGENERATE[case]
    for name, table in (("results", results), ("history", history)):
        if table:
            pq.write_table(pa.table(table), tmp_path / f"{name}.parquet")
    if summary is not None:
        (tmp_path / "summary.json").write_text(json.dumps(summary))
    assert problems(write_report(tmp_path)) == []


# ---- small pieces ------------------------------------------------------------------------------


def test_ranking_puts_non_finite_last_in_both_modes(tmp_path: Path) -> None:
    run = load_run(make_run(tmp_path, n_trials=7))  # trial 4 diverged: NaN metric
    assert ranked_trials(run)[-1] == "trial_004"
    run.mode = "max"
    assert ranked_trials(run)[-1] == "trial_004"


def test_formatting() -> None:
    assert fmt(math.nan) == "NaN" and fmt(math.inf) == "∞" and fmt(None) == "—"
    assert fmt(0.000123456) == "0.0001235" and fmt("<b>") == "&lt;b&gt;"
    assert fmt_seconds(3725) == "1 h 02 min" and fmt_seconds(12.34) == "12.3 s"
    assert fmt_seconds(None) == "—"


def test_curve_columns_fall_back_to_loss_names() -> None:
    assert curve_columns(
        {"trial_id": [], "epoch": [], "train_loss": [], "val_loss": []}, "val_loss"
    ) == ["train_loss", "val_loss"]
    both = {"epoch": [], "train_loss": [], "val_loss": [], "val_acc": []}
    assert curve_columns(both, "val_acc", "max") == ["train_loss", "val_loss"]
    own = {"epoch": [], "loss": [], "val_rmse": []}
    assert curve_columns(own, "val_rmse", "min") == ["loss", "val_rmse"]
    assert curve_columns({"epoch": [], "acc": []}, "acc", "max") == ["acc"]
    assert curve_columns({"epoch": [], "loss": []}, "missing") == ["loss"]


def test_log_scale_only_over_decades() -> None:
    assert spans_decades(np.array([1.0, 0.001, np.nan]))
    assert not spans_decades(np.array([1.0, 0.5]))
    assert not spans_decades(np.array([-1.0, 1000.0]))


def test_read_sanity_list_and_missing(tmp_path: Path) -> None:
    assert read_sanity(tmp_path / "sanity.json") is None
    (tmp_path / "sanity.json").write_text(json.dumps([{"name": "a", "status": "pass"}]))
    data = read_sanity(tmp_path / "sanity.json")
    assert data is not None and data.checks[0]["name"] == "a" and data.lrs.size == 0


def test_section_ids_are_the_documented_ones() -> None:
    # docs/report.md's table of sections, in page order, is the contract.
    doc = (Path(__file__).resolve().parents[1] / "docs" / "report.md").read_text()
    table = doc.split("| id | section | reads |", 1)[1].split("\n\n", 1)[0]
    assert SECTION_IDS == tuple(re.findall(r"^\| `([\w-]+)` \|", table, re.M))


def test_stop_reason_counts_are_drawn_on_whole_trial_ticks(tmp_path, monkeypatch):
    from tunepipe.report import plots

    drawn = []
    monkeypatch.setattr(plots, "save", lambda fig, path: drawn.append(fig) or path)
    plots.plot_stop_reasons({"pruned": 18, "overfitting": 1, "completed": 1}, tmp_path / "s.png")
    ticks = drawn[0].axes[0].get_xticks()
    assert len(ticks) > 2 and all(float(t).is_integer() for t in ticks)  # no half a trial


# ---- layout: the pictures state their margins (style.Margins); nothing may fall off or collide --


def _layout_problems(fig: Figure) -> list[str]:
    """Labels, titles and legends cut off by the picture's edge, or panels whose labels collide."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.transforms import Bbox

    canvas = FigureCanvasAgg(fig)  # what savefig draws with
    canvas.draw()
    renderer = canvas.get_renderer()
    edge = Bbox.from_bounds(-1, -1, fig.bbox.width + 2, fig.bbox.height + 2)
    boxes = [(f"panel {ax.get_title(loc='left') or i}", ax.get_tightbbox(renderer))
             for i, ax in enumerate(fig.axes) if ax.get_visible()]  # fmt: skip
    if fig._suptitle is not None:
        boxes.append(("suptitle", fig._suptitle.get_window_extent(renderer)))
    boxes += [(f"legend {i}", lg.get_window_extent(renderer)) for i, lg in enumerate(fig.legends)]
    out = [f"{name} leaves the picture: {bb.bounds}" for name, bb in boxes if not (
        edge.contains(bb.x0, bb.y0) and edge.contains(bb.x1, bb.y1))]  # fmt: skip
    for i, (a, bb_a) in enumerate(boxes):
        for b, bb_b in boxes[i + 1 :]:
            inter = Bbox.intersection(bb_a, bb_b)
            if inter is not None and inter.width > 1 and inter.height > 1:
                out.append(f"{a} overlaps {b}")
    return out


def _long_categories(run: Path) -> Path:
    """The run with a categorical hyperparameter of long names and a float over six decades."""
    table = pq.read_table(run / "results.parquet")
    n = table.num_rows
    names = ["resnet18_pretrained", "mobilenet_v3_small", "efficientnet_b0", "vit_tiny", "mlp"]
    table = table.append_column("config.backbone", pa.array([names[i % 5] for i in range(n)]))
    table = table.append_column(
        "config.weight_decay_of_the_head", pa.array([1e-7 * 10 ** (i % 6) for i in range(n)])
    )
    pq.write_table(table, run / "results.parquet")
    return run


@pytest.mark.parametrize("case", ["synthetic", "max_mode", "long_categories", "many_trials"])
def test_every_label_stays_inside_its_picture(tmp_path: Path, monkeypatch, case: str) -> None:
    from tunepipe.report import plots

    drawn: dict[str, Figure] = {}
    save = plots.save
    monkeypatch.setattr(
        plots, "save", lambda fig, path: save(drawn.setdefault(path.name, fig), path)
    )
    run = make_run(tmp_path, n_trials=24 if case == "many_trials" else 7,
                   mode="max" if case == "max_mode" else "min")  # fmt: skip
    if case == "long_categories":
        _long_categories(run)
    write_report(run)
    assert {"report_curves.png", "report_hyperparameters.png", "report_stop_reasons.png",
            "report_lr_history.png", "report_diagnostics.png"} <= set(drawn)  # fmt: skip
    assert {name: _layout_problems(fig) for name, fig in drawn.items()} == dict.fromkeys(drawn, [])


def test_sanity_plots_keep_their_labels_inside(tmp_path: Path) -> None:
    from tunepipe.playbook import output
    from tunepipe.playbook.result import LRRange, SanityResult

    lrs = np.logspace(-7, 0.5, 90)
    losses = (2.3 - 1.2 / (1 + np.exp(-(np.log10(lrs) + 3) * 2)) + 30 * lrs**2).tolist()
    result = SanityResult(
        [],
        lr_range=LRRange(lrs.tolist(), losses, losses, 4.3e-4, (4e-5, 3e-2)),
        overfit_curve=[2.3 * 0.7**i for i in range(40)],
        overfit_target=0.11,
    )
    for draw in (output._draw_lr_range, output._draw_overfit):
        fig = output.figure(draw, result)
        assert fig is not None and _layout_problems(fig) == [], draw.__name__


@pytest.mark.parametrize("fork", [False, True])
@pytest.mark.parametrize("cpus", [1, 2, 3, 16])
def test_a_painter_only_with_a_core_to_spare_unless_forked(monkeypatch, cpus: int, fork: bool):
    from tunepipe.report import painter as p

    class Fake:  # stands in for the forked or spawned process
        def __init__(self, fork: bool) -> None:
            self.forked = fork

        def close(self) -> None:
            pass

    monkeypatch.setattr(p, "Painter", Fake)
    monkeypatch.setattr(p, "usable_cpus", lambda: cpus)
    monkeypatch.setattr(p, "can_fork", lambda: fork)
    with p.painting() as made:
        # A fork costs no interpreter start: made on any machine. A spawn needs a spare core.
        assert (made is not None) == (fork or cpus >= p.MIN_CPUS)
        assert made is None or made.forked == fork
        assert p.current() is made  # what the sanity stage and the report draw with
    assert p.current() is None
    with p.painting(enabled=True) as made:  # asked for explicitly: always
        assert isinstance(made, Fake)
    with p.painting(enabled=False) as made:
        assert made is None


def test_a_fork_only_before_ray_torch_or_another_thread(monkeypatch) -> None:
    import threading

    from tunepipe.report import painter as p

    monkeypatch.setattr(p.sys, "platform", "linux")
    for name in ("ray", "torch", "grpc"):
        with monkeypatch.context() as m:
            m.setitem(p.sys.modules, name, object())
            assert not p.can_fork(), name
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert not p.can_fork()  # a second Python thread: its locks would be copied mid-use
    finally:
        stop.set()
        thread.join()
    monkeypatch.setattr(p.sys, "platform", "darwin")
    assert not p.can_fork()
