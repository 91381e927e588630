"""The shard map: what ``shards.yaml`` holds, validated before anything starts.

Construction is separate from loading: :class:`ShardMap` checks its own invariants and
can be built in code (tests do); :func:`load_shard_map` reads and validates a file and
turns every problem into one :class:`ConfigError` naming the key and the fix.
Credentials never live in the file (:mod:`federation.core.credentials`).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from federation.core.errors import ConfigError
from federation.core.ids import SHARD_NAME_PATTERN
from federation.core.placement import Ring

NAME_PATTERN = "^" + SHARD_NAME_PATTERN + "$"
_NAME_RE = re.compile(NAME_PATTERN)


@dataclass(frozen=True)
class Shard:
    """One InfluxDB server. ``name`` is its stable identity: placement hashes the name.
    A draining shard owns no pair: it is read, and a rebalance moves its data away, so it
    can then leave the file.

    ``compress`` asks the shard for gzipped answers. Unset, it is off on loopback, where
    gzip only costs both ends CPU (one pair's 24 h, ~1.2 MB, is read in less than half
    the time without it; docs/benchmarks.md), and on elsewhere, where the link may be
    slow."""

    name: str
    url: str
    drain: bool = False
    compress: bool | None = None

    @property
    def gzip(self) -> bool:
        """Whether answers from this shard are asked for gzipped."""
        return not self.is_loopback if self.compress is None else self.compress

    @property
    def is_loopback(self) -> bool:
        host = httpx.URL(self.url).host
        return host in ("localhost", "::1") or host.startswith("127.")


@dataclass(frozen=True)
class ShardMap:
    shards: tuple[Shard, ...]
    database: str = "crypto"
    replication: int = 1
    # The tag that places lines of other measurements (and price lines without a pair
    # tag) written through the router's /write; None: their series key places them.
    placement_tag: str | None = None
    ring: Ring = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.shards:
            raise ConfigError("shards: the list is empty; fix: list at least one shard")
        names = [s.name for s in self.shards]
        for name in names:
            if not _NAME_RE.match(name):
                raise ConfigError(
                    f"shards[].name: {name!r} is not a valid name; "
                    f"fix: use lowercase letters, digits, '-' or '_' ({NAME_PATTERN})"
                )
        _reject_duplicates("name", names)
        _reject_duplicates("url", [s.url.rstrip("/") for s in self.shards])
        owning = [s.name for s in self.shards if not s.drain]
        if not 1 <= self.replication <= len(owning):
            raise ConfigError(
                f"replication: {self.replication} is not between 1 and the number of shards "
                f"that are not draining ({len(owning)}); fix: lower replication or add shards"
            )
        object.__setattr__(self, "ring", Ring(owning))

    def by_name(self, name: str) -> Shard:
        for shard in self.shards:
            if shard.name == name:
                return shard
        raise KeyError(name)

    def owners(self, pair: str) -> list[str]:
        """Names of the shards that hold ``pair``, best first."""
        return self.ring.owners(pair, self.replication)

    @property
    def version(self) -> str:
        """A short digest of the map in force, to tell two maps apart in logs and /shards."""
        text = f"{self.database}|{self.replication}|" + "|".join(
            f"{s.name}={s.url}{' drain' if s.drain else ''}"
            + ("" if s.compress is None else f" compress={s.compress}")
            for s in self.shards
        )
        if self.placement_tag is not None:  # only then, so older maps keep their digest
            text += f"|placement_tag={self.placement_tag}"
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _reject_duplicates(key: str, values: list[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ConfigError(
                f"shards[].{key}: {value!r} appears twice; fix: give every shard its own {key}"
            )
        seen.add(value)


def _without_userinfo(value: str) -> str:
    """``value`` with anything between ``//`` and ``@`` hidden: errors are logged and
    shown by ``/shards`` (the last reload error), and that part may be a password."""
    return re.sub(r"//[^/?#]*@", "//…@", value)


class _ShardEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(pattern=NAME_PATTERN)
    url: str
    drain: bool = False
    compress: bool | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"{_without_userinfo(value)!r} is not a URL ({exc})") from None
        if url.userinfo:
            # Not quoted: the value holds a secret, and errors are logged and shown.
            raise ValueError(
                "the URL carries credentials (user:password@), which shards.yaml must not"
                " hold (/shards shows every URL); fix: remove them and set"
                " INFLUX_USERNAME_<SHARD> and INFLUX_PASSWORD_<SHARD> (or INFLUX_TOKEN_<SHARD>)"
                " in the environment"
            )
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"{value!r} is not an http(s) URL; fix: write http://host:port")
        if url.query or url.fragment:
            raise ValueError(f"{value!r} has a query or fragment; fix: remove it")
        return value.rstrip("/")


class _ShardsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    database: str = Field(default="crypto", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    replication: int = Field(default=1, ge=1)
    placement_tag: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    shards: list[_ShardEntry] = Field(min_length=1)


_FIXES = {
    "extra_forbidden": "unknown key; fix: remove it or correct its spelling (allowed: {allowed})",
    "missing": "required key is missing; fix: add it",
    "string_type": "must be a string; fix: quote the value",
    "int_type": "must be a whole number; fix: write e.g. 1",
    "bool_type": "must be true or false; fix: write true or false, unquoted",
    "list_type": "must be a list; fix: write one '- name: ..., url: ...' entry per shard",
    "model_type": "must be a mapping of keys; fix: see the example in docs/operations.md",
    "string_pattern_mismatch": "does not match {pattern}; fix: use lowercase letters, digits,"
    " '-' or '_'",
    "greater_than_equal": "must be at least {ge}; fix: raise it",
    "too_short": "must not be empty; fix: list at least one shard",
}
_ALLOWED = {
    "root": "database, replication, placement_tag, shards",
    "shard": "name, url, drain, compress",
}


def _format_error(source: str, error: Mapping[str, Any]) -> str:
    loc = error["loc"]
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    ctx = dict(error.get("ctx") or {})
    kind = error["type"]
    if kind == "value_error":
        message = str(ctx.get("error", error["msg"]))
    elif kind in _FIXES:
        allowed = _ALLOWED["shard" if "shards" in loc[:-1] else "root"]
        message = _FIXES[kind].format(allowed=allowed, **ctx)
    else:
        message = error["msg"]
    return f"{source}: {key or '(top level)'}: {message}"


def parse_shard_map(data: Any, source: str = "shards.yaml") -> ShardMap:
    """Validate already-parsed YAML and build the map; raises :class:`ConfigError`."""
    if data is None:
        raise ConfigError(f"{source}: the file is empty; fix: see docs/operations.md")
    try:
        parsed = _ShardsFile.model_validate(data)
    except ValidationError as exc:
        lines = [_format_error(source, e) for e in exc.errors()]
        raise ConfigError("\n".join(lines)) from None
    try:
        return ShardMap(
            shards=tuple(Shard(s.name, s.url, s.drain, s.compress) for s in parsed.shards),
            database=parsed.database,
            replication=parsed.replication,
            placement_tag=parsed.placement_tag,
        )
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_shard_map(path: str | os.PathLike[str]) -> ShardMap:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read it ({exc.strerror}); fix: pass --config with the path"
            " of your shards.yaml"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_shard_map(data, source=str(path))
