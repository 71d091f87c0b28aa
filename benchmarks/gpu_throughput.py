"""GPU throughput: the plain fp32 setup against tunepipe's fast path, in one run (issue 18).

Two comparisons, every method its own process:

1. Throughput, steady state: the case study's CNN (benchmarks/gpu_nets.py) at batch 128 on
   random data. (a) a plain eager fp32 loop, one trial on the device; (b) tunepipe's fast path
   (train.precision/channels_last/compile `auto`, tunepipe.train.loop.train_epoch) with `--packed`
   trials sharing the device through Ray Tune. Aggregate samples/s and the ratio.
2. A study of `--trials` × `--epochs` over `--rows` samples read from a Parquet file on the host:
   (a) the usual setup, a plain Ray Tune script (one trial per GPU, eager fp32, actors reused);
   (b) `tunepipe run` with `resources.gpu: 1/packed`. Each timed as a whole process and from the
   first trial's start to the last trial's end; best val_loss of each.

On a machine without CUDA it runs the same code on the CPU at a tiny size (the test suite runs
it that way: tests/test_gpu_fast_path.py); CPU numbers say nothing about GPU speed.

    python benchmarks/gpu_throughput.py                 # GPU sizes (96×96, 7049 rows, 8 × 10)
    python benchmarks/gpu_throughput.py --cpu           # tiny CPU run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
OUTPUTS = 30  # the case study's 15 keypoints × (x, y)


def make_data(path: Path, rows: int, size: int, seed: int = 0) -> None:
    """Random grey images and 30 targets, as the keypoints data's Parquet layout has them."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    pixels = rng.random((rows, size * size), dtype=np.float32)
    images = pa.FixedSizeListArray.from_arrays(pa.array(pixels.reshape(-1)), size * size)
    targets = rng.standard_normal((rows, OUTPUTS)).astype(np.float32)
    columns = {"image": images, **{f"y{i}": targets[:, i] for i in range(OUTPUTS)}}
    pq.write_table(pa.table(columns), path)


def read_data(path: Path, size: int):
    import numpy as np
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    flat = table.column("image").combine_chunks().flatten().to_numpy()
    x = flat.reshape(len(table), 1, size, size).astype(np.float32)
    y = np.stack([table.column(f"y{i}").to_numpy() for i in range(OUTPUTS)], axis=1)
    return x, y.astype(np.float32)


def device_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"


# ------------------------------------------------------------------ (1) steady-state throughput


def plain_throughput(args: argparse.Namespace) -> dict:
    """(a) eager fp32, data on the device, no per-step sync: a strong plain baseline."""
    import torch
    from gpu_nets import case_study_cnn

    torch.set_num_threads(1)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    x = torch.rand(args.batch * 8, 1, args.size, args.size, device=device)
    y = torch.randn(args.batch * 8, OUTPUTS, device=device)
    model = case_study_cnn((1, args.size, args.size), OUTPUTS).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.MSELoss()

    def steps(n: int) -> None:
        for _ in range(n):
            idx = torch.randint(0, len(x), (args.batch,), device=device)
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    steps(args.warmup)
    t0 = time.perf_counter()
    steps(args.steps)
    return {"samples_per_s": args.steps * args.batch / (time.perf_counter() - t0)}


def fast_trial(config: dict) -> None:
    """One packed trial: tunepipe's fast path on random data; reports its timed window."""
    import torch
    from gpu_nets import case_study_cnn
    from ray import tune

    from tunepipe.config import TrainConfig
    from tunepipe.train import fast as fastpath
    from tunepipe.train.loop import Hyper, make_optimizer, train_epoch

    torch.set_num_threads(1)
    size, batch = config["size"], config["batch"]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    x = torch.rand(batch * config["steps"], 1, size, size)
    y = torch.randn(batch * config["steps"], OUTPUTS)
    hp = Hyper("sgd", 0.01, 0.9, 0.0, batch, None)
    fast = fastpath.resolve(
        TrainConfig(), device, steps=config["steps"] * 3, image_input=True, train_bytes=x.nbytes
    )
    model, forward = fastpath.prepare_model(case_study_cnn((1, size, size), OUTPUTS), fast)
    opt = make_optimizer(model, hp)
    (xd, yd) = fastpath.device_tensors({"train": (x, y)}, fast)["train"]
    gen = torch.Generator().manual_seed(0)
    loss_fn = torch.nn.MSELoss()
    train_epoch(model, opt, loss_fn, xd, yd, hp, gen, fast, forward)  # warm-up: autotune, compile
    t0 = time.time()
    for _ in range(2):
        train_epoch(model, opt, loss_fn, xd, yd, hp, gen, fast, forward)
    t1 = time.time()
    tune.report({"t0": t0, "t1": t1, "samples": 2 * len(x), "precision": fast.precision})


