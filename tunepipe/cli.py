"""The `tunepipe` command: thin Typer commands, each one library call (house style 6).

Exit codes: 0 done, 1 the study ran but produced no usable trial (or a check failed), 2 bad input.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from tunepipe.datasets_cli import datasets_app

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Run a deep-learning tuning playbook on Ray Tune.",
)

StudyArg = Annotated[Path, typer.Argument(help="the study file (YAML)", show_default=False)]


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False) -> None:
    del debug  # main() reads --debug from argv itself, before Typer parses (errors included)


@app.command()
def validate(study: StudyArg) -> None:
    """Check a study file; print a one-line summary, or every problem at once (exit 2)."""
    from tunepipe.space import space_size
    from tunepipe.study import load_study

    cfg = load_study(study)
    what = cfg.trainable or f"{cfg.model.kind} on {cfg.data.source}"
    typer.echo(
        f"{study}: valid — study {cfg.name!r}, {cfg.task}, {what}, "
        f"{len(cfg.search_space)} hyperparameters ({space_size(cfg)}), "
        f"{cfg.num_samples} samples, {cfg.scheduler.kind} up to "
        f"{cfg.scheduler.max_epochs} epochs"
    )


@app.command()
def schema() -> None:
    """Print the JSON Schema of study files (for editors)."""
    from tunepipe.config import StudyConfig

    typer.echo(json.dumps(StudyConfig.model_json_schema(), indent=2))


SharedStorage = Annotated[
    bool,
    typer.Option(
        "--shared-storage",
        envvar="TUNEPIPE_SHARED_STORAGE",
        help="the local --storage path is a mount (NFS) every node of the cluster sees",
    ),
]
AddressOpt = Annotated[
    str | None,
    typer.Option(help="a Ray cluster to join (as ray.init takes it); default: an embedded Ray"),
]


@app.command()
def run(
    study: StudyArg,
    storage: Annotated[str | None, typer.Option(help="folder or URI for the run folder")] = None,
    address: AddressOpt = None,
    num_samples: Annotated[int | None, typer.Option(help="override num_samples", min=1)] = None,
    seed: Annotated[int | None, typer.Option(help="override the study seed", min=0)] = None,
    shared_storage: SharedStorage = False,
) -> None:
    """Run a study: check it, search with Ray Tune, write results, the best model and a report.

    Ctrl+C or SIGTERM stops it gracefully (exit 130 or 143); `tunepipe resume RUN_DIR` continues.
    """
    from tunepipe.engine.runner import run_study
    from tunepipe.study import load_study

    cfg = load_study(study)
    outcome = run_study(
        cfg,
        study_dir=study.parent,
        storage=storage,
        address=address,
        num_samples=num_samples,
        seed=seed,
        shared_storage=shared_storage,
    )
    _print_outcome(outcome)


@app.command()
def resume(
    run_dir: Annotated[str, typer.Argument(help="the run folder (<storage>/<study name>)")],
    address: AddressOpt = None,
    study_dir: Annotated[
        Path | None,
        typer.Option(help="folder the study's relative paths start from (default: as recorded)"),
    ] = None,
    shared_storage: SharedStorage = False,
) -> None:
    """Continue an interrupted study: finished trials kept, the rest from their last checkpoint."""
    from tunepipe.engine.runner import resume_study

    outcome = resume_study(
        run_dir, study_dir=study_dir, address=address, shared_storage=shared_storage
    )
    _print_outcome(outcome)


def _print_outcome(outcome) -> None:
    from rich.console import Console

    s = outcome.summary
    console = Console()
    extra = f", val_acc = {s['best_val_acc']:.4f}" if "best_val_acc" in s else ""
    console.print(
        f"[bold]best trial[/] {s['best_trial_id']}: {s['metric']} = "
        f"{s['best_' + s['metric']]:.4g}{extra} (epoch {s.get('best_epoch')})"
    )
    console.print(
        "best config: " + ", ".join(f"{k}={_fmt(v)}" for k, v in (s["best_config"] or {}).items())
    )
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(s["stop_reasons"].items()))
    console.print(f"{s['n_trials']} trials in {s['wall_seconds']:.0f} s; stop reasons: {reasons}")
    if "test" in s:
        console.print(
            "held-out test split (P8): " + ", ".join(f"{k} {_fmt(v)}" for k, v in s["test"].items())
        )
    console.print(f"results: {outcome.run_dir}")
    if Path(outcome.run_dir, "report.html").exists():
        console.print(f"report: {outcome.run_dir}/report.html")


@app.command()
def report(
    run_dirs: Annotated[
        list[Path], typer.Argument(help="a run folder (holds summary.json); several: --compare")
    ],
    top_k: Annotated[int, typer.Option(help="trials drawn in the curves", min=1)] = 5,
    compare: Annotated[
        bool, typer.Option("--compare", help="print the case study's table of the run folders")
    ] = False,
    eval_file: Annotated[
        Path | None, typer.Option("--eval", help="--compare: also RMSE on this Parquet file")
    ] = None,
    plot: Annotated[Path | None, typer.Option(help="--compare: the curves' PNG")] = None,
) -> None:
    """Write RUN_DIR/report.html (self-contained) and its PNGs; with --compare, a table."""
    from tunepipe.errors import RunDirError

    if compare or (len(run_dirs) == 1 and (run_dirs[0] / "specialists.json").is_file()):
        from tunepipe.report.compare import compare_report

        typer.echo(compare_report(run_dirs, eval_file, plot))  # specialists: each, combined
        return
    if len(run_dirs) > 1:
        raise RunDirError("report: one run folder at a time, or several with --compare")
    try:
        from tunepipe.report import write_report

        path = write_report(run_dirs[0], top_k=top_k)
    except FileNotFoundError as exc:
        raise RunDirError(str(exc)) from None
    typer.echo(f"report: {path}")


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


jobs_app = typer.Typer(
    no_args_is_help=True, help="Ray jobs on a cluster: list, status, logs, stop (Jobs API)."
)
app.add_typer(jobs_app, name="jobs")
app.add_typer(datasets_app, name="datasets")

DashboardOpt = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="the cluster's dashboard, http://HOST:8265 "
        "(default: TUNEPIPE_ADDRESS, RAY_ADDRESS, http://127.0.0.1:8265)",
        show_default=False,
    ),
]
TokenOpt = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        help="the cluster's 0600 token file (default: TUNEPIPE_RAY_TOKEN_PATH, "
        "RAY_AUTH_TOKEN_PATH, ~/.tunepipe/ray_auth_token)",
        show_default=False,
    ),
]
JobArg = Annotated[str, typer.Argument(help="the job's submission id", show_default=False)]


def _cluster(address: str | None, token_file: Path | None) -> tuple[str, Path]:
    from tunepipe.engine.jobs import default_address
    from tunepipe.engine.session import token_path

    return address or default_address(), (token_file or token_path()).expanduser()


@app.command()
def submit(
    study: StudyArg,
    address: DashboardOpt = None,
    token_file: TokenOpt = None,
    storage: Annotated[
        str | None,
        typer.Option(help="run folder storage as the cluster sees it (a URI or shared path)"),
    ] = None,
    working_dir: Annotated[
        Path | None, typer.Option(help="folder uploaded with the job (default: the study's)")
    ] = None,
    shared_storage: SharedStorage = False,
) -> None:
    """Submit `tunepipe run STUDY` to a Ray cluster as a job; prints the job id."""
    from tunepipe.engine import jobs

    url, token = _cluster(address, token_file)
    args = (["--storage", storage] if storage else []) + (
        ["--shared-storage"] if shared_storage else []
    )
    typer.echo(jobs.submit(study, url, token, working_dir=working_dir, run_args=args))


@jobs_app.command("list")
def jobs_list(address: DashboardOpt = None, token_file: TokenOpt = None) -> None:
    """Every job the cluster knows: id, status, entrypoint."""
    from tunepipe.engine import jobs

    for job in jobs.list_jobs(*_cluster(address, token_file)):
        typer.echo(f"{job.submission_id}\t{job.status.value}\t{job.entrypoint}")


@jobs_app.command("status")
def jobs_status(job: JobArg, address: DashboardOpt = None, token_file: TokenOpt = None) -> None:
    """The job's status: PENDING, RUNNING, STOPPED, SUCCEEDED or FAILED."""
    from tunepipe.engine import jobs

    typer.echo(jobs.job_status(job, *_cluster(address, token_file)))


