"""Start, inspect and stop a local multi-node Ray cluster on 127.0.0.1 (token auth on).

    python cluster/local_cluster.py start --workers 2 --worker-cpus 1 --head-cpus 1 --dir /tmp/tp-c
    python cluster/local_cluster.py status --dir /tmp/tp-c
    python cluster/local_cluster.py stop --dir /tmp/tp-c

`start` returns once every node is alive; the nodes keep running in the background until `stop`.
The cluster's pids and ports are in DIR/cluster.json; node logs are DIR/node<i>.log.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import tunepipe  # noqa: F401
except ImportError:  # run from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tunepipe.engine.auth import TokenFileError
from tunepipe.engine.local_cluster import ClusterError, LocalCluster
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
    alive = cluster.alive_nodes()
    nodes = cluster.state.nodes
    print(
        f"{max(alive, 0)} alive of {len(nodes)} started nodes in {cluster.dir}"
        + (" (dashboard not answering)" if alive < 0 else "")
    )
    for i, node in enumerate(nodes):
        procs = cluster.node_processes(i)
        print(
            f"  node {i} ({node.role}, {node.num_cpus} CPU): {len(procs)} processes, log {node.log}"
        )
    _print_how_to_connect(cluster)


def _stop(args: argparse.Namespace) -> None:
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
    try:
        {"start": _start, "status": _status, "stop": _stop}[args.command](args)
    except (ClusterError, TokenFileError, TunepipeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
