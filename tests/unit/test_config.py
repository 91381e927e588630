from __future__ import annotations

from pathlib import Path

import pytest

from federation.core.errors import ConfigError
from federation.core.shardmap import (
    Shard,
    ShardMap,
    load_shard_map,
    parse_shard_map,
)

GOOD = {
    "database": "crypto",
    "replication": 1,
    "shards": [
        {"name": "shard-a", "url": "http://127.0.0.1:18086"},
        {"name": "shard-b", "url": "http://127.0.0.1:18087"},
    ],
}


def with_changes(**changes: object) -> dict[str, object]:
    return {**GOOD, **changes}


def test_checked_in_shards_yaml_is_valid_with_three_loopback_shards() -> None:
    shard_map = load_shard_map(Path(__file__).parents[2] / "shards.yaml")
    assert len(shard_map.shards) >= 3
    assert all(s.is_loopback for s in shard_map.shards)


def test_parse_good_file_builds_map() -> None:
    shard_map = parse_shard_map(GOOD)
    assert [s.name for s in shard_map.shards] == ["shard-a", "shard-b"]
    assert (shard_map.database, shard_map.replication) == ("crypto", 1)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (with_changes(replicas=2), r"replicas: unknown key.*allowed: database, replication"),
        (
            with_changes(shards=[{"name": "a", "url": "http://h:1", "port": 2}]),
            r"shards\[0\]\.port: unknown key.*allowed: name, url",
        ),
        (with_changes(replication="2"), r"replication: must be a whole number"),
        (with_changes(placement_tag="a tag"), r"placement_tag: does not match"),
        (with_changes(placement_tag=3), r"placement_tag: must be a string"),
        (with_changes(replication=0), r"replication: must be at least 1"),
        (with_changes(replication=3), r"replication: 3 is not between 1 and the number of shards"),
        (with_changes(shards=[]), r"shards: must not be empty"),
        (with_changes(shards=[{"url": "http://h:1"}]), r"shards\[0\]\.name: required key"),
        (with_changes(shards=[{"name": "A B", "url": "http://h:1"}]), r"shards\[0\]\.name: does"),
        (with_changes(shards=[{"name": "a.b", "url": "http://h:1"}]), r"shards\[0\]\.name: does"),
        (with_changes(shards=[{"name": "a", "url": "ftp://h:1"}]), r"shards\[0\]\.url: .*http"),
        (
            with_changes(
                shards=[{"name": "a", "url": "http://h:1"}, {"name": "a", "url": "http://h:2"}]
            ),
            r"shards\[\]\.name: 'a' appears twice",
        ),
        (
            with_changes(
                shards=[{"name": "a", "url": "http://h:1"}, {"name": "b", "url": "http://h:1/"}]
            ),
            r"shards\[\]\.url: 'http://h:1' appears twice",
        ),
        (with_changes(database="bad name"), r"database: does not match"),
        (
            with_changes(shards=[{"name": "a", "url": "http://h:1", "drain": "yes"}]),
            r"shards\[0\]\.drain: must be true or false",
        ),
        (
            with_changes(shards=[{"name": "a", "url": "http://h:1", "drain": True}]),
            r"replication: 1 is not between 1 and the number of shards that are not draining",
        ),
        ([1, 2], r"\(top level\): must be a mapping"),
        (None, r"the file is empty"),
    ],
    ids=[
        "unknown-key",
        "unknown-shard-key",
        "replication-string",
        "placement-tag-pattern",
        "placement-tag-not-string",
        "replication-zero",
        "replication-above-shards",
        "no-shards",
        "missing-name",
        "bad-name",
        "dot-in-name",
        "bad-scheme",
        "duplicate-name",
        "duplicate-url",
        "bad-database",
        "drain-not-bool",
        "all-draining",
        "not-a-mapping",
        "empty",
    ],
)
def test_parse_bad_file_names_key_and_fix(data: object, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as info:
        parse_shard_map(data)
    assert "fix" in str(info.value) or "empty" in str(info.value)


def test_load_missing_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--config"):
        load_shard_map(tmp_path / "nope.yaml")


def test_load_invalid_yaml_names_file(tmp_path: Path) -> None:
    path = tmp_path / "shards.yaml"
    path.write_text("shards: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_shard_map(path)


def test_parse_placement_tag_kept_and_in_the_version() -> None:
    shard_map = parse_shard_map(with_changes(placement_tag="host"))
    assert shard_map.placement_tag == "host"
    assert shard_map.version != parse_shard_map(GOOD).version


def test_map_version_changes_with_shards() -> None:
    one = ShardMap((Shard("a", "http://h:1"),))
    two = ShardMap((Shard("a", "http://h:1"), Shard("b", "http://h:2")))
    assert one.version != two.version
    assert one.version == ShardMap((Shard("a", "http://h:1"),)).version


def test_draining_shard_owns_no_pair() -> None:
    shards = (Shard("a", "http://h:1"), Shard("b", "http://h:2", drain=True))
    shard_map = ShardMap(shards)
    assert {shard_map.owners(f"pair{i}")[0] for i in range(200)} == {"a"}


@pytest.mark.parametrize(
    "url",
    ["http://admin:s3cret-pw@h:8086", "http://admin@h:8086", "https://:s3cret-pw@h"],
    ids=["user-and-password", "user-only", "password-only"],
)
def test_credentials_in_a_shard_url_are_refused_with_the_fix_unquoted(url: str) -> None:
    with pytest.raises(
        ConfigError, match=r"shards\[0\]\.url: .*credentials.*INFLUX_PASSWORD_"
    ) as e:
        parse_shard_map(with_changes(shards=[{"name": "a", "url": url}]))
    assert "s3cret-pw" not in str(e.value)
    assert "admin" not in str(e.value)


def test_malformed_url_with_credentials_is_told_without_them() -> None:
    with pytest.raises(ConfigError, match=r"'http://…@h:port' is not a URL") as e:
        parse_shard_map(
            with_changes(shards=[{"name": "a", "url": "http://admin:s3cret-pw@h:port"}])
        )
    assert "s3cret-pw" not in str(e.value)


@pytest.mark.parametrize(
    ("url", "compress", "gzip"),
    [
        ("http://127.0.0.1:8086", None, False),
        ("http://localhost:8086", None, False),
        ("http://influx.example:8086", None, True),
        ("http://127.0.0.1:8086", True, True),
        ("http://influx.example:8086", False, False),
    ],
    ids=["loopback", "localhost", "remote", "loopback-asked", "remote-refused"],
)
def test_shard_asks_for_gzip_only_off_loopback_unless_told(
    url: str, compress: bool | None, gzip: bool
) -> None:
    entry = {"name": "a", "url": url} | ({} if compress is None else {"compress": compress})
    assert parse_shard_map(with_changes(shards=[entry])).shards[0].gzip is gzip


def test_compress_that_is_not_a_boolean_names_key_and_fix() -> None:
    data = with_changes(shards=[{"name": "a", "url": "http://h:1", "compress": "no"}])
    with pytest.raises(ConfigError, match=r"shards\[0\]\.compress: must be true or false"):
        parse_shard_map(data)