def fast_throughput(args: argparse.Namespace) -> dict:
    """(b) `--packed` trials through Ray Tune on one device, each 1/packed of it."""
    from ray import tune

    from tunepipe.engine.session import init_ray

    init_ray(None, dashboard=False, extra_pythonpath=[str(ROOT / "benchmarks")])
    gpu = args.gpu
    resources = {"gpu": 1 / args.packed, "cpu": 1} if gpu else {"cpu": 1}
    with tempfile.TemporaryDirectory() as tmp:
        grid = tune.Tuner(
            tune.with_resources(fast_trial, resources),
            param_space={"size": args.size, "batch": args.batch, "steps": args.steps},
            tune_config=tune.TuneConfig(num_samples=args.packed, reuse_actors=True),
            run_config=tune.RunConfig(storage_path=tmp, name="fast", verbose=0),
        ).fit()
    rs = [r.metrics for r in grid]
    span = max(r["t1"] for r in rs) - min(r["t0"] for r in rs)
    return {"samples_per_s": sum(r["samples"] for r in rs) / span, "precision": rs[0]["precision"]}


# ------------------------------------------------------------------ (2) the study end to end


def plain_study_trial(config: dict, x=None, y=None) -> None:
    """The usual Ray Tune trainable: eager fp32, per-batch gathers, one trial per device."""
    import torch
    from gpu_nets import case_study_cnn
    from ray import tune

    start = time.time()
    torch.set_num_threads(1)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gen = torch.Generator().manual_seed(0)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    n_val = len(xt) // 5
    (xv, yv), (xtr, ytr) = (xt[:n_val], yt[:n_val]), (xt[n_val:], yt[n_val:])
    model = case_study_cnn(tuple(xt.shape[1:]), OUTPUTS).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config["lr"])
    loss_fn = torch.nn.MSELoss()
    for epoch in range(config["epochs"]):
        model.train()
        order = torch.randperm(len(xtr), generator=gen)
        for i in range(0, len(order), 128):
            idx = order[i : i + config["batch"]]
            opt.zero_grad()
            loss = loss_fn(model(xtr[idx].to(device)), ytr[idx].to(device))
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            val = loss_fn(model(xv.to(device)), yv.to(device)).item()
        tune.report({"val_loss": val, "start": start, "end": time.time(), "epoch": epoch + 1})


def plain_study(args: argparse.Namespace) -> dict:
    from ray import tune

    from tunepipe.engine.session import init_ray

    init_ray(None, dashboard=False, extra_pythonpath=[str(ROOT / "benchmarks")])
    x, y = read_data(Path(args.data), args.size)
    resources = {"gpu": 1, "cpu": 1} if args.gpu else {"cpu": 1}
    with tempfile.TemporaryDirectory() as tmp:
        grid = tune.Tuner(
            tune.with_resources(tune.with_parameters(plain_study_trial, x=x, y=y), resources),
            param_space={
                "lr": tune.loguniform(1e-4, 1e-2),
                "epochs": args.epochs,
                "batch": args.batch,
            },
            tune_config=tune.TuneConfig(num_samples=args.trials, reuse_actors=True),
            run_config=tune.RunConfig(storage_path=tmp, name="plain", verbose=0),
        ).fit()
        frames = [r.metrics_dataframe for r in grid]
    return {
        "span_s": max(f["end"].max() for f in frames) - min(f["start"].min() for f in frames),
        "best_val_loss": min(f["val_loss"].min() for f in frames),
    }


def tunepipe_study_file(args: argparse.Namespace, folder: Path) -> Path:
    import yaml

    study = {
        "name": "fast",
        "task": "regression",
        "data": {
            "source": str(Path(args.data).resolve()),
            "image_column": "image",
            "image_shape": [1, args.size, args.size],
            "label": [f"y{i}" for i in range(OUTPUTS)],
            "normalize": False,
            "standardize_targets": False,
        },
        "model": {"kind": "custom", "factory": "gpu_nets:case_study_cnn"},
        "code_dir": str(ROOT / "benchmarks"),
        "train": {"batch_size": args.batch},
        "search_space": {"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2}},
        "scheduler": {"kind": "fifo", "max_epochs": args.epochs},
        "stopping": {"divergence": None, "overfitting": None, "plateau": None},
        "resources": {"gpu": 1 / args.packed, "cpu": 1} if args.gpu else {"cpu": 1},
        "num_samples": args.trials,
        "storage": str(folder / "runs"),
        "playbook": {"sanity": False},  # the usual setup has none: compare the search alone
    }
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def tunepipe_span(run_dir: Path) -> float:
    """First trial's start to last trial's end, from Ray's per-trial result.json (the
    `timestamp` Ray writes is whole seconds: ±1 s)."""
    starts, ends = [], []
    for result in run_dir.glob("*/result.json"):
        rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        if rows:
            starts.append(rows[0]["timestamp"] - rows[0]["time_this_iter_s"])
            ends.append(rows[-1]["timestamp"])
    return max(ends) - min(starts)


# ------------------------------------------------------------------ driver


def in_process(role: str, args: argparse.Namespace) -> dict:
    """Run one method in a fresh Python process (imports and Ray start-up included)."""
    cmd = [sys.executable, __file__, "--as", role, *forwarded(args)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=child_env())
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{role} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "wall_s": wall}


