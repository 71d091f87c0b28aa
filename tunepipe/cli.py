"""The `tunepipe` command: thin Typer commands, each one library call (house style 6).

Exit codes: 0 done, 1 the study ran but produced no usable trial (or a check failed), 2 bad input.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from tunepipe.cli_options import AddressOpt, SetOpt, SharedStorage, StudyArg
from tunepipe.datasets_cli import datasets_app
from tunepipe.jobs_cli import jobs_app, submit
from tunepipe.k8s.cli import k8s_app
from tunepipe.monitoring.cli import GrafanaOpt, PrometheusHostOpt, grafana_app, status, token

app = typer.Typer(
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Run a deep-learning tuning playbook on Ray Tune.",
)


def _version(value: bool) -> None:
    if value:
        from tunepipe import __version__

        typer.echo(f"tunepipe {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    del debug, version  # main() reads --debug from argv itself, before Typer parses


@app.command()
def validate(study: StudyArg, set_: SetOpt = None) -> None:
    """Check a study file, its data (columns) and code; a one-line summary, or every problem at
    once (exit 2). The cluster it will run on is not checked."""
    from tunepipe.preflight import validate_file
    from tunepipe.space import space_size, trial_count

    cfg = validate_file(study, set_ or [])
    what = cfg.trainable or f"{cfg.model.kind} on {cfg.data.source}"
    n = trial_count(cfg)
    grid = (
        f" ({n // cfg.num_samples} grid points x {cfg.num_samples})" if n > cfg.num_samples else ""
    )
    typer.echo(
        f"{study}: valid — study {cfg.name!r}, {cfg.task}, {what}, "
        f"{len(cfg.search_space)} hyperparameters ({space_size(cfg)}), "
        f"{n} trials{grid}, {cfg.scheduler.kind} up to {cfg.scheduler.max_epochs} epochs"
    )


@app.command()
def schema() -> None:
    """Print the JSON Schema of study files (for editors)."""
    from tunepipe.config.schema import study_json_schema

    typer.echo(json.dumps(study_json_schema(), indent=2))


@app.command()
def run(
    study: StudyArg,
    storage: Annotated[str | None, typer.Option(help="folder or URI for the run folder")] = None,
    address: AddressOpt = None,
    num_samples: Annotated[int | None, typer.Option(help="override num_samples", min=1)] = None,
    seed: Annotated[int | None, typer.Option(help="override the study seed", min=0)] = None,
    shared_storage: SharedStorage = False,
    grafana: GrafanaOpt = None,
    prometheus: PrometheusHostOpt = None,
    set_: SetOpt = None,
    no_sanity: Annotated[
        bool, typer.Option("--no-sanity", help="skip the sanity stage (playbook.sanity=false)")
    ] = False,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="start a Ray of its own even if `tunepipe up` left one")
    ] = False,
) -> None:
    """Run a study: check it, search with Ray Tune, write results, the best model and a report.

    Ctrl+C or SIGTERM stops it gracefully (exit 130 or 143); `tunepipe resume RUN_DIR` continues.
    """
    from tunepipe.engine.phases import process_start
    from tunepipe.engine.runner import run_study
    from tunepipe.monitoring.ray_dashboard import wire_metrics
    from tunepipe.report.painter import painting
    from tunepipe.study import load_study

    wire_metrics(grafana, prometheus)
    cfg = load_study(study, [*(set_ or []), *(["playbook.sanity=false"] if no_sanity else [])])
    with painting():  # the plots are drawn in a second process beside this one (3+ CPUs)
        outcome = run_study(
            cfg,
            started=process_start(),
            study_dir=study.parent,
            storage=storage,
            address=address,
            num_samples=num_samples,
            seed=seed,
            shared_storage=shared_storage,
            fresh=fresh,
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
    time: Annotated[
        str | None,
        typer.Option(
            help="this session's time budget (20s, 15m, 2h; 0: none), instead of the "
            "study's budget.time"
        ),
    ] = None,
) -> None:
    """Continue an interrupted study: finished trials kept, the rest from their last checkpoint."""
    from tunepipe.config.search import parse_duration
    from tunepipe.engine.phases import process_start
    from tunepipe.engine.runner import resume_study
    from tunepipe.report.painter import painting

    budget = _duration(time, parse_duration)
    with painting():  # the report's plots: in a second process beside this one (3+ CPUs)
        outcome = resume_study(
            run_dir,
            study_dir=study_dir,
            address=address,
            shared_storage=shared_storage,
            time_budget=budget,
            started=process_start(),
        )
    _print_outcome(outcome)


def _duration(text: str | None, parse) -> float | None:
    if text is None:
        return None
    try:
        return float(parse(text if not text.replace(".", "").isdigit() else float(text)))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--time") from None


def _print_outcome(outcome) -> None:
    from rich.console import Console

    s = outcome.summary
    console = Console()
    if outcome.note:
        console.print(outcome.note, soft_wrap=True)
    extra = f", val_acc = {s['best_val_acc']:.4f}" if "best_val_acc" in s else ""
    if s["best_trial_id"] is None:  # a time budget that ran out before any trial reported
        console.print(f"no trial has reported {s['metric']} yet")
    else:
        console.print(
            f"[bold]best trial[/] {s['best_trial_id']}: {s['metric']} = "
            f"{s['best_' + s['metric']]:.4g}{extra} (epoch {s.get('best_epoch')})"
        )
    console.print(
        "best config: " + ", ".join(f"{k}={_fmt(v)}" for k, v in (s["best_config"] or {}).items())
    )
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(s["stop_reasons"].items()))
    console.print(f"{s['n_trials']} trials in {s['wall_seconds']:.0f} s; stop reasons: {reasons}")
    if s.get("ended_by"):
        console.print(f"ended early: {s['ended_by']}")
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


@app.command()
def results(
    run_dir: Annotated[str, typer.Argument(help="a run folder (holds results.parquet)")],
    top: Annotated[
        int | None, typer.Option("--top", help="only the K best trials", min=1, metavar="K")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON rows instead of a table")] = False,
) -> None:
    """The trials, best first: config, best metric, epochs, stop reason (reads results.parquet)."""
    from tunepipe.report.trials import print_trials

    print_trials(run_dir, top=top, as_json=as_json)


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


from tunepipe.warm_cli import down, up  # noqa: E402 - the commands' own module

app.command()(up)
app.command()(down)

app.add_typer(jobs_app, name="jobs")
app.command()(submit)
app.add_typer(k8s_app, name="k8s")
app.add_typer(grafana_app, name="grafana")
app.command()(status)
app.command()(token)
app.add_typer(datasets_app, name="datasets")


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
        app(prog_name="tunepipe", standalone_mode=False)
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


def entry() -> None:
    """The process's entry point (console script, `python -m tunepipe`): main(), then, after a
    `run`/`resume` that returned normally, exit without module teardown. Never called by code
    that goes on after it, as tests calling main() do: it ends the process."""
    main()
    _skip_teardown_after_a_study()


def _skip_teardown_after_a_study() -> None:
    """After `run`/`resume` (Ray already shut down, every file closed), exit without tearing
    down torch, Ray and gRPC module by module: that took 6-8 s of a busy 2-core machine after the
    last line was printed. atexit handlers still run."""
    if next((a for a in sys.argv[1:] if not a.startswith("-")), None) in ("run", "resume"):
        import atexit
        import os

        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


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
