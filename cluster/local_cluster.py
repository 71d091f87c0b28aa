"""Start, inspect and stop a local multi-node Ray cluster on 127.0.0.1 (token auth on).

    python cluster/local_cluster.py start --workers 2 --worker-cpus 1 --head-cpus 1 --dir /tmp/tp-c
    python cluster/local_cluster.py status --dir /tmp/tp-c
    python cluster/local_cluster.py kill 1 --dir /tmp/tp-c    # worker node 1 lost, as a machine
    python cluster/local_cluster.py stop --dir /tmp/tp-c      # again: says it is already stopped

`start` returns once every node is alive; the nodes keep running in the background until `stop`.
The cluster's pids and ports are in DIR/cluster.json; node logs are DIR/node<i>.log.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

try:
    import tunepipe  # noqa: F401
except ImportError:  # run from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tunepipe.engine.auth import TokenFileError
from tunepipe.engine.local_cluster import STATE_FILE, ClusterError, LocalCluster
from tunepipe.errors import TunepipeError
from tunepipe.monitoring.ray_dashboard import wire_metrics


def _start(args: argparse.Namespace) -> None:
    wire_metrics(args.grafana, args.prometheus)  # the head's dashboard inherits them
    cluster = LocalCluster(
        args.dir,
        workers=args.workers,
        head_cpus=args.head_cpus,
        worker_cpus=args.worker_cpus,
        token_path=args.token_file,
    ).start(timeout=args.timeout)
    print(f"Ray cluster with {args.workers + 1} nodes running in {cluster.dir}")
    _print_how_to_connect(cluster)


def _status(args: argparse.Namespace) -> None:
    cluster = LocalCluster.attach(args.dir)
    nodes = cluster.state.nodes
    # The node's own processes answer at once; the head's view lags a lost node by seconds.
    procs = [cluster.node_processes(i) for i in range(len(nodes))]
    states = [_node_state(node, p) for node, p in zip(nodes, procs, strict=True)]
    seen = cluster.alive_nodes()
    print(
        f"{states.count('alive')} alive of {len(nodes)} started nodes in {cluster.dir}"
        + (f" (the head counts {seen} alive)" if seen >= 0 else " (dashboard not answering)")
    )
    for i, (node, state) in enumerate(zip(nodes, states, strict=True)):
        print(
            f"  node {i} ({node.role}, {node.num_cpus} CPU): {state}, {len(procs[i])} processes, "
            f"log {node.log}"
        )
    _print_how_to_connect(cluster)


def _node_state(node, procs: list) -> str:
    if node.killed:
        return "killed"
    return "alive" if any(p.pid == node.pid for p in procs) else "dead"


def _kill(args: argparse.Namespace) -> None:
    cluster = LocalCluster.attach(args.dir)
    cluster.kill_node(args.node)
    print(f"Killed worker node {args.node} of the Ray cluster in {cluster.dir} (SIGKILL).")


def _stop(args: argparse.Namespace) -> None:
    if not (Path(args.dir) / STATE_FILE).is_file():
        print(f"No Ray cluster is running in {Path(args.dir).resolve()} (already stopped).")
        return
    cluster = LocalCluster.attach(args.dir)
    cluster.stop(timeout=args.timeout)
    print(f"Stopped the Ray cluster in {cluster.dir}; no process of it is left.")


def _print_how_to_connect(cluster: LocalCluster) -> None:
    # The token file's path only: the token itself is never printed.
    print(f"  GCS address:  {cluster.address}")
    print(f"  dashboard:    {cluster.dashboard_url}")
    print(f"  token file:   {cluster.token_path}")
    print(f"  driver env:   export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH={cluster.token_path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start a head and worker nodes, wait until all are alive")
    start.add_argument("--workers", type=int, default=2, help="worker nodes besides the head")
    start.add_argument("--worker-cpus", type=int, default=1, help="CPUs each worker offers")
    start.add_argument("--head-cpus", type=int, default=1, help="CPUs the head offers to tasks")
    start.add_argument(
        "--token-file",
        default=None,
        help="auth token file (default ~/.tunepipe/ray_auth_token, created 0600)",
    )
    start.add_argument("--timeout", type=float, default=90, help="seconds to wait for all nodes")
    for flag, env in (("--grafana", "RAY_GRAFANA_HOST"), ("--prometheus", "RAY_PROMETHEUS_HOST")):
        start.add_argument(flag, default=None, help=f"the dashboard's Metrics tab (or {env})")
    sub.add_parser("status", help="show the nodes of the cluster in --dir")
    kill = sub.add_parser("kill", help="SIGKILL every process of one worker node (a lost machine)")
    kill.add_argument("node", type=int, help="worker node index (1..workers; 0 is the head)")
    stop = sub.add_parser("stop", help="stop every process of the cluster in --dir")
    stop.add_argument(
        "--timeout", type=float, default=15, help="seconds between SIGTERM and SIGKILL"
    )
    for p in sub.choices.values():
        p.add_argument(
            "--dir",
            required=True,
            help="cluster folder (at most 36 characters: Ray puts sockets below it)",
        )
    args = parser.parse_args(argv)
    commands = {"start": _start, "status": _status, "kill": _kill, "stop": _stop}
    try:
        commands[args.command](args)
        sys.stdout.flush()
    except (ClusterError, TokenFileError, TunepipeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `status | head -1`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
