"""API keys and who holds them: ``FEDERATION_API_KEYS`` (comma-separated ``name:key``)
and ``FEDERATION_ADMINS`` (comma-separated names).

A request's key names its holder (a :class:`Principal`); each alert subscription belongs
to the name that created it. Keys are compared in constant time (``hmac.compare_digest``
against every configured key, so the time taken does not tell which one came close) and
never appear in a repr, a log line or an error.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from pydantic import BeforeValidator, model_validator

from federation.core.ids import ID_RULE, is_id
from federation.core.settings import SettingsModel, setting

LOCAL = "local"
"""The owner of subscriptions made from loopback while no key is configured."""


@dataclass(frozen=True)
class Principal:
    """Who a request acts for: a key's name, and whether it may see everything."""

    name: str
    admin: bool = False

    def owns(self, owner: str) -> bool:
        return self.admin or self.name == owner


def parse_keys(text: str) -> dict[str, str]:
    """``name:key,name:key`` as {name: key}; ValueError naming the entry (never the key)."""
    keys: dict[str, str] = {}
    for position, part in enumerate(text.split(","), 1):
        entry = part.strip()
        if not entry:
            continue
        name, sep, key = entry.partition(":")
        name = name.strip()
        if not sep or not is_id(name):
            raise ValueError(f"entry {position} is not name:key with a name of {ID_RULE}")
        if len(key) < 16:
            raise ValueError(f"the key of {name!r} is shorter than 16 characters")
        if name in keys:
            raise ValueError(f"{name!r} is listed twice")
        keys[name] = key
    return keys


def parse_names(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))


def _keys(value: object) -> object:
    return parse_keys(value) if isinstance(value, str) else value


def _names(value: object) -> object:
    return parse_names(value) if isinstance(value, str) else value


class ApiKeys(SettingsModel):
    """The keys of the router's API, a section of its settings."""

    keys: Annotated[Mapping[str, str], BeforeValidator(_keys)] = setting(
        {},
        env="FEDERATION_API_KEYS",
        secret=True,
        default_text="none: alert management from loopback only",
        example="alice:$(openssl rand -hex 24)",
        help="comma-separated name:key entries (keys of 16 characters or more); a request"
        " carries 'Authorization: Bearer <key>'",
    )
    admins: Annotated[tuple[str, ...], BeforeValidator(_names)] = setting(
        (),
        env="FEDERATION_ADMINS",
        example="alice",
        help="comma-separated key names that see and delete every subscription",
    )
    prices_need_key: bool = setting(
        False,
        env="FEDERATION_PRICES_NEED_KEY",
        help="require a key for the price API too (every route but /health and /ready)",
    )

    @model_validator(mode="after")
    def _admins_are_keys(self) -> ApiKeys:
        if self.prices_need_key and not self.keys:
            raise ValueError(
                "FEDERATION_PRICES_NEED_KEY is on but no key is configured;"
                " fix: set FEDERATION_API_KEYS"
            )
        unknown = [name for name in self.admins if name not in self.keys]
        if unknown:
            raise ValueError(
                f"FEDERATION_ADMINS: {', '.join(unknown)} not in FEDERATION_API_KEYS;"
                " fix: list only names that have a key"
            )
        return self

    @property
    def configured(self) -> bool:
        return bool(self.keys)

    def holder(self, presented: str) -> Principal | None:
        """Whose key ``presented`` is (None: nobody's). Every key is compared, in
        constant time, whatever matches."""
        found: str | None = None
        given = presented.encode()
        for name, key in self.keys.items():
            if hmac.compare_digest(given, key.encode()):
                found = name
        return None if found is None else Principal(found, found in self.admins)


def bearer(headers: Mapping[str, str]) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header (None: no such header)."""
    scheme, _, key = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return key.strip() or None
