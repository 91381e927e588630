"""``python -m federation``: the router, the local shards, or the whole local stack.

federation serve     the query router (uvicorn)
federation cluster   one influxd per loopback shard of shards.yaml, until Ctrl-C
federation stack     local shards + ingester + router, until Ctrl-C (``make run``)
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from types import FrameType

import uvicorn

from federation.config import load_shard_map
from federation.exceptions import FederationError
from federation.localcluster import LocalCluster, _die_with_parent
from federation.logs import setup_logging

log = logging.getLogger("federation")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="federation", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config",
        default=os.environ.get("FEDERATION_CONFIG", "shards.yaml"),
        help="shard map (default: %(default)s)",
    )
    parser.add_argument("--log-level", default="INFO")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the query router")
    cluster = commands.add_parser("cluster", help="run the local shards until Ctrl-C")
    stack = commands.add_parser("stack", help="run local shards, ingester and router")
    for sub in (serve, stack):
        sub.add_argument("--host", default="127.0.0.1")
        sub.add_argument("--port", type=int, default=8001)
    for sub in (cluster, stack):
        sub.add_argument(
            "--data-dir",
            default=".cluster",
            help="where local shards keep their files (default: %(default)s)",
        )
    stack.add_argument("--series", type=int, default=500, help="simulated series (default: 500)")
    stack.add_argument("--interval", type=float, default=60.0, help="tick seconds (default: 60)")
    return parser.parse_args(argv)


def serve(args: argparse.Namespace) -> int:
    os.environ["FEDERATION_CONFIG"] = args.config
    load_shard_map(args.config)  # fail before uvicorn starts, with the key and the fix
    uvicorn.run(
        "federation.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        log_level=args.log_level.lower(),
    )
    return 0


class _Stop:
    def __init__(self) -> None:
        self.requested = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._set)

    def _set(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


def cluster(args: argparse.Namespace) -> int:
    stop = _Stop()
    with LocalCluster(load_shard_map(args.config), root=args.data_dir) as local:
        log.info("local shards up: %s; Ctrl-C stops them", ", ".join(local.shards))
        while not stop.requested:
            time.sleep(0.2)
    return 0


def stack(args: argparse.Namespace) -> int:
    stop = _Stop()
    shard_map = load_shard_map(args.config)
    common = ["--config", args.config, "--log-level", args.log_level]
    commands = {
        "ingester": [
            sys.executable,
            "-m",
            "ingest",
            *common,
            "--series",
            str(args.series),
            "--interval",
            str(args.interval),
        ],
        "router": [
            sys.executable,
            "-m",
            "federation",
            *common,
            "serve",
            "--host",
            args.host,
            "--port",
            str(args.port),
        ],
    }
    with LocalCluster(shard_map, root=args.data_dir):
        children = {
            name: subprocess.Popen(cmd, preexec_fn=_die_with_parent)
            for name, cmd in commands.items()
        }
        log.info(
            "router on http://%s:%d, try: curl %s:%d/btcusd; Ctrl-C stops everything",
            args.host,
            args.port,
            args.host,
            args.port,
        )
        exit_code = 0
        try:
            while not stop.requested:
                for name, child in children.items():
                    if child.poll() is not None:
                        log.error("%s exited with %d: stopping the stack", name, child.returncode)
                        exit_code = child.returncode or 1
                        stop.requested = True
                time.sleep(0.2)
        finally:
            for child in children.values():
                if child.poll() is None:
                    child.terminate()
            for name, child in children.items():
                try:
                    child.wait(15)
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop in 15s: killing it", name)
                    child.kill()
                    child.wait()
            log.info("stopping local shards")
    return exit_code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level)
    try:
        return {"serve": serve, "cluster": cluster, "stack": stack}[args.command](args)
    except FederationError as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