@jobs_app.command("logs")
def jobs_logs(
    job: JobArg,
    address: DashboardOpt = None,
    token_file: TokenOpt = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="until the job ends")] = False,
) -> None:
    """The job's output so far (or followed until it ends)."""
    from tunepipe.engine import jobs

    for chunk in jobs.job_logs(job, *_cluster(address, token_file), follow=follow):
        typer.echo(chunk, nl=False)


@jobs_app.command("stop")
def jobs_stop(job: JobArg, address: DashboardOpt = None, token_file: TokenOpt = None) -> None:
    """Stop the job (SIGTERM: the study stops gracefully and stays resumable)."""
    from tunepipe.engine import jobs

    stopped = jobs.stop_job(job, *_cluster(address, token_file))
    typer.echo("stop requested" if stopped else "the job had already ended")


@app.command()
def sanity(
    study: StudyArg,
    out: Annotated[
        str | None,
        typer.Option(help="folder or URI for sanity.json and plots [<storage>/<name>.sanity]"),
    ] = None,
    storage: Annotated[str | None, typer.Option(help="override the study's storage")] = None,
    apply: Annotated[
        Path | None,
        typer.Option("--apply", help="write a copy of the study with the suggested lr range here"),
    ] = None,
) -> None:
    """Check a study before tuning (P1, P2, P5): data, initial loss, overfit, LR range test."""
    from tunepipe.playbook.stage import check_study

    outcome = check_study(study, out=out, storage=storage, apply_to=apply)
    typer.echo(f"sanity outputs: {outcome.out_dir}")
    if outcome.applied:
        lo, hi = outcome.result.lr_range.suggested_range
        typer.echo(f"wrote {outcome.applied} (lr: loguniform {lo:.3g} to {hi:.3g})")


