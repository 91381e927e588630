from __future__ import annotations

import contextlib
import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from federation.core.settings import flags_given
from federation.router.settings import RouterSettings
from federation.tools.cli import child_commands, main, parse_args
from federation.tools.ingester import parse_settings
from federation.tools.localcluster import free_port
from federation.tools.settings import StackSettings


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "shards.yaml"
    path.write_text("shards:\n  - {name: a, url: 'http://127.0.0.1:9'}\n")
    return path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["rebalance", "--window", "soon"], "--window: 'soon' is not a length like 30m"),
        (["rebalance", "--window=-6h"], "--window: '-6h' is not a length like 30m"),
        (["rebalance", "--plan"], "shards[0].url"),
    ],
    ids=["bad-window", "look-back-window", "bad-map"],
)
def test_cli_bad_input_exits_2_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, argv: list[str], message: str
) -> None:
    config = tmp_path / "shards.yaml"
    url = "ftp://h:1" if "--plan" in argv else "http://127.0.0.1:9"
    config.write_text(f"shards:\n  - {{name: a, url: '{url}'}}\n")
    assert main(["--config", str(config), *argv]) == 2
    assert message in caplog.text


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+: \S")


def test_serve_logs_every_line_in_the_project_format_even_on_a_terminal(tmp_path: Path) -> None:
    config = tmp_path / "shards.yaml"
    config.write_text("shards:\n  - {name: a, url: 'http://127.0.0.1:9'}\n")
    lines = serve_once(config, "/health").splitlines()
    assert any("uvicorn.access" in line and "GET /health" in line for line in lines)
    assert [line for line in lines if not LOG_LINE.match(line)] == []  # no colour codes either


def serve_once(config: Path, path: str) -> str:
    """What ``federation serve`` writes to stderr, a terminal (where uvicorn's own logging
    would colour), while it answers one request."""
    port = free_port()
    terminal, stderr = pty.openpty()
    root = str(Path(__file__).parents[2])
    command = [sys.executable, "-m", "federation", "--config", str(config), "serve"]
    with subprocess.Popen(
        [*command, "--port", str(port)], stderr=stderr, env=os.environ | {"PYTHONPATH": root}
    ) as serve:
        os.close(stderr)
        try:
            wait_for(f"http://127.0.0.1:{port}{path}", timeout=30)
        finally:
            serve.terminate()
    return read_all(terminal).decode()


def wait_for(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            httpx.get(url, timeout=5)
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing answered {url} within {timeout}s")


def read_all(fd: int) -> bytes:
    chunks = []
    with contextlib.suppress(OSError):  # EIO: the other end is closed and drained
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def test_cli_serve_passes_its_settings_to_the_app_and_leaves_environ_alone(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(app=app, **options))
    before = dict(os.environ)
    env = {"FEDERATION_CONFIG": "elsewhere.yaml", "FEDERATION_SHARD_TIMEOUT": "3"}
    assert main(["--config", str(config), "serve", "--port", "9001"], env) == 0
    settings = served["app"].state.settings
    assert (settings.config_path, settings.shard_timeout, served["port"]) == (str(config), 3, 9001)
    assert dict(os.environ) == before


def test_cli_stack_passes_its_settings_on_to_the_children() -> None:
    flags = {"--config": "/etc/s.yaml", "--log-level": "debug", "--port": "9002", "--series": "7"}
    commands = child_commands(StackSettings.load({}, flags))
    ingester = parse_settings(commands["ingester"][3:], env={})
    router = RouterSettings.load({}, flags_given(parse_args(commands["router"][3:])))
    assert (ingester.config_path, ingester.log_level, ingester.ingest.series) == (
        "/etc/s.yaml",
        "DEBUG",
        7,
    )
    assert (router.config_path, router.log_level, router.port) == ("/etc/s.yaml", "DEBUG", 9002)


def test_cli_stack_checks_its_children_settings_before_starting(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    argv = ["--config", str(tmp_path / "missing.yaml"), "stack"]
    assert main(argv, {"ALERTS_SMTP_PORT": "smtp"}) == 2
    assert "ALERTS_SMTP_PORT: 'smtp'" in caplog.text
