"""`tunepipe run`'s forked painter (report/painter.py): the sanity checks and the test evaluation of
a cold study run there, at a lower priority where nothing waits, and the command never imports
torch. The study runs in a fresh process, as the command does: a fork is only made before torch,
Ray or a second thread exist, which this test session's process is long past."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, fresh_process

pytestmark = pytest.mark.ray


SCRIPT = r"""
import json, os, sys, threading
from pathlib import Path
from tests.conftest import study_dict
from tunepipe.report.painter import painting
from tunepipe.engine.runner import run_study
from tunepipe.study import parse_study

def niceness():
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

study = parse_study(study_dict(
    name="f", num_samples=2,
    data={"source": "digits", "label": "label", "val_fraction": 0.2, "test_fraction": 0.1},
    search_space={"lr": {"type": "loguniform", "low": 1e-3, "high": 1e-1}},
))
with painting() as painter:
    assert painter is not None and painter.torch_work, "no forked painter"
    seen = {
        "painter_pid": painter.pid(),
        "background": painter.run(niceness, background=True)(),
        "foreground": painter.run(niceness)(),
        "here": niceness(),
    }
    out = run_study(study, storage=sys.argv[1], progress=False, num_cpus=2)
    seen["torch_here"] = "torch" in sys.modules
seen["summary"] = out.summary
seen["run_dir"] = str(out.run_dir)
print(json.dumps(seen))
"""


def test_a_cold_run_does_its_torch_work_in_the_forked_painter(tmp_path):
    proc, seen = fresh_process(SCRIPT, str(tmp_path))
    assert "sanity checks and test evaluation: in a helper process" in proc.stderr
    assert seen["torch_here"] is False  # the checks and the test ran in the painter
    assert seen["background"] == seen["here"] + 10 and seen["foreground"] == seen["here"]
    run_dir = Path(seen["run_dir"])
    sanity = json.loads((run_dir / "sanity.json").read_text())
    assert sanity["passed"] and (run_dir / "sanity_lr_range.png").stat().st_size > 0
    # The painter's test evaluation is the one this process computes from the same best model.
    from tunepipe.data import load_data
    from tunepipe.engine.outputs import evaluate_test
    from tunepipe.storage import locate_run_dir
    from tunepipe.study import load_study

    study = load_study(run_dir / "study.yaml")
    data = load_data(study.data, study.task, study.seed)
    here = evaluate_test(locate_run_dir(str(run_dir)), data)
    assert seen["summary"]["test"] == pytest.approx(here, rel=1e-6)


LEAVER = r"""
import sys, time
from tunepipe.report.painter import painting

with painting(enabled=True) as painter:
    print(painter.pid(), painter.torch_work, flush=True)
    time.sleep(120)
"""


def test_the_painter_leaves_with_a_killed_command():
    import os
    import signal
    import time

    import psutil

    proc = subprocess.Popen(
        [sys.executable, "-c", LEAVER],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        pid, forked = proc.stdout.readline().split()
        assert forked == "True"  # a fresh process: the painter is forked
        os.kill(proc.pid, signal.SIGKILL)  # no `finally`, no pool shutdown in the command
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if psutil.Process(int(pid)).status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.1)
        else:
            os.kill(int(pid), signal.SIGKILL)  # stop exactly what this test started
            pytest.fail(f"the painter (pid {pid}) outlived its killed command")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
