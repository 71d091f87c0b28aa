"""Every private Ray attribute tunepipe relies on, checked against the installed Ray.

Each test names the tunepipe code that depends on the attribute and fails with a message saying what
moved, so a Ray upgrade breaks here, loudly, instead of silently changing what tunepipe does. No
Ray session is started. (Token auth's private names: tests/test_cluster_auth.py.)
"""

from __future__ import annotations

import inspect

import pytest
from ray.tune.schedulers import AsyncHyperBandScheduler, PopulationBasedTraining
from ray.tune.schedulers.async_hyperband import _Bracket

from tunepipe.engine.ray_private import (
    restored_callbacks,
    restored_scheduler,
    restored_stop,
    tune_default_env_vars,
)
from tunepipe_schedulers.cutoffs import SortedRung
from tunepipe_schedulers.judge import PlaybookJudge
from tunepipe_schedulers.ray_asha import PlaybookASHA
from tunepipe_schedulers.ray_pbt import PlaybookPBT


def _source_calls(func: object, *names: str) -> None:
    source = inspect.getsource(func)
    for name in names:
        assert name in source, f"Ray's {func.__qualname__} no longer uses {name}"


def test_tune_default_env_vars_is_the_dict_tune_gives_trial_actors() -> None:
    # engine/session.py empties it while Tune runs on the embedded Ray.
    from ray.tune.execution import class_cache

    found = tune_default_env_vars()
    assert found is class_cache.DEFAULT_ENV_VARS, "class_cache.DEFAULT_ENV_VARS moved"
    assert found, "Ray's DEFAULT_ENV_VARS is empty: nothing left for tunepipe to drop"
    _source_calls(class_cache._ActorClassCache.get, "DEFAULT_ENV_VARS")


def test_restored_scheduler_reads_the_scheduler_tune_runs_with(tmp_path) -> None:
    # engine/runner.py: `Tuner.restore` takes no scheduler and Ray has no accessor for it.
    from ray import tune
    from ray.tune.stopper import MaximumIterationStopper

    scheduler, stop = PlaybookASHA(), MaximumIterationStopper(3)
    tuner = tune.Tuner(
        lambda config: None,
        tune_config=tune.TuneConfig(scheduler=scheduler),
        run_config=tune.RunConfig(
            storage_path=str(tmp_path), name="x", stop=stop, callbacks=[callback := tune.Callback()]
        ),
    )
    assert restored_scheduler(tuner) is scheduler
    assert restored_callbacks(tuner) == [callback]  # the progress view is reconnected there
    assert restored_stop(tuner) is stop  # a budget or target lives here (issue 16)
    with pytest.raises(RuntimeError, match="restored_scheduler needs updating"):
        restored_scheduler(object())
    with pytest.raises(RuntimeError, match="restored_stop needs updating"):
        restored_stop(object())
    with pytest.raises(RuntimeError, match="restored_callbacks needs updating"):
        restored_callbacks(object())


def test_asha_private_state_playbook_asha_reads_and_writes() -> None:
    # tunepipe_schedulers/ray_asha.py replaces Ray's brackets, counts its own stops, reads max_t.
    ray_asha = AsyncHyperBandScheduler(max_t=9, grace_period=1, reduction_factor=3)
    for name, value in (("_max_t", 9), ("_num_stopped", 0), ("_time_attr", "training_iteration"),
                        ("_stop_last_trials", True)):  # fmt: skip
        assert getattr(ray_asha, name) == value, f"AsyncHyperBandScheduler.{name} moved"
    _source_calls(AsyncHyperBandScheduler.on_trial_add, "self._brackets")
    _source_calls(AsyncHyperBandScheduler.on_trial_result, "self._num_stopped", "on_result")
    bracket = _Bracket(1, 9, 3, 0, True)
    assert [m for m, rung in bracket._rungs] == [9, 3, 1] and bracket.rf == 3
    assert list(inspect.signature(bracket.cutoff).parameters) == ["recorded"]
    _source_calls(_Bracket.on_result, "self.cutoff(", "self._rungs")


