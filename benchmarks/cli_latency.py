"""How long the quick commands take as a user runs them: each a fresh `python -m tunepipe`
process, median of --repeats (target: under 1 s each; they must import neither Ray nor torch).

    python benchmarks/cli_latency.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parquet_study(folder: Path) -> Path:
    """The example study on a Parquet copy of the digits data (validate reads its schema)."""
    import shutil

    import yaml

    data = folder / "digits.parquet"
    shutil.copy(ROOT / "tunepipe" / "data" / "builtin" / "digits.parquet", data)
    study = yaml.safe_load((ROOT / "examples" / "digits.yaml").read_text())
    study["data"]["source"] = str(data)
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def seconds(args: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "tunepipe", *args], cwd=ROOT, capture_output=True, check=True
        )
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        commands = {
            "tunepipe --help": ["--help"],
            "tunepipe validate (built-in data)": ["validate", "examples/digits.yaml"],
            "tunepipe validate (Parquet file)": ["validate", str(parquet_study(Path(tmp)))],
            "tunepipe schema": ["schema"],
        }
        rows = {name: seconds(cmd, args.repeats) for name, cmd in commands.items()}
    print(f"\nwhole process, median of {args.repeats}")
    print(f"{'command':<36} {'seconds':>8}")
    for name, value in rows.items():
        print(f"{name:<36} {value:>8.2f}")


if __name__ == "__main__":
    main()
