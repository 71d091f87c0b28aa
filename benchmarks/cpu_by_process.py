"""Where a command's CPU goes, process by process: run it, sample every process's CPU time.

    unshare -rn sh -c 'ip link set lo up && python benchmarks/cpu_by_process.py -- \
        python -m tunepipe run --fresh study.yaml'

On a 2-core machine a cold study is CPU-bound from Ray's start on, so its wall follows the CPU
seconds every process spends: the command, Ray's own processes, the trial workers. This samples
/proc every 0.2 s while the command runs and prints, per role, the CPU seconds used from the
first sample that saw a process (a process's first 0.2 s can be missed) and when it first
appeared. It counts every process on the machine, so run nothing else meanwhile. Linux only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import defaultdict

ROLES = (  # (text in the command line, role), first match wins
    ("DashboardAgent", "Ray dashboard agent"),  # renamed ray::DashboardAgent once started
    ("default_worker.py", "Ray trial worker"),
    ("setup_worker.py", "Ray trial worker"),
    ("ray::", "Ray trial worker"),  # a worker renames itself ray::IDLE, ray::ImplicitFunc...
    ("gcs_server", "Ray GCS"),
    ("raylet", "Ray raylet"),
    ("dashboard/agent.py", "Ray dashboard agent"),
    ("dashboard", "Ray dashboard"),
    ("runtime_env/agent", "Ray runtime-env agent"),
    ("log_monitor", "Ray log monitor"),
    ("autoscaler", "Ray monitor"),
    ("multiprocessing", "spawned helper (painter)"),
)


def _cpu_seconds(pid: str, tick: int) -> tuple[str, float] | None:
    try:
        stat = open(f"/proc/{pid}/stat").read()
        cmd = open(f"/proc/{pid}/cmdline").read().replace("\0", " ").strip()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return cmd, (int(fields[11]) + int(fields[12])) / tick


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = ap.parse_args()
    command = [c for c in args.command if c != "--"] if args.command else []
    if not command:
        ap.error("give the command to measure after --")
    tick = os.sysconf("SC_CLK_TCK")
    before = {p for p in os.listdir("/proc") if p.isdigit()}
    t0 = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: dict[str, list] = {}  # pid -> [command line, first seen (s), first cpu, last cpu]
    while True:
        now = time.monotonic() - t0
        for pid in (p for p in os.listdir("/proc") if p.isdigit()):
            got = _cpu_seconds(pid, tick)
            if got is None:
                continue
            if pid not in seen:
                seen[pid] = [got[0], now, got[1], got[1]]
            else:
                seen[pid][3] = got[1]
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    wall = time.monotonic() - t0
    by_role: dict[str, list[float]] = defaultdict(lambda: [0.0, 0, float("inf")])
    me = str(os.getpid())
    for pid, (cmd, first_seen, first, last) in seen.items():
        used = last - (first if pid in before else 0.0)
        if pid == me or used <= 0.01:
            continue
        role = "the command" if pid == str(proc.pid) else "other"
        role = next((r for text, r in ROLES if text in cmd), role)
        by_role[role][0] += used
        by_role[role][1] += 1
        by_role[role][2] = min(by_role[role][2], first_seen)
    print(f"{' '.join(command)}: exit {proc.returncode}, wall {wall:.1f} s")
    print(f"{'role':28} {'CPU s':>7} {'procs':>6} {'first seen s':>13}")
    for role, (used, count, first_seen) in sorted(by_role.items(), key=lambda kv: -kv[1][0]):
        print(f"{role:28} {used:7.2f} {count:6d} {first_seen:13.1f}")
    print(f"{'total':28} {sum(v[0] for v in by_role.values()):7.2f}")
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
