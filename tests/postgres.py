"""A throw-away PostgreSQL server for the alerts tests: its own data directory and port,
started with the tests and stopped with them, as the influxd shards are.

The server runs as the invoking user, or as ``postgres`` when that is root (PostgreSQL
refuses to run as root). The binaries come from ``PG_BINDIR``, else the newest
``/usr/lib/postgresql/<version>/bin`` (Debian's ``postgresql`` package, which
``make test`` installs). A missing server is an error, not a skip: a skipped suite
would prove nothing.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from federation.tools.localcluster import free_port


def bindir() -> Path:
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name.split(".")[0])
    )
    if not versions:
        raise RuntimeError(
            "PostgreSQL is not installed; fix: run scripts/ensure-system.sh (make test does),"
            " or set PG_BINDIR to the directory of initdb and pg_ctl"
        )
    return versions[-1]


class PostgresServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.bin = bindir()
        self.root = Path(tempfile.mkdtemp(prefix="alerts-pg-"))
        self.data = self.root / "data"
        self._as: list[str] = []
        if os.geteuid() == 0:  # the server will not run as root
            self._as = ["runuser", "-u", "postgres", "--"]
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresServer:
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "--encoding=UTF8", "--no-sync",
        )  # fmt: skip
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip
        return self

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def new_database(self) -> str:
        """A fresh, empty database of the server, as an ``ALERTS_DB`` URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        subprocess.run(
            [
                str(self.bin / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                name,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"
