"""Alerts settings, the webhook signature and the network guard."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading

import pytest

from alerts.errors import TargetRefused
from alerts.netguard import NetworkGuard, Resolver
from alerts.settings import AlertSettings, database_url, parse_networks
from alerts.signing import signature, verify
from federation.core.errors import ConfigError
from federation.router.settings import RouterSettings
from federation.tools.settings import IngesterSettings

NOW = 1_700_000_000


def test_signature_verifies_with_the_secret() -> None:
    header = signature("s3cret", b'{"a":1}', NOW)
    assert verify("s3cret", b'{"a":1}', header, now=NOW + 10)


@pytest.mark.parametrize(
    ("secret", "body", "now"),
    [("other", b'{"a":1}', NOW), ("s3cret", b'{"a":2}', NOW), ("s3cret", b'{"a":1}', NOW + 301)],
    ids=["wrong-secret", "changed-body", "too-old"],
)
def test_signature_refuses_forgeries_and_replays(secret: str, body: bytes, now: int) -> None:
    assert not verify(secret, body, signature("s3cret", b'{"a":1}', NOW), now=now)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.1",
        "172.16.5.5",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
    ],
)
def test_guard_refuses_non_public_addresses(address: str) -> None:
    with pytest.raises(TargetRefused):
        NetworkGuard().check(ipaddress.ip_address(address))


def test_guard_permits_public_and_allowed_addresses() -> None:
    guard = NetworkGuard(parse_networks("127.0.0.1/32, 10.0.0.0/8"))
    for address in ("93.184.216.34", "127.0.0.1", "10.9.9.9"):
        guard.check(ipaddress.ip_address(address))


async def test_guard_resolves_names_before_judging() -> None:
    with pytest.raises(TargetRefused, match="loopback"):
        await NetworkGuard().resolve("localhost", 80)


def answering(answer: list[str] | None) -> Resolver:
    """A resolver giving ``answer`` for every name; None: one that never answers."""

    async def resolve(host: str, port: int) -> list[str]:
        if answer is None:
            await asyncio.sleep(60)
        return answer or []

    return resolve


async def test_guard_gives_every_address_of_a_public_name_once() -> None:
    v6 = "2606:2800:220:1:248:1893:25c8:1946"
    guard = NetworkGuard(resolver=answering(["93.184.216.34", v6, "93.184.216.34"]))
    assert await guard.resolve("hooks.example.test", 443) == ["93.184.216.34", v6]


async def unknown_name(host: str, port: int) -> list[str]:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.mark.parametrize(
    ("resolver", "error"),
    [
        (answering(["93.184.216.34", "10.0.0.1"]), "^hooks.example.test is not an allowed"),
        (answering([]), "does not resolve"),
        (unknown_name, "^hooks.example.test does not resolve$"),
        (answering(None), "does not resolve"),
    ],
    ids=["one-private-address", "no-address", "unknown-name", "resolver-hangs"],
)
async def test_guard_refuses_a_name_it_cannot_vouch_for(resolver: Resolver, error: str) -> None:
    guard = NetworkGuard(resolver=resolver, resolve_timeout_s=0.05)
    with pytest.raises(TargetRefused, match=error):
        await asyncio.wait_for(guard.resolve("hooks.example.test", 443), 5)


@pytest.mark.parametrize(
    ("env", "var"),
    [
        ({"ALERTS_ALLOW_NETWORKS": "10.0.0.0/33"}, "ALERTS_ALLOW_NETWORKS"),
        ({"ALERTS_SMTP_PORT": "smtp"}, "ALERTS_SMTP_PORT"),
        ({"ALERTS_DELIVERY_TIMEOUT": "0"}, "ALERTS_DELIVERY_TIMEOUT"),
        ({"ALERTS_SMTP_STARTTLS": "maybe"}, "ALERTS_SMTP_STARTTLS"),
        ({"ALERTS_DB": "mysql://db/alerts"}, "ALERTS_DB"),
    ],
    ids=["network", "port", "timeout", "starttls", "db-scheme"],
)
def test_bad_setting_names_the_variable(env: dict[str, str], var: str) -> None:
    with pytest.raises(ConfigError, match=f"^{var}: .*; fix: set e.g. {var}="):
        AlertSettings.load(env)


@pytest.mark.parametrize("process", [RouterSettings, IngesterSettings], ids=["router", "ingester"])
@pytest.mark.parametrize(
    ("env", "flags"),
    [({"FEDERATION_CONFIG": "/etc/crypto/shards.yaml"}, {}), ({}, {"--config": "/etc/crypto/x"})],
    ids=["variable", "flag"],
)
def test_database_defaults_beside_the_shard_map(
    process: type[RouterSettings | IngesterSettings],
    env: dict[str, str],
    flags: dict[str, object],
) -> None:
    settings = process.load(env, flags)
    assert settings.alerts.db_url == "sqlite+aiosqlite:////etc/crypto/.alerts.sqlite3"


def test_database_given_is_not_moved_beside_the_map() -> None:
    env = {"FEDERATION_CONFIG": "/etc/crypto/shards.yaml", "ALERTS_DB": "postgres://u@db/a"}
    assert RouterSettings.load(env).alerts.db_url == "postgresql+asyncpg://u@db/a"


@pytest.mark.parametrize(
    ("text", "starttls"), [("auto", None), ("TRUE", True), ("false", False)], ids=str
)
def test_starttls_reads_auto_true_or_false(text: str, starttls: bool | None) -> None:
    assert AlertSettings.load({"ALERTS_SMTP_STARTTLS": text}).smtp_starttls is starttls


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("postgresql://u@db/alerts", "postgresql+asyncpg://u@db/alerts"),
        ("postgres://u@db/alerts", "postgresql+asyncpg://u@db/alerts"),
        ("sqlite:////var/alerts.db", "sqlite+aiosqlite:////var/alerts.db"),
    ],
    ids=["postgresql", "postgres", "sqlite-url"],
)
def test_database_urls_get_async_drivers(given: str, url: str) -> None:
    assert database_url(given) == url


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b::5db8:d822",  # NAT64 of a public address: where it leads is not ours to judge
        "64:ff9b:1::a00:1",  # local-use NAT64
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "2002:5db8:d822::1",  # 6to4 of a public address
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "::a9fe:a9fe",  # IPv4-compatible 169.254.169.254
        "::ffff:a9fe:a9fe",  # IPv4-mapped 169.254.169.254
        "::ffff:10.0.0.1",
    ],
)
def test_guard_refuses_translated_and_embedded_addresses(address: str) -> None:
    with pytest.raises(TargetRefused):
        NetworkGuard().check(ipaddress.ip_address(address))


def test_guard_judges_a_mapped_public_address_by_its_ipv4() -> None:
    NetworkGuard().check(ipaddress.ip_address("::ffff:93.184.216.34"))


async def test_refusal_names_the_host_never_the_address_it_resolved_to() -> None:
    guard = NetworkGuard(resolver=answering(["10.20.30.40"]))
    with pytest.raises(TargetRefused) as refused:
        await guard.resolve("intranet.example.test", 443)
    assert "intranet.example.test" in str(refused.value)
    assert "10.20.30.40" not in str(refused.value)


async def test_system_resolver_runs_on_its_own_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []

    def lookup(host: str, port: int, **kwargs: object) -> list[tuple[object, ...]]:
        threads.append(threading.current_thread().name)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    assert await NetworkGuard().resolve("hooks.example.test", 443) == ["93.184.216.34"]
    assert threads[0].startswith("webhook-dns")


async def test_slow_webhook_dns_leaves_the_default_executor_free(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()
    real = socket.getaddrinfo

    def lookup(host: str, *args: object, **kwargs: object) -> object:
        if host.endswith(".slow.test"):
            release.wait(10)
            raise socket.gaierror(socket.EAI_NONAME, "slow")
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    guard = NetworkGuard(resolve_timeout_s=0.05)
    stuck = [guard.resolve(f"h{i}.slow.test", 443) for i in range(32)]
    results = await asyncio.gather(*stuck, return_exceptions=True)
    try:  # every webhook look-up timed out; a shard-style look-up still answers at once
        loop = asyncio.get_running_loop()
        found = await asyncio.wait_for(loop.getaddrinfo("127.0.0.1", 80), 2)
    finally:
        release.set()
    assert all(isinstance(r, TargetRefused) for r in results)
    assert found