def tunepipe_run(args: argparse.Namespace, folder: Path) -> dict:
    study = tunepipe_study_file(args, folder)
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "tunepipe", "run", str(study)],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=folder,
    )
    wall = time.perf_counter() - t0
    summary_file = folder / "runs" / "fast" / "summary.json"
    # Exit 1 with every output written is tunepipe saying that no trial beat the chance-level
    # loss: random images carry nothing to learn, and that is the setup being timed.
    if done.returncode not in (0, 1) or not summary_file.exists():
        raise SystemExit(f"tunepipe run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    summary = json.loads(summary_file.read_text())
    return {
        "wall_s": wall,
        "span_s": tunepipe_span(folder / "runs" / "fast"),
        "best_val_loss": summary.get("best_val_loss") or math.nan,
    }


def child_env() -> dict[str, str]:
    paths = [str(ROOT), str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}


def forwarded(args: argparse.Namespace) -> list[str]:
    out = []
    for key in ("rows", "size", "batch", "steps", "warmup", "trials", "epochs", "packed", "data"):
        out += [f"--{key}", str(getattr(args, key))]
    return out + (["--gpu"] if args.gpu else [])


def print_tables(args: argparse.Namespace, rows: dict) -> None:
    plain, fast = rows["plain throughput"], rows["fast throughput"]
    print(
        f"\ndevice: {device_name()}; case-study CNN, {args.size}×{args.size} grey, "
        f"batch {args.batch}"
    )
    print(f"{'(1) steady state':<44} {'samples/s':>10}")
    print(f"{'(a) plain eager fp32, one trial':<44} {plain['samples_per_s']:>10.0f}")
    label = f"(b) tunepipe fast path, {args.packed} packed ({fast['precision']})"
    print(f"{label:<44} {fast['samples_per_s']:>10.0f}")
    print(f"ratio (b)/(a): {fast['samples_per_s'] / plain['samples_per_s']:.2f}x")
    us, tp = rows["usual study"], rows["tunepipe study"]
    print(
        f"\n(2) study: {args.trials} trials × {args.epochs} epochs, {args.rows} rows from Parquet"
    )
    print(f"{'setup':<44} {'whole s':>8} {'trials s':>9} {'best val':>9}")
    for name, r in (("(a) usual: plain Ray Tune, 1 trial/device", us), ("(b) tunepipe run", tp)):
        print(f"{name:<44} {r['wall_s']:>8.1f} {r['span_s']:>9.1f} {r['best_val_loss']:>9.4f}")
    print(
        f"speed-up, whole process: {us['wall_s'] / tp['wall_s']:.2f}x; "
        f"first start to last end: {us['span_s'] / max(tp['span_s'], 1e-9):.2f}x"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="tiny sizes on the CPU (what tests run)")
    ap.add_argument("--rows", type=int, default=7049)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=200, help="(1): timed steps per trial")
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--packed", type=int, default=4)
    ap.add_argument("--data", default="")
    ap.add_argument("--gpu", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--as", dest="role", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.cpu and args.role is None:
        args.rows, args.size, args.batch, args.steps, args.warmup = 96, 16, 32, 4, 2
        args.trials, args.epochs, args.packed = 2, 2, 2
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    roles = {
        "plain-throughput": plain_throughput,
        "fast-throughput": fast_throughput,
        "plain-study": plain_study,
    }
    if args.role:
        print(json.dumps(roles[args.role](args)))
        return {}
    import torch

    args.gpu = torch.cuda.is_available() and not args.cpu
    with tempfile.TemporaryDirectory() as tmp:
        args.data = str(Path(tmp) / "images.parquet")
        make_data(Path(args.data), args.rows, args.size)
        rows = {
            "plain throughput": in_process("plain-throughput", args),
            "fast throughput": in_process("fast-throughput", args),
            "usual study": in_process("plain-study", args),
            "tunepipe study": tunepipe_run(args, Path(tmp)),
        }
    print_tables(args, rows)
    return rows


if __name__ == "__main__":
    main()
