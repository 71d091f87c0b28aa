"""Does the LR range test's suggested range hold the lr a search finds best? (digits)

For each seed: the sanity stage's suggested range, then the example study's own search
(lr loguniform 1e-4..1e-1, ASHA) and where its best trial's lr falls; then the same study with
`lr: auto` (the search over the suggested range). Prints a table; takes a few minutes on 2 CPUs.

    PYTHONPATH=. python benchmarks/lr_range_vs_search.py [--seeds 0 1 2] [--no-auto]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import yaml

from tunepipe.engine.runner import run_study
from tunepipe.playbook.sanity import run_sanity
from tunepipe.playbook.stage import load_study_data
from tunepipe.study import parse_study

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def study_for(seed: int, auto: bool):
    raw = yaml.safe_load((EXAMPLES / "digits.yaml").read_text())
    raw["seed"] = seed
    raw["name"] = f"digits-{'auto' if auto else 'given'}-{seed}"
    if auto:
        raw["search_space"]["lr"] = "auto"
    return parse_study(raw)


def best(study, storage: str) -> dict:
    outcome = run_study(study, study_dir=EXAMPLES, storage=storage, progress=False)
    s = outcome.summary
    return {"lr": s["best_config"]["lr"], "opt": s["best_config"].get("optimizer"),
            "val_loss": s["best_val_loss"], "val_acc": s.get("best_val_acc")}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--no-auto", action="store_true", help="skip the lr: auto searches")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as storage:
        for seed in args.seeds:
            given = study_for(seed, auto=False)
            sanity = run_sanity(given, load_study_data(given, EXAMPLES))
            lo, hi = sanity.lr_range.suggested_range
            found = best(given, storage)
            auto = None if args.no_auto else best(study_for(seed, auto=True), storage)
            rows.append((seed, sanity.lr_range.suggested_lr, lo, hi, found, auto))
    print(f"{'seed':>4} {'suggested':>9} {'range':>19} {'best lr (given 1e-4..1e-1)':>28}"
          f" {'inside':>6} {'val_loss':>8} {'auto: best lr':>14} {'val_loss':>8}")  # fmt: skip
    for seed, sug, lo, hi, found, auto in rows:
        inside = "yes" if lo <= found["lr"] <= hi else "NO"
        line = (
            f"{seed:>4} {sug:>9.3g} [{lo:>7.3g}, {hi:>7.3g}] "
            f"{found['lr']:>20.3g} ({found['opt']:>4}) {inside:>6} {found['val_loss']:>8.4f}"
        )
        if auto:
            line += f" {auto['lr']:>7.3g} ({auto['opt']:>4}) {auto['val_loss']:>8.4f}"
        print(line)


if __name__ == "__main__":
    main()
