from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from federation.core.settings import flags_given
from federation.router.settings import RouterSettings
from federation.tools.cli import child_commands, main, parse_args
from federation.tools.ingester import parse_settings
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