def test_playbook_asha_brackets_are_the_ones_ray_fills() -> None:
    s = PlaybookASHA(judge=PlaybookJudge(None, None, None), metric="val_loss", mode="min",
                     max_t=9, grace_period=1, reduction_factor=3)  # fmt: skip

    class Trial:
        trial_id, config = "t", {}

    s.on_trial_add(None, Trial())
    s.on_trial_result(None, Trial(), {"training_iteration": 1, "val_loss": 0.5})
    rungs = dict(s._brackets[0]._rungs)
    assert isinstance(rungs[1], SortedRung) and rungs[1].sorted == [-0.5]  # Ray records -loss


def test_pbt_hooks_playbook_pbt_overrides_are_still_called() -> None:
    # tunepipe_schedulers/ray_pbt.py: the explore step (_get_new_config), the rule state copied on
    # exploit (_exploit), the paused trials (_trial_state).
    _source_calls(PopulationBasedTraining._checkpoint_or_exploit, "self._exploit(")
    _source_calls(PopulationBasedTraining._exploit, "self._get_new_config(")
    for hook in ("_exploit", "_get_new_config"):
        ours = inspect.signature(getattr(PlaybookPBT, hook)).parameters
        rays = inspect.signature(getattr(PopulationBasedTraining, hook)).parameters
        assert list(ours) == list(rays), f"PopulationBasedTraining.{hook} changed its arguments"
    pbt = PlaybookPBT({"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1}}, metric="m",
                      mode="min")  # fmt: skip
    assert isinstance(pbt._trial_state, dict), "PopulationBasedTraining._trial_state moved"


def test_callback_usage_tag_counts_as_ray_does_without_importing_integrations() -> None:
    # engine/tuner.py: Tune's tag_callbacks imports Ray's MLflow and W&B integrations (1.2 s of
    # the driver with them installed) only to compare classes; tunepipe counts by name instead.
    from ray.air._internal import usage
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.tune import Callback
    from ray.tune.logger import CSVLoggerCallback, LoggerCallback

    from tunepipe.engine.ray_private import callback_usage_without_imports

    _source_calls(usage.tag_callbacks, "_count_callbacks(")
    callbacks = [CSVLoggerCallback(), Callback(), LoggerCallback(), object()]
    callbacks.append(MLflowLoggerCallback())
    expected = dict(usage._count_callbacks(callbacks))
    original = usage._count_callbacks
    with callback_usage_without_imports():
        assert usage._count_callbacks is not original
        assert dict(usage._count_callbacks(callbacks)) == expected
    assert usage._count_callbacks is original


SHUTDOWN = """
import json, sys, time
import ray
from ray._private import node
from tunepipe.engine.ray_private import shutdown_embedded

waited = {}
kill = node.Node._kill_process_impl
def timed(self, kind, *args, **kwargs):
    t0 = time.perf_counter()
    kill(self, kind, *args, **kwargs)
    waited[kind] = time.perf_counter() - t0
node.Node._kill_process_impl = timed
ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
processes = ray._private.worker._global_node.all_processes
monitor = processes["monitor"][0].process
shutdown_embedded()
json.dump({"waited": waited, "monitor": monitor.returncode,
           "alive": [k for k, ps in processes.items() for p in ps if p.process.poll() is None]},
          sys.stdout)
"""


@pytest.mark.ray
def test_shutdown_stops_the_autoscaler_monitor_first_instead_of_waiting_a_second_for_it():
    # engine/finish.py: Ray's shutdown SIGTERMs its autoscaler monitor after the GCS is gone and
    # waits 1 s (Node._kill_process_impl) for a process that never exits by itself then.
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    done = subprocess.run(
        [sys.executable, "-c", SHUTDOWN], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["alive"] == [], f"Ray processes left running: {out['alive']}"
    assert out["monitor"] == -9, "the monitor was not killed by shutdown_embedded"
    assert out["waited"]["monitor"] < 0.2, out["waited"]  # Ray's own wait: 1.0 s


@pytest.mark.parametrize("logger", ["SessionJsonLogger", "SessionCSVLogger"])
def test_a_trial_restarted_in_this_session_keeps_its_local_log(tmp_path, logger):
    # tunepipe.engine.tune_logs overrides Ray's LoggerCallback._restore_from_remote, which a
    # trial with a checkpoint calls as it starts: a trial resumed after a plateau pause kept its
    # current local log, and Ray printed "Remote file not found" when storage had none yet.
    import logging
    from types import SimpleNamespace

    import pyarrow.fs as pafs
    from ray.tune.logger.logger import LoggerCallback

    from tunepipe.engine import tune_logs

    assert "_restore_from_remote" in vars(LoggerCallback)  # Ray's method, still there
    local, remote = tmp_path / "local", tmp_path / "storage"
    local.mkdir()
    remote.mkdir()
    trial = SimpleNamespace(
        checkpoint=object(),
        local_path=str(local),
        storage=SimpleNamespace(
            trial_fs_path=str(remote), storage_filesystem=pafs.LocalFileSystem()
        ),
    )
    cb = getattr(tune_logs, logger)()
    (local / "result.json").write_text('{"epoch": 1}\n{"epoch": 2}\n')  # this session's log
    (remote / "result.json").write_text('{"epoch": 1}\n')  # storage, as of the last sync
    (local / "progress.csv").write_text("epoch\n1\n2\n")  # and storage has none yet
    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    ray_logger = logging.getLogger("ray.tune.logger.logger")
    ray_logger.addHandler(handler)
    try:
        cb._restore_from_remote("result.json", trial)  # Ray's: the stale copy over the local
        cb._restore_from_remote("progress.csv", trial)  # Ray's: "Remote file not found"
    finally:
        ray_logger.removeHandler(handler)
    assert (local / "result.json").read_text() == '{"epoch": 1}\n{"epoch": 2}\n'
    assert (local / "progress.csv").read_text() == "epoch\n1\n2\n" and seen == []
    (remote / "other.json").write_text("from storage")  # no local log: Ray's restore, as before
    cb._restore_from_remote("other.json", trial)
    assert (local / "other.json").read_text() == "from storage"


def test_tune_controller_asks_a_searcher_for_one_trial_at_a_time() -> None:
    # tunepipe_schedulers/actors.py: AllSlotsAtOnce raises the pending-trial count through
    # update_max_pending_trials, because a searcher gets 1 (Ray's own generator many).
    from ray.tune.execution import tune_controller as tc
    from ray.tune.search import SearchGenerator
    from ray.tune.search.optuna import OptunaSearch

    assert callable(getattr(tc.TuneController, "update_max_pending_trials", None))
    _source_calls(tc.TuneController._maybe_update_trial_queue, "self._max_pending_trials")
    searcher = SearchGenerator(OptunaSearch(space={}, metric="loss", mode="min"))
    assert tc._get_max_pending_trials(searcher) == 1


def test_the_raylet_rpc_worker_prestarter_calls_is_shipped() -> None:
    # engine/ray_private.worker_prestarter: the warm Ray's next study finds idle workers.
    from ray._private.grpc_utils import init_grpc_channel
    from ray.core.generated import common_pb2, node_manager_pb2, node_manager_pb2_grpc

    assert callable(init_grpc_channel)
    fields = {f.name for f in node_manager_pb2.PrestartWorkersRequest.DESCRIPTOR.fields}
    assert {"language", "num_workers", "keep_alive_duration_secs", "job_id"} <= fields
    assert common_pb2.PYTHON == 0
    stub = node_manager_pb2_grpc.NodeManagerServiceStub
    assert "PrestartWorkers" in inspect.getsource(stub.__init__), "the raylet's RPC moved"
