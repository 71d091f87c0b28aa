"""`tunepipe run`: check the study, read the data once, search with Ray Tune, write the results."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

from tunepipe.config import StudyConfig
from tunepipe.engine.interrupt import Interrupted
from tunepipe.engine.outputs import RunOutcome, evaluate_test, write_outputs
from tunepipe.engine.phases import PhaseClock, beside
from tunepipe.engine.trackers import check_trackers
from tunepipe.engine.tuner import fit
from tunepipe.engine.warm_helper import calling, local, usable
from tunepipe.errors import RunDirError
from tunepipe.playbook.sanity import run_sanity
from tunepipe.playbook.stage import sanity_stage
from tunepipe.storage import (
    STUDY_FILE,
    RunLocation,
    check_storage_reaches_every_node,
    has_trials,
    new_run_location,
)
from tunepipe.versions import versions

TUNER_STATE = "tuner.pkl"  # Ray Tune's record of how the Tuner was built; restore needs it


# Where the study came from (so resume finds relative data and code) and the versions it ran with.
RUN_FILE = "run.json"


def run_study(
    study: StudyConfig,
    *,
    study_dir: Path | None = None,
    storage: str | None = None,
    address: str | None = None,
    num_samples: int | None = None,
    seed: int | None = None,
    progress: bool = True,
    num_cpus: int | None = None,
    shared_storage: bool = False,
    started: float | None = None,
    fresh: bool = False,
) -> RunOutcome:
    """Run a validated study end to end; returns the run folder and the summary.

    The run folder is new (`storage.new_run_location`): a study that already ran keeps its
    folder. Raises StorageError when a cluster spans hosts and the storage is a local path
    (`shared_storage` declares it an NFS-like mount every node sees), Interrupted on
    SIGINT/SIGTERM (the study is resumable) and StudyFailed when no trial produced a usable
    result. `started` (a time.time() value, e.g. the process's start) is where summary.json's
    wall and phases begin; default now. Without `address`, the warm Ray of `tunepipe up` is used
    when one is up, unless `fresh`.
    """
    updates = {
        k: v
        for k, v in {"storage": storage, "num_samples": num_samples, "seed": seed}.items()
        if v is not None
    }
    study = study.model_copy(update=updates)
    study_dir = (study_dir or Path.cwd()).resolve()
    if study.specialists:  # one ordinary study per group, combined (tunepipe.specialists)
        from tunepipe.specialists import run_specialists

        return run_specialists(study, study_dir, address=address, progress=progress)
    # <storage>/<name>, else <name>-2, -3, ...: a second run never touches the first's results.
    loc = new_run_location(study.storage, study.name)
    print(f"run folder: {loc.display}", file=sys.stderr)
    if study.metric.endswith("_acc"):
        print(
            f"note: selecting on {study.metric}; the playbook's rules read losses (P3)",
            file=sys.stderr,
        )
    from tunepipe.engine.sessions import run_record

    check_trackers(study)  # a missing package or W&B account stops here, not after sanity
    clock = PhaseClock(started)
    with clock.phase("data"):
        data = _load_data(study, study_dir)  # bad data stops here, before Ray starts
    paths = _user_paths(study, study_dir)  # before sanity: it builds the user's model too
    study = _init_from(study, data, study_dir, loc, progress)  # another shape stops here too
    # The sanity stage (and its torch import) runs beside Ray's start, which mostly waits for
    # Ray's processes; Ray's workers boot and import torch (session.PRELOAD_MODULES) meanwhile,
    # so the first trials start at once. A failed check is raised once Ray is up.
    later: list = []  # the sanity stage's plots, drawn beside the search
    with clock.phase("ray_start_and_sanity"):
        warm = _warm_ray(address, fresh)
        helper = _helper(warm, study, data, paths)
        run = helper.sanity if helper else None
        sanity = beside(lambda: _sanity(study, data, loc, progress, later, run=run), "sanity")
        started_ray = _start_ray(paths, address, num_cpus, loc, shared_storage, warm=warm)
        study, clock.beside["sanity"] = sanity()
        _check_resources(study)  # a GPU study never runs silently on CPUs
    # Written before the search, not after: a study killed midway must be resumable.
    loc.write_text(STUDY_FILE, yaml.safe_dump(study.model_dump(mode="json"), sort_keys=False))
    loc.write_json(RUN_FILE, {**run_record(study_dir), "versions": versions()})
    return _search(
        study, data, loc, progress, clock, started_ray, "run", later=later, helper=helper
    )


def resume_study(
    run_dir: str,
    *,
    study_dir: Path | None = None,
    address: str | None = None,
    progress: bool = True,
    num_cpus: int | None = None,
    shared_storage: bool = False,
    time_budget: float | None = None,
    started: float | None = None,
) -> RunOutcome:
    """Continue an interrupted study in its run folder and rewrite its outputs.

    `time_budget` (seconds; 0: none) replaces the study's budget.time for this session.

    Finished trials are kept, unfinished ones continue from their newest checkpoint, errored ones
    are retried. The study, its seed (hence the same data split) and its folder come from the run
    folder's study.yaml and run.json; `study_dir` overrides the folder relative paths start from.
    """
    from tunepipe.storage import locate_run_dir
    from tunepipe.study import parse_study

    loc = locate_run_dir(run_dir)
    if not loc.exists(STUDY_FILE):
        raise RunDirError(
            f"{loc.display} holds no {STUDY_FILE}, so it is not a tunepipe run folder or its "
            "study never started; give the run folder itself (<storage>/<study name>), or start "
            "the study with `tunepipe run STUDY`"
        )
    from tunepipe.engine.sessions import finished_note, recorded_study_dir

    note = finished_note(loc)
    if note is not None:  # a finished study: nothing to resume, nothing changed
        return RunOutcome(loc.display, loc.read_json("summary.json"), note=note)
    study_dir = (study_dir or recorded_study_dir(loc, RUN_FILE)).resolve()
    budgeted = loc.exists("summary.json") and "ended_by" in loc.read_json("summary.json")
    if not has_trials(loc) and not budgeted:  # resuming would repeat whatever stopped it
        raise RunDirError(
            f"{loc.display}: the study stopped before its first trial reported, so there is "
            "nothing to resume; correct the study file and start it with `tunepipe run STUDY` "
            "(it takes this folder over)"
        )
    study = parse_study(
        yaml.safe_load(loc.read_text(STUDY_FILE)), source=f"{loc.display}/{STUDY_FILE}"
    )
    # The folder may have been moved since: it, not the storage recorded inside, is the truth.
    study = study.model_copy(update={"storage": loc.storage, "name": loc.name})
    clock = PhaseClock(started)
    with clock.phase("data"):
        data = _load_data(study, study_dir)
    with clock.phase("ray_start"):
        paths = _user_paths(study, study_dir)
        warm = _warm_ray(address, False)
        started_ray = _start_ray(paths, address, num_cpus, loc, shared_storage, warm=warm)
        _check_resources(study)
    helper = _helper(warm, study, data, paths, sanity=False)
    # No tuner.pkl: the driver died before Tune began, so there is nothing to keep.
    restore = loc.exists(TUNER_STATE)
    return _search(
        study,
        data,
        loc,
        progress,
        clock,
        started_ray,
        "resume",
        restore,
        budget=time_budget,
        helper=helper,
    )


def _search(
    study: StudyConfig,
    data: Any,
    loc: RunLocation,
    progress: bool,
    clock: PhaseClock,
    started_ray: tuple[bool, str],
    kind: str,
    restore: bool = False,
    budget: float | None = None,
    later: list | None = None,
    helper: Any = None,
) -> RunOutcome:
    """Search, then write the outputs; each session's time is recorded (wall_seconds sums them).
    `later`: joins of work started beside the search (the sanity plots), waited for after it.
    `helper`: where the test split is evaluated (`_helper`): torch is then never imported
    here."""
    from tunepipe.engine.sessions import record_session

    evaluate = None
    if helper is not None and data is not None and data.test is not None:
        evaluate = helper.test
    imported = _import_beside(data, loc, torch_here=evaluate is None)
    try:
        with clock.phase("search"):
            grid, scheduler, limits = fit(
                study, data, loc, progress, restore=restore, budget=budget
            )
    except Interrupted as exc:
        for join in later or []:
            join()  # an interrupted study keeps its sanity plots too
        record_session(loc, kind, clock.elapsed(), signal.Signals(exc.signum).name)
        raise
    for join in later or []:
        clock.beside["sanity_plots"] = join()[1]
    if imported is not None:
        clock.beside["imports"] = imported()[1]
    return write_outputs(
        study, data, loc, grid, scheduler, clock, started_ray, limits, kind, evaluate=evaluate
    )


@dataclasses.dataclass(frozen=True)
class TorchWork:
    """Where a study's sanity checks and test evaluation run when not in this process: the warm
    Ray's holder or the forked painter, so this process never imports torch (`_helper`).
    `sanity(study, data)` as run_sanity, `test(loc, data)` as evaluate_test."""

    sanity: Any
    test: Any
    where: str


def _helper(warm: Any, study: StudyConfig, data: Any, paths: list[str], sanity: bool = True) -> Any:
    """Where this study's sanity checks (`sanity`: a run's, not a resume's) and test evaluation
    run instead of here: the warm Ray's holder (engine/warm_helper.py), else the painter when it
    was forked (report/painter.py); None when neither can, or there is nothing to do.

    Both imported torch once, before this study needed it. Neither imports the study's code
    (the user's folders), so a study with code of its own, a GPU study or data too large to send
    does this work here."""
    from tunepipe.report.painter import current, import_torch_work

    has_test = data is not None and data.test is not None
    due = [w for w, d in (("sanity checks", sanity and study.playbook.sanity),
                          ("test evaluation", has_test)) if d]  # fmt: skip
    if not due:
        return None  # nothing to do elsewhere
    painter = current()
    if warm is not None and usable(warm, study, data, paths):
        where = "the warm Ray's holder"
        test = calling(warm, "test", evaluate_test)
        work = TorchWork(calling(warm, "sanity", run_sanity), _test_split_only(test), where)
    elif warm is None and painter is not None and painter.torch_work and local(study, data, paths):
        where = "a helper process"
        painter.run(import_torch_work, background=True)  # at once, beside Ray's start
        # The checks run beside Ray's start too, at the lower priority; the test is waited for.
        checks = _in(painter, run_sanity, background=True)
        work = TorchWork(checks, _test_split_only(_in(painter, evaluate_test)), where)
    else:
        return None
    print(f"{' and '.join(due)}: in {where} (torch imported there)", file=sys.stderr)
    return work


def _in(painter: Any, fn: Any, background: bool = False) -> Any:
    """fn(*args), run in the painter (here if it died) and waited for."""
    return lambda *args: painter.run(fn, *args, background=background)()


def _test_split_only(run: Any) -> Any:
    """evaluate(loc, data) for write_outputs through `run`: only the test split is sent (pickled
    once: the other splits point at it)."""

    def evaluate(loc: RunLocation, data: Any) -> Any:
        return run(loc, dataclasses.replace(data, train=data.test, val=data.test))

    return evaluate


def _import_beside(data: Any, loc: RunLocation, torch_here: bool = True) -> Any:
    """Import, in a thread while the search runs, what the outputs after it need here and
    nothing imported yet: torch for the test evaluation (a warm Ray with the sanity stage reused
    imported none of it; 1.6 s), the report's matplotlib (0.35 s; the sanity plots are drawn in
    the painter process now). The driver mostly waits on Ray meanwhile, so neither import
    follows the search any more. Returns beside()'s join, or None when there is nothing to do.
    Not torch when the warm Ray's holder evaluates the test split (`torch_here` False): this
    import holds the GIL that Tune's loop needs (with it, the search took 2-4 s longer)."""
    import importlib

    test = torch_here and data is not None and data.test is not None
    needed = (["torch"] if test else []) + (["tunepipe.report.html"] if loc.is_local else [])
    missing = [m for m in needed if m not in sys.modules]
    if not missing:
        return None
    return beside(lambda: [importlib.import_module(m) for m in missing], "imports")


def _warm_ray(address: str | None, fresh: bool) -> Any:
    """The warm Ray of `tunepipe up` this run joins: None with an address, `--fresh`, or a Ray
    this process is connected to already (a test's, a notebook's)."""
    if address or fresh:
        return None
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        return None
    from tunepipe.engine.warm import current

    return current()


def _start_ray(
    paths: list[str],
    address: str | None,
    num_cpus: int | None,
    loc: RunLocation,
    shared_storage: bool,
    warm: Any = None,
) -> tuple[bool, str]:
    """Start or join Ray: the cluster at `address`, else `warm` (the warm Ray of `tunepipe up`:
    `_warm_ray`), else an embedded one. Returns (whether this call connected, so the run
    disconnects at its end; False in a test's shared session) and which Ray it is."""
    import ray

    from tunepipe.engine.session import init_ray

    connected = ray.is_initialized()
    if warm is not None:
        print(
            f"using the warm Ray of `tunepipe up` at {warm.address} (dashboard {warm.dashboard});"
            " --fresh starts a Ray of its own",
            file=sys.stderr,
        )
    init_ray(
        warm.address if warm else address,
        num_cpus=num_cpus,
        extra_pythonpath=paths,
        warm=warm is not None,
    )
    # Always, not only with an address: inside a Ray job, RAY_ADDRESS joins the cluster silently.
    check_storage_reaches_every_node(loc, _node_hosts(ray.nodes()), shared_storage)
    kind = (
        "warm" if warm else ("cluster" if address or os.environ.get("RAY_ADDRESS") else "embedded")
    )
    return not connected, kind


def _check_resources(study: StudyConfig) -> None:
    from tunepipe.engine.gpu_check import check_gpu_request, gpu_batch_notes

    check_gpu_request(study)
    for note in gpu_batch_notes(study):
        print(note, file=sys.stderr)


def _user_paths(study: StudyConfig, study_dir: Path) -> list[str]:
    """The study's folder and code_dir, put on this process's import path (models, trainables);
    returns the folders Ray's workers need too: none when the study runs no code of the user's.

    A warm Ray's job given a PYTHONPATH runtime_env cannot take the workers `tunepipe up`
    prestarted with torch imported: each trial actor would boot a fresh one (2.5 s of CPU each,
    taken from the first trials). A built-in model with tunepipe's trainable imports nothing
    from these folders, so its workers need not see them.
    """
    paths = [str(study_dir)] + (
        [str((study_dir / study.code_dir).resolve())] if study.code_dir else []
    )
    sys.path[:0] = [p for p in paths if p not in sys.path]
    user_code = study.trainable or study.code_dir or getattr(study.model, "kind", None) == "custom"
    return paths if user_code else []


def _sanity(
    study: StudyConfig,
    data: Any,
    loc: RunLocation,
    progress: bool,
    later: list,
    run: Any = None,
) -> StudyConfig:
    """P1/P5: check before searching (raises SanityFailed on a failed check); resolves `lr: auto`
    and hands the measured loss before training to the divergence rule as its reference. A
    passed stage's plots are drawn beside the search: their joins go to `later`. `run`: what
    runs the checks (default: `run_sanity`, here)."""

    def defer(fn: Any, *args: Any) -> None:
        from tunepipe.report.painter import current

        painter = current()
        if painter is None:
            later.append(beside(lambda: fn(*args), "sanity_plots"))
        else:  # in the painter process: no GIL taken from Tune's loop; it yields the CPUs
            later.append(beside(painter.run(fn, *args, background=True), "sanity_plots"))

    study, result = sanity_stage(study, data, loc, progress=progress, defer=defer, run=run)
    if result is None or data is None or study.stopping.initial_loss is not None:
        return study  # P5's reference: the study's, else expected_initial_loss (schedule.py)
    reference, words = result.divergence_reference(data.chance_loss())
    if progress:
        print(f"divergence rule's reference: {words}", file=sys.stderr)
    stopping = study.stopping.model_copy(update={"initial_loss": reference})
    return study.model_copy(update={"stopping": stopping})


def _init_from(
    study: StudyConfig, data: Any, study_dir: Path, loc: RunLocation, progress: bool
) -> StudyConfig:
    if not study.init_from:  # the module imports torch: 1.6 s on the critical path for nothing
        return study
    from tunepipe.train.pretrained import resolve_init_from

    study, transfer = resolve_init_from(study, data, study_dir)
    if transfer is not None:
        loc.write_json("init_from.json", {"run_dir": study.init_from, **transfer.to_json()})
        if progress:
            print(f"init_from {study.init_from}: loaded {', '.join(transfer.loaded)}")
            print(f"  fresh: {', '.join(transfer.fresh) or 'none'}")
    return study


def _node_hosts(nodes: list[dict[str, Any]]) -> set[str]:
    return {n["NodeManagerAddress"] for n in nodes if n.get("Alive")}


def _load_data(study: StudyConfig, study_dir: Path) -> Any:
    if study.trainable:
        return None
    from tunepipe.data import load_data
    from tunepipe.space import min_batch_size

    return load_data(
        study.data, study.task, study.seed, min_rows=min_batch_size(study), base_dir=study_dir
    )
