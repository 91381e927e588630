"""The error texts docs/operations.md quotes are the ones the program prints: each
example is produced here from the input it describes and found, whole, in the doc."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from federation.core.errors import FederationError
from federation.core.shardmap import load_shard_map
from federation.router.settings import RouterSettings
from federation.tools.settings import IngesterSettings

OPERATIONS = Path(__file__).parents[2] / "docs" / "operations.md"
SHARD = "  - {name: shard-%s, url: 'http://127.0.0.1:1808%d'}\n"
MAPS = {
    "unknown-key": "shards:\n" + SHARD % ("a", 6) + SHARD.replace("}", ", port: 1}") % ("b", 7),
    "replication": "replication: 4\nshards:\n"
    + "".join(SHARD % (c, i) for i, c in enumerate("abc")),
    "same-name": "shards:\n" + SHARD % ("a", 6) + SHARD % ("a", 7),
}
# Lines of the doc that quote an error: a file or a setting, a colon, what is wrong.
QUOTED = re.compile(r"^(shards\.yaml|--[a-z-]+|[A-Z][A-Z_]+): .*; fix: .*$", re.MULTILINE)


def map_error(text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    Path("shards.yaml").write_text(text)
    with pytest.raises(FederationError) as raised:
        load_shard_map("shards.yaml")
    return str(raised.value)


def setting_errors() -> list[str]:
    errors = []
    for load in (
        lambda: RouterSettings.load({"FEDERATION_SHARD_TIMEOUT": "abc"}, {}),
        lambda: IngesterSettings.load({}, {"--spool-max-age": "1.5h"}),
    ):
        with pytest.raises(FederationError) as raised:
            load()
        errors.append(str(raised.value))
    return errors


def test_operations_doc_quotes_the_errors_the_program_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    printed = [map_error(text, tmp_path, monkeypatch) for text in MAPS.values()]
    printed += setting_errors()
    quoted = [line.group(0) for line in QUOTED.finditer(OPERATIONS.read_text())]
    assert sorted(quoted) == sorted(printed)
