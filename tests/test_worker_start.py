"""An embedded Ray's first trials run in the workers Ray prestarted, torch already imported.

Each fresh worker process costs about 2.5 s here (Python, Ray, torch) before its first epoch;
tunepipe has the raylet prestart and preload them (session.PRELOAD_MODULES) and lets Tune's trial
actors take them (session.trial_actors_on_prestarted_workers). The study runs in a subprocess:
it needs a Ray of its own, started fresh, which the shared test session's Ray is not.
"""

from __future__ import annotations

import pytest

from tests.conftest import fresh_process

pytestmark = pytest.mark.ray


SCRIPT = r"""
import json, sys, time
from pathlib import Path
import psutil
from tests.conftest import study_dict
from tests.test_ray_studies import worker_pids
from tunepipe.engine.runner import run_study
from tunepipe.engine.session import init_ray
from tunepipe.study import parse_study

# As `tunepipe run` starts it: with the study's folder (the cwd) on the workers' path, so the run
# below finds an embedded Ray that already has its code (not a foreign live session).
init_ray(None, num_cpus=2, dashboard=False, extra_pythonpath=[str(Path.cwd().resolve())])
me = psutil.Process()

def idle():
    found = set()
    for p in me.children(recursive=True):
        try:
            if "ray::IDLE" in " ".join(p.cmdline()):
                found.add(p.pid)
        except psutil.Error:
            pass
    return found

deadline = time.monotonic() + 60
while len(idle()) < 2 and time.monotonic() < deadline:
    time.sleep(0.2)
prestarted = idle()
study = parse_study(study_dict(name="w", num_samples=2, playbook={"sanity": False}))
out = run_study(study, storage=sys.argv[1], progress=False)
pids = worker_pids(Path(out.run_dir))
print(json.dumps({"prestarted": sorted(prestarted), "trial_pids": sorted(pids)}))
"""


def test_first_trials_run_in_prestarted_workers(tmp_path):
    _, seen = fresh_process(SCRIPT, str(tmp_path))
    assert len(seen["prestarted"]) >= 2, seen
    assert seen["trial_pids"] and set(seen["trial_pids"]) <= set(seen["prestarted"]), seen


def test_tune_defaults_are_dropped_only_inside_and_only_when_embedded(monkeypatch):
    from ray.tune.execution import class_cache

    from tunepipe.engine import session

    before = dict(class_cache.DEFAULT_ENV_VARS)
    assert before  # Ray 2.60 sets PL_DISABLE_FORK there; if it moved, this code does nothing
    monkeypatch.setattr(session, "_live_pythonpath", None)  # no earlier study's live session
    monkeypatch.setattr(session, "_embedded", False)
    with session.trial_actors_on_prestarted_workers():
        assert class_cache.DEFAULT_ENV_VARS == before  # a cluster: Tune's behaviour
    monkeypatch.setattr(session, "_embedded", True)
    with pytest.raises(RuntimeError), session.trial_actors_on_prestarted_workers():
        assert class_cache.DEFAULT_ENV_VARS == {}
        raise RuntimeError("the study failed")
    assert class_cache.DEFAULT_ENV_VARS == before
