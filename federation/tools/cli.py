"""``python -m federation``: the router, the local shards, or the whole local stack.

federation serve     the query router (uvicorn)
federation cluster   one influxd per loopback shard of shards.yaml, until Ctrl-C
federation stack     local shards + ingester + router, until Ctrl-C (``make run``)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import httpx
import uvicorn
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from federation.core.durations import Duration
from federation.core.errors import ConfigError, FederationError
from federation.core.influx import clients_for
from federation.core.logs import setup_logging, uvicorn_log_config
from federation.core.shardmap import load_shard_map
from federation.tools.localcluster import LocalCluster, die_with_parent
from federation.tools.rebalance import Move, Rebalancer, format_plan

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
    rebalance = commands.add_parser(
        "rebalance", help="move every misplaced pair to its owners, verified, resumable"
    )
    rebalance.add_argument(
        "--plan",
        action="store_true",
        help="print which pairs move where, with point counts; change nothing",
    )
    rebalance.add_argument(
        "--window",
        default="6h",
        help="copy each pair in time windows this long, e.g. 30m, 6h (default: %(default)s)",
    )
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
        "federation.router.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        log_level=args.log_level.lower(),
        log_config=uvicorn_log_config(args.log_level),
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


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:  # an editor may be replacing the file right now
        return None


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
    with LocalCluster(shard_map, root=args.data_dir) as local:
        children = {
            name: subprocess.Popen(cmd, preexec_fn=die_with_parent)
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
        config = Path(args.config)
        seen = _mtime(config)
        try:
            while not stop.requested:
                if _mtime(config) != seen:  # the router and ingester reload it too
                    seen = _mtime(config)
                    with contextlib.suppress(FederationError):  # they log what is wrong
                        started = local.ensure(load_shard_map(config))
                        if started:
                            log.info("started local shards %s for the new map", started)
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


async def _rebalance(args: argparse.Namespace) -> int:
    shard_map = load_shard_map(args.config)
    try:
        window = Duration.parse("-" + args.window.lstrip("-"))
    except ValueError:
        raise ConfigError(
            f"--window: {args.window!r} is not a length like 30m, 6h or 1d "
            "(a whole number, then one of s, m, h, d, w)"
        ) from None
    async with httpx.AsyncClient() as http:
        clients = clients_for(shard_map, http, timeout=120.0)
        rebalancer = Rebalancer(shard_map, clients, window_ns=window.seconds * 1_000_000_000)
        moves = await rebalancer.plan()
        print(format_plan(moves, shard_map))
        if args.plan or not moves:
            return 0
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        ) as progress:
            pairs = progress.add_task("pairs", total=len(moves))
            points = progress.add_task("points", total=sum(m.points for m in moves))

            def advance(move: Move) -> None:
                progress.advance(pairs)
                progress.advance(points, move.points)

            report = await rebalancer.run(moves, progress=advance)
        print(
            f"moved {len(report.moved)} pairs ({report.points:,} points), verified and "
            f"deleted from their old shards; {len(report.failed)} failed"
        )
        for where, why in report.failed.items():
            print(f"  {where}: {why}")
        return 1 if report.failed else 0


def rebalance(args: argparse.Namespace) -> int:
    return asyncio.run(_rebalance(args))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level)
    try:
        command = {"serve": serve, "cluster": cluster, "stack": stack, "rebalance": rebalance}
        return command[args.command](args)
    except FederationError as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
