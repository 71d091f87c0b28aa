"""Everyday CLI habits: --version, -h, shell completion, --set, --no-sanity, `tunepipe results`."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO
from tunepipe import __version__

DIGITS = str(REPO / "examples/digits.yaml")


def cli(capsys, monkeypatch, *args: str) -> tuple[int, str, str]:
    """Run the console entry point in this process: (exit code, stdout, stderr)."""
    from tunepipe.cli import main

    monkeypatch.setattr(sys, "argv", ["tunepipe", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def test_version_and_short_help(capsys, monkeypatch):
    assert cli(capsys, monkeypatch, "--version") == (0, f"tunepipe {__version__}\n", "")
    code, out, _ = cli(capsys, monkeypatch, "-h")
    assert code == 0 and "Usage: tunepipe" in out and "results" in out
    code, out, _ = cli(capsys, monkeypatch, "run", "-h")
    assert code == 0 and "--set" in out and "--no-sanity" in out


def test_shell_completion_completes_commands_and_options():
    def complete(words: str, cword: int) -> list[str]:
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "_TUNEPIPE_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(cword),
        }
        proc = subprocess.run(
            [sys.executable, "-m", "tunepipe"], env=env, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.split()

    assert complete("tunepipe res", 1) == ["resume", "results"]
    assert "--no-sanity" in complete("tunepipe run x.yaml --no", 3)


def test_set_overrides_are_validated_as_if_in_the_file(capsys, monkeypatch):
    code, out, _ = cli(
        capsys, monkeypatch, "validate", DIGITS, "--set", "num_samples=4",
        "--set", "scheduler.max_epochs=3",
    )  # fmt: skip
    assert code == 0 and "4 trials" in out and "up to 3 epochs" in out
    code, _, err = cli(capsys, monkeypatch, "validate", DIGITS, "--set", "num_sample=4")
    assert code == 2 and "num_sample" in err and "did you mean num_samples" in err
    assert "Traceback" not in err
    code, _, err = cli(capsys, monkeypatch, "validate", DIGITS, "--set", "scheduler.max_epochs=x")
    assert code == 2 and "scheduler.max_epochs" in err and "'x'" in err
    code, _, err = cli(capsys, monkeypatch, "validate", DIGITS, "--set", "scheduler.grace=1")
    assert code == 2 and "did you mean scheduler.grace_period" in err


def test_run_passes_set_and_no_sanity_to_the_study(capsys, monkeypatch):
    import tunepipe.engine.runner as runner

    seen = []
    monkeypatch.setattr(runner, "run_study", lambda cfg, **kw: seen.append(cfg) or sys.exit(0))
    code, _, _ = cli(capsys, monkeypatch, "run", DIGITS, "--set", "num_samples=4", "--no-sanity")
    assert code == 0 and seen[0].num_samples == 4 and seen[0].playbook.sanity is False
    code, _, err = cli(capsys, monkeypatch, "run", DIGITS, "--set", "num_sample=4")
    assert code == 2 and "did you mean num_samples" in err and len(seen) == 1


def test_submit_checks_set_here_and_hands_it_to_the_job(capsys, monkeypatch, tmp_path):
    from tunepipe.engine import jobs

    sent = []
    monkeypatch.setattr(jobs, "submit_entrypoint", lambda entry, *a, **kw: sent.append(entry))
    token = tmp_path / "token"
    token.write_text("x")
    args = ("submit", DIGITS, "--token-file", str(token), "--address", "http://127.0.0.1:1")
    code, _, err = cli(capsys, monkeypatch, *args, "--set", "num_samples=4")
    assert code == 0, err
    assert sent == ["tunepipe run digits.yaml --set num_samples=4"]
    code, _, err = cli(capsys, monkeypatch, *args, "--set", "num_sample=4")
    assert code == 2 and "did you mean num_samples" in err and len(sent) == 1


def fake_run_dir(path: Path, mode: str = "min") -> list[dict]:
    """A run folder as a finished study leaves it (results.parquet and summary.json)."""
    rows = [
        {"trial_id": "a", "config.lr": 0.1, "config.width": 64, "val_loss": 0.5, "val_acc": 0.8,
         "epochs": 3, "stop_reason": "completed", "checkpoint": "/x/a"},
        {"trial_id": "b", "config.lr": 0.01, "config.width": 128, "val_loss": 0.2, "val_acc": 0.9,
         "epochs": 2, "stop_reason": "pruned", "checkpoint": "/x/b"},
        {"trial_id": "c", "config.lr": 1.0, "config.width": 64, "val_loss": math.nan,
         "val_acc": None, "epochs": 1, "stop_reason": "diverged", "checkpoint": None},
        {"trial_id": "d", "config.lr": 0.03, "config.width": 32, "val_loss": 0.3, "val_acc": 0.85,
         "epochs": 3, "stop_reason": "completed", "checkpoint": "/x/d"},
    ]  # fmt: skip
    path.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), path / "results.parquet")
    (path / "summary.json").write_text(json.dumps({"metric": "val_loss", "mode": mode}))
    return rows


def test_results_prints_the_trials_best_first(capsys, monkeypatch, tmp_path):
    fake_run_dir(tmp_path / "run")
    code, out, _ = cli(capsys, monkeypatch, "results", str(tmp_path / "run"))
    assert code == 0
    lines = [line for line in out.splitlines() if line.startswith("│")]
    assert [line.split("│")[1].strip() for line in lines] == ["b", "d", "a", "c"]
    assert "pruned" in lines[0] and "diverged" in lines[-1] and "lr" in out and "width" in out
    code, out, _ = cli(capsys, monkeypatch, "results", str(tmp_path / "run"), "--top", "2")
    assert len([line for line in out.splitlines() if line.startswith("│")]) == 2


@pytest.mark.parametrize("mode, order", [("min", "bdac"), ("max", "adbc")])
def test_results_json_matches_results_parquet(capsys, monkeypatch, tmp_path, mode, order):
    rows = fake_run_dir(tmp_path / "run", mode=mode)
    code, out, _ = cli(capsys, monkeypatch, "results", str(tmp_path / "run"), "--json")
    assert code == 0
    parsed = json.loads(out)  # strict JSON: NaN is written as null
    table = pq.read_table(tmp_path / "run/results.parquet").to_pylist()
    by_id = {r["trial_id"]: r for r in table}
    assert "".join(r["trial_id"] for r in parsed) == order
    for got in parsed:
        want = {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in by_id[got["trial_id"]].items()}  # fmt: skip
        assert got == want
    assert len(parsed) == len(rows)
    code, out, _ = cli(
        capsys, monkeypatch, "results", str(tmp_path / "run"), "--json", "--top", "1"
    )
    assert [r["trial_id"] for r in json.loads(out)] == [order[0]]


def test_results_on_a_folder_without_results_exits_2(capsys, monkeypatch, tmp_path):
    code, _, err = cli(capsys, monkeypatch, "results", str(tmp_path))
    assert code == 2 and "holds no results.parquet" in err and "Traceback" not in err


def test_run_with_wandb_and_no_account_stops_before_ray(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc: not logged in to W&B
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    args = ("run", DIGITS, "--storage", str(tmp_path), "--set", "trackers=[wandb]")
    code, _, err = cli(capsys, monkeypatch, *args)
    assert code == 2 and "WANDB_MODE=offline" in err and "Traceback" not in err
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()
    assert not (tmp_path / "digits-mlp").exists()  # nothing written
