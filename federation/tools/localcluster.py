"""Local shards: one ``influxd`` process per loopback shard of the map.

Each process gets its own data, meta and WAL directories under ``root`` and its own
ports, all through InfluxDB's environment variables, so nothing of the machine's own
InfluxDB configuration (or a server someone started by hand) is used. Start waits for
``/ping`` and creates the database; stop terminates the processes and waits for them.
Shards on other hosts are left to their operators.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from federation.core.errors import ConfigError, FederationError
from federation.core.influxql import create_database
from federation.core.shardmap import Shard, ShardMap

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "influxd was not found; fix: on Debian/Ubuntu run `apt-get install -y influxdb` "
    "(or `make install`, which does it), elsewhere install InfluxDB 1.x and put influxd on PATH "
    "or set INFLUXD=/path/to/influxd"
)


def find_influxd(configured: str | None = None) -> str:
    """``configured`` (the INFLUXD setting), else influxd on PATH, else /usr/bin/influxd."""
    candidate = configured or shutil.which("influxd") or "/usr/bin/influxd"
    if not Path(candidate).is_file():
        raise FederationError(INSTALL_HINT)
    return candidate


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    # Ask Linux to SIGTERM the child when this process dies, even by SIGKILL, so a
    # crashed supervisor never leaves influxd behind.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class LocalShard:
    shard: Shard
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / "influxd.log"

    def environment(self) -> dict[str, str]:
        url = httpx.URL(self.shard.url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("INFLUXDB_")}
        env.update(
            INFLUXDB_META_DIR=str(self.directory / "meta"),
            INFLUXDB_DATA_DIR=str(self.directory / "data"),
            INFLUXDB_DATA_WAL_DIR=str(self.directory / "wal"),
            INFLUXDB_HTTP_BIND_ADDRESS=f"{url.host}:{url.port or 8086}",
            INFLUXDB_BIND_ADDRESS=f"127.0.0.1:{free_port()}",
            INFLUXDB_REPORTING_DISABLED="true",
            # No _internal database and quiet logs: these shards hold prices, not telemetry.
            INFLUXDB_MONITOR_STORE_ENABLED="false",
            INFLUXDB_HTTP_LOG_ENABLED="false",
            INFLUXDB_DATA_QUERY_LOG_ENABLED="false",
        )
        return env


class LocalCluster:
    def __init__(
        self,
        shard_map: ShardMap,
        root: str | os.PathLike[str] = ".cluster",
        *,
        influxd: str | None = None,
    ) -> None:
        self.shard_map = shard_map
        self.root = Path(root)
        self.influxd = influxd
        self.shards = {
            s.name: LocalShard(s, self.root / s.name) for s in shard_map.shards if s.is_loopback
        }
        for shard in shard_map.shards:
            if not shard.is_loopback:
                log.info("shard %s (%s) is remote: not started here", shard.name, shard.url)

    def start(self, timeout: float = 60.0) -> None:
        influxd = find_influxd(self.influxd)
        for name in self.shards:
            self._refuse_foreign_server(self.shards[name].shard)
        try:
            for name in self.shards:
                self._spawn(influxd, self.shards[name])
            for name in self.shards:
                self._wait_ready(self.shards[name], timeout)
        except BaseException:
            self.stop()
            raise

    def ensure(self, shard_map: ShardMap, timeout: float = 60.0) -> tuple[list[str], list[str]]:
        """Run the loopback shards of a new map: start those not running yet, stop those
        that left it (their files stay, so putting the entry back brings the data back).
        The names started and stopped."""
        started = []
        for shard in shard_map.shards:
            if shard.is_loopback and shard.name not in self.shards:
                self._refuse_foreign_server(shard)
                local = self.shards[shard.name] = LocalShard(shard, self.root / shard.name)
                self._spawn(find_influxd(self.influxd), local)
                self._wait_ready(local, timeout)
                started.append(shard.name)
        kept = {s.name for s in shard_map.shards}
        stopped = [name for name in self.shards if name not in kept]
        for name in stopped:
            self.stop_shard(name)
            del self.shards[name]
        self.shard_map = shard_map
        return started, stopped

    def start_shard(self, name: str, timeout: float = 60.0) -> None:
        local = self.shards[name]
        self._spawn(find_influxd(self.influxd), local)
        self._wait_ready(local, timeout)

    def stop_shard(self, name: str, timeout: float = 20.0) -> None:
        local = self.shards[name]
        process, local.process = local.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("influxd of %s did not stop in %.0fs: killing it", name, timeout)
            process.kill()
            process.wait()

    def stop(self) -> None:
        for name in self.shards:
            self.stop_shard(name)

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @staticmethod
    def _refuse_foreign_server(shard: Shard) -> None:
        try:
            httpx.get(shard.url + "/ping", timeout=0.5)
        except httpx.HTTPError:
            return
        raise ConfigError(
            f"shard {shard.name}: something already answers at {shard.url}; fix: stop it, "
            "or give the shard a free port in shards.yaml"
        )

    def _spawn(self, influxd: str, local: LocalShard) -> None:
        local.directory.mkdir(parents=True, exist_ok=True)
        with local.log_path.open("ab") as log_file:
            local.process = subprocess.Popen(
                [influxd, "run", "-config", "/dev/null"],
                env=local.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C goes to the supervisor, which stops us in order
                preexec_fn=die_with_parent,
            )
        log.info(
            "started influxd for %s at %s (pid %d)",
            local.shard.name,
            local.shard.url,
            local.process.pid,
        )

    def _wait_ready(self, local: LocalShard, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = local.shard.url
        while time.monotonic() < deadline:
            assert local.process is not None
            if local.process.poll() is not None:
                tail = local.log_path.read_text(errors="replace").splitlines()[-5:]
                raise FederationError(
                    f"influxd for {local.shard.name} exited with {local.process.returncode}; "
                    f"last log lines ({local.log_path}):\n" + "\n".join(tail)
                )
            try:
                if httpx.get(url + "/ping", timeout=1.0).status_code == 204:
                    query = create_database(self.shard_map.database).text
                    httpx.post(url + "/query", data={"q": query}, timeout=10.0).raise_for_status()
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise FederationError(f"influxd for {local.shard.name} did not answer /ping in {timeout}s")