@app.command()
def inspect(
    study: StudyArg,
    largest: Annotated[
        bool, typer.Option("--largest", help="the largest model the space allows (P1)")
    ] = False,
) -> None:
    """Show the model layer by layer: output shapes, parameters, receptive field (P7)."""
    from tunepipe.playbook.inspect_study import inspect_study, print_inspection

    print_inspection(inspect_study(study, largest=largest))


def main() -> None:
    """Console entry point: tunepipe's own errors become short lines and an exit code."""
    from tunepipe.errors import TunepipeError

    debug = "--debug" in sys.argv[1:]
    try:
        app(standalone_mode=False)
    except TunepipeError as exc:
        if debug:
            raise
        for line in exc.problems:
            typer.echo(f"error: {line}", err=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except (typer.BadParameter, typer.Exit) as exc:
        _click_exit(exc)
    except Exception as exc:  # noqa: BLE001 - click's usage errors arrive here in standalone_mode=False
        _click_exit(exc, debug)


def _click_exit(exc: BaseException, debug: bool = False) -> None:
    if isinstance(exc, (typer.Exit, *_click_types("Exit"))):
        sys.exit(exc.exit_code)
    if isinstance(exc, _click_types("ClickException")):
        exc.show()  # a usage error: the command line, not the study, is wrong
        sys.exit(2)
    if debug:
        raise exc
    typer.echo(
        f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback;"
        " please report it)",
        err=True,
    )
    sys.exit(3)


def _click_types(name: str) -> tuple[type, ...]:
    """Click's exception class `name`, from typer's vendored copy (typer >= 0.2x) and/or click."""
    import importlib

    found = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(found)


if __name__ == "__main__":
    main()
