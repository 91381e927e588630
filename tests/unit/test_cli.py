from __future__ import annotations

from pathlib import Path

import pytest

from federation.tools.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["rebalance", "--window", "soon"], "--window: 'soon' is not a length like 30m"),
        (["rebalance", "--plan"], "shards[0].url"),
    ],
    ids=["bad-window", "bad-map"],
)
def test_cli_bad_input_exits_2_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, argv: list[str], message: str
) -> None:
    config = tmp_path / "shards.yaml"
    url = "ftp://h:1" if "--plan" in argv else "http://127.0.0.1:9"
    config.write_text(f"shards:\n  - {{name: a, url: '{url}'}}\n")
    assert main(["--config", str(config), *argv]) == 2
    assert message in caplog.text
