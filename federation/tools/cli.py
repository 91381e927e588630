"""``python -m federation``: the router, the local shards, or the whole local stack.

federation serve       the query router (uvicorn)
federation cluster     one influxd per loopback shard of shards.yaml, until Ctrl-C
federation stack       local shards + ingester + router, until Ctrl-C (``make run``)
federation rebalance   move every misplaced pair to its owners (--plan: only say what)

Each command builds its settings once, from its flags and the environment
(docs/operations.md lists them), and passes them to what it runs.
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
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import TypeVar

import uvicorn
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from federation.core.errors import FederationError
from federation.core.influx import clients_for, http_for_shards
from federation.core.logs import setup_logging, uvicorn_log_config
from federation.core.settings import ProcessSettings, add_flags, flags_given
from federation.core.shardmap import load_shard_map
from federation.router.settings import RouterSettings
from federation.tools.localcluster import LocalCluster, die_with_parent
from federation.tools.rebalance import Move, Rebalancer, format_plan
from federation.tools.settings import (
    STACK_FLAGS,
    ClusterSettings,
    RebalanceSettings,
    StackSettings,
)

log = logging.getLogger("federation")
S = TypeVar("S", bound=ProcessSettings)
# Flags of every command, given before it: python -m federation --config x.yaml serve
COMMON = ("--config", "--log-level")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="federation", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_flags(parser, ProcessSettings)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the query router")
    add_flags(serve, RouterSettings, skip=COMMON)
    cluster = commands.add_parser("cluster", help="run the local shards until Ctrl-C")
    add_flags(cluster, ClusterSettings, skip=COMMON)
    stack = commands.add_parser("stack", help="run local shards, ingester and router")
    add_flags(stack, StackSettings, only=STACK_FLAGS, grouped=False)
    rebalance = commands.add_parser(
        "rebalance", help="move every misplaced pair to its owners, verified, resumable"
    )
    add_flags(rebalance, RebalanceSettings, skip=COMMON)
    return parser.parse_args(argv)


def serve(settings: RouterSettings) -> int:
    from federation.router.app import create_app  # the app's imports only for this command

    app = create_app(settings=settings)  # reads the map: a bad one fails before uvicorn starts
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=uvicorn_log_config(settings.log_level),
    )
    return 0


class _Stop:
    def __init__(self) -> None:
        self.requested = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._set)

    def _set(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


def cluster(settings: ClusterSettings) -> int:
    stop = _Stop()
    shard_map = load_shard_map(settings.config_path)
    with LocalCluster(shard_map, root=settings.data_dir, influxd=settings.influxd) as local:
        log.info("local shards up: %s; Ctrl-C stops them", ", ".join(local.shards))
        while not stop.requested:
            time.sleep(0.2)
    return 0


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:  # an editor may be replacing the file right now
        return None


def child_commands(settings: StackSettings) -> dict[str, list[str]]:
    """The ingester's and the router's command lines: the settings given to the stack
    that are theirs, passed on as flags (their environment is the stack's own)."""
    common = ["--config", settings.config_path, "--log-level", settings.log_level]
    ingest = settings.ingester.ingest
    return {
        "ingester": [
            sys.executable,
            "-m",
            "ingest",
            *common,
            "--series",
            str(ingest.series),
            "--interval",
            repr(ingest.interval_s),
        ],
        "router": [
            sys.executable,
            "-m",
            "federation",
            *common,
            "serve",
            "--host",
            settings.router.host,
            "--port",
            str(settings.router.port),
        ],
    }


def _spawn(
    command: list[str], ready: Path | None, env: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    if ready is not None:
        command = [*command, "--ready-file", str(ready)]
    return subprocess.Popen(command, env=dict(env), preexec_fn=die_with_parent)


def stack(settings: StackSettings, env: Mapping[str, str]) -> int:
    """Local shards, then the ingester and, once its backfill is written, the router, as
    child processes, each given ``env`` (the environment the stack's settings were
    checked against)."""
    stop = _Stop()
    shard_map = load_shard_map(settings.config_path)
    commands = child_commands(settings)
    host, port = settings.router.host, settings.router.port
    ready = Path(settings.data_dir) / "ingester.ready"
    with LocalCluster(shard_map, root=settings.data_dir, influxd=settings.influxd) as local:
        ready.unlink(missing_ok=True)
        children = {"ingester": _spawn(commands["ingester"], ready, env)}
        log.info("local shards up; the router starts once the ingester's backfill is written")
        exit_code = 0
        config = Path(settings.config_path)
        seen = _mtime(config)
        try:
            while not stop.requested:
                if "router" not in children and ready.exists():
                    # Only now: the router's first answer then has the whole window.
                    children["router"] = _spawn(commands["router"], None, env)
                    log.info(
                        "backfill written; router on http://%s:%d, try: curl %s:%d/btcusd;"
                        " Ctrl-C stops everything",
                        host,
                        port,
                        host,
                        port,
                    )
                if _mtime(config) != seen:  # the router and ingester reload it too
                    seen = _mtime(config)
                    with contextlib.suppress(FederationError):  # they log what is wrong
                        started, stopped = local.ensure(load_shard_map(config))
                        if started:
                            log.info("started local shards %s for the new map", started)
                        if stopped:
                            log.info(
                                "stopped local shards %s: they left the map (their data "
                                "stays under %s)",
                                stopped,
                                settings.data_dir,
                            )
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


async def _rebalance(settings: RebalanceSettings) -> int:
    shard_map = load_shard_map(settings.config_path)
    window_ns = settings.window.seconds * 1_000_000_000
    async with http_for_shards() as http:
        clients = clients_for(shard_map, http, credentials=settings.credentials, timeout=120.0)
        rebalancer = Rebalancer(shard_map, clients, window_ns=window_ns)
        moves = await rebalancer.plan()
        print(format_plan(moves, shard_map))
        if settings.plan or not moves:
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


def rebalance(settings: RebalanceSettings) -> int:
    return asyncio.run(_rebalance(settings))


def _started(settings: S) -> S:
    setup_logging(settings.log_level)
    return settings


def run(command: str, env: Mapping[str, str], flags: Mapping[str, object]) -> int:
    """Build the command's settings once, from ``env`` and its flags, and run it."""
    if command == "serve":
        return serve(_started(RouterSettings.load(env, flags)))
    if command == "cluster":
        return cluster(_started(ClusterSettings.load(env, flags)))
    if command == "stack":
        return stack(_started(StackSettings.load(env, flags)), env)
    return rebalance(_started(RebalanceSettings.load(env, flags)))


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """``env``: the process's own environment when None, read here once."""
    args = parse_args(argv)
    try:
        return run(args.command, dict(os.environ) if env is None else env, flags_given(args))
    except FederationError as exc:
        setup_logging("INFO")  # does nothing when the settings have set it up
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
