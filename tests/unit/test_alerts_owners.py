"""Who may manage which subscriptions (API keys, owners, admins, loopback) and the
subscription limits, on the router in-process over a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from alerts.settings import AlertSettings, database_url
from federation.core.apikeys import ApiKeys
from federation.core.errors import ConfigError
from federation.core.shardmap import Shard, ShardMap
from federation.router.app import create_app
from federation.router.settings import RouterSettings
from tests.asgi import served
from tests.fakeshard import connect_to

HOOK = "https://93.184.216.34/hook"
KEYS = {
    "alice": "alice-key-0123456789",
    "bob": "bob-key-0123456789ab",
    "ops": "ops-key-0123456789abc",
}
REMOTE = ("203.0.113.7", 40000)

Router = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def router(tmp_path: Path) -> Router:
    @asynccontextmanager
    async def open_router(
        keys: dict[str, str] | None = None,
        admins: tuple[str, ...] = (),
        client: tuple[str, int] = ("127.0.0.1", 50000),
        prices_need_key: bool = False,
        **limits: Any,
    ) -> AsyncIterator[httpx.AsyncClient]:
        alerts = AlertSettings(db_url=database_url(str(tmp_path / "a.sqlite3")), **limits)
        api = ApiKeys(keys=keys or {}, admins=admins, prices_need_key=prices_need_key)
        settings = RouterSettings(alerts=alerts, api=api)
        shard_map = ShardMap((Shard("shard-a", "http://shard-a:8086"),))
        async with served(create_app(shard_map, settings, connect_to({})), client) as http:
            yield http

    return open_router


def as_(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


async def subscribe(http: httpx.AsyncClient, name: str, **body: Any) -> dict[str, Any]:
    response = await http.post("/alerts", json={"webhook": HOOK, **body}, headers=as_(name))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_owner_sees_only_its_own_subscriptions(router: Router) -> None:
    async with router(KEYS, admins=("ops",)) as http:
        mine, theirs = await subscribe(http, "alice"), await subscribe(http, "bob")
        listed = (await http.get("/alerts", headers=as_("alice"))).json()["subscriptions"]
        assert [(s["id"], s["owner"]) for s in listed] == [(mine["id"], "alice")]
        assert (await http.get(f"/alerts/{theirs['id']}", headers=as_("alice"))).status_code == 404


@pytest.mark.parametrize("path", ["", "/events"], ids=["subscription", "events"])
async def test_another_keys_subscription_is_not_found(router: Router, path: str) -> None:
    async with router(KEYS) as http:
        theirs = await subscribe(http, "bob")
        response = await http.get(f"/alerts/{theirs['id']}{path}", headers=as_("alice"))
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


async def test_owner_cannot_delete_another_keys_subscription(router: Router) -> None:
    async with router(KEYS) as http:
        theirs = await subscribe(http, "bob")
        refused = await http.delete(f"/alerts/{theirs['id']}", headers=as_("alice"))
        still = await http.get(f"/alerts/{theirs['id']}", headers=as_("bob"))
    assert (refused.status_code, still.status_code) == (404, 200)


async def test_admin_lists_and_deletes_every_subscription(router: Router) -> None:
    async with router(KEYS, admins=("ops",)) as http:
        made = [await subscribe(http, "alice"), await subscribe(http, "bob")]
        listed = (await http.get("/alerts", headers=as_("ops"))).json()["subscriptions"]
        assert {s["id"] for s in listed} == {s["id"] for s in made}
        assert {s["webhook"] for s in listed} == {HOOK}
        assert (
            await http.delete(f"/alerts/{made[1]['id']}", headers=as_("ops"))
        ).status_code == 204
        assert (await http.get(f"/alerts/{made[1]['id']}", headers=as_("bob"))).status_code == 404


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-key-at-all-000"},
        {"Authorization": f"Basic {KEYS['alice']}"},
    ],
    ids=["no-key", "wrong-key", "not-bearer"],
)
async def test_missing_or_wrong_key_is_401_asking_for_bearer(
    router: Router, headers: dict[str, str]
) -> None:
    async with router(KEYS) as http:
        response = await http.get("/alerts", headers=headers)
    assert (response.status_code, response.json()["code"]) == (401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_key_never_appears_in_logs(router: Router, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    async with router(KEYS, admins=("ops",)) as http:
        await subscribe(http, "alice")
        await http.get("/alerts", headers={"Authorization": "Bearer wrong-key-0123456789"})
    assert not [key for key in KEYS.values() if key in caplog.text]


@pytest.mark.parametrize(
    ("client", "status"),
    [(("127.0.0.1", 50000), 201), (("::1", 50000), 201), (REMOTE, 403)],
    ids=["loopback-v4", "loopback-v6", "remote"],
)
async def test_without_keys_only_loopback_manages_alerts(
    router: Router, client: tuple[str, int], status: int
) -> None:
    async with router(client=client) as http:
        response = await http.post("/alerts", json={"webhook": HOOK})
    assert response.status_code == status


async def test_prices_stay_public_unless_a_key_is_required(router: Router) -> None:
    async with router(KEYS, client=REMOTE) as http:
        public = await http.get("/pairs")
    async with router(KEYS, client=REMOTE, prices_need_key=True) as http:
        refused, health = await http.get("/pairs"), await http.get("/health")
        allowed = await http.get("/pairs", headers=as_("bob"))
    assert (public.status_code, refused.status_code) == (200, 401)
    assert (health.status_code, allowed.status_code) == (200, 200)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FEDERATION_API_KEYS": "alice"}, "entry 1 is not name:key"),
        ({"FEDERATION_API_KEYS": "alice:short"}, "shorter than 16"),
        (
            {"FEDERATION_API_KEYS": f"alice:{KEYS['alice']}", "FEDERATION_ADMINS": "bob"},
            "bob not in",
        ),
        ({"FEDERATION_PRICES_NEED_KEY": "true"}, "no key is configured"),
    ],
    ids=["no-colon", "short-key", "unknown-admin", "prices-without-keys"],
)
def test_bad_key_settings_are_refused_without_showing_keys(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        RouterSettings.load(env)
    assert KEYS["alice"] not in str(refused.value)


def test_keys_are_left_out_of_the_settings_repr() -> None:
    settings = RouterSettings.load({"FEDERATION_API_KEYS": f"alice:{KEYS['alice']}"})
    assert settings.api.keys == {"alice": KEYS["alice"]}
    assert KEYS["alice"] not in repr(settings)


# Limits


@pytest.mark.parametrize(
    ("limits", "setting"),
    [
        ({"max_per_key": 2}, "ALERTS_MAX_PER_KEY"),
        ({"max_subscriptions": 2}, "ALERTS_MAX_SUBSCRIPTIONS"),
    ],
    ids=["per-key", "total"],
)
async def test_subscription_past_a_limit_is_409_naming_it(
    router: Router, limits: dict[str, int], setting: str
) -> None:
    async with router(KEYS, **limits) as http:
        await subscribe(http, "alice")
        await subscribe(http, "alice" if "max_per_key" in limits else "bob")
        response = await http.post("/alerts", json={"webhook": HOOK}, headers=as_("alice"))
    body = response.json()
    assert (response.status_code, body["code"], body["limit"], body["max"]) == (
        409, "limit_reached", setting, 2,
    )  # fmt: skip


async def test_per_key_limit_leaves_other_keys_free(router: Router) -> None:
    async with router(KEYS, max_per_key=1) as http:
        await subscribe(http, "alice")
        await subscribe(http, "bob")


@pytest.mark.parametrize(
    ("body", "parameter", "setting"),
    [
        ({"window": "2h"}, "window", "ALERTS_WINDOWS"),
        ({"factor": 1.0000001}, "factor", "ALERTS_MIN_FACTOR"),
        ({"factor": 1.49}, "factor", "ALERTS_MIN_FACTOR"),
    ],
    ids=["window-not-allowed", "factor-near-one", "factor-below-minimum"],
)
async def test_subscription_outside_the_limits_is_400_naming_them(
    router: Router, body: dict[str, Any], parameter: str, setting: str
) -> None:
    async with router(KEYS) as http:
        response = await http.post("/alerts", json={"webhook": HOOK, **body}, headers=as_("bob"))
    found = response.json()
    assert (response.status_code, found["parameter"], found["limit"]) == (400, parameter, setting)


async def test_window_of_the_allowed_set_is_accepted(router: Router) -> None:
    async with router(KEYS, windows=(900, 7200)) as http:
        made = await subscribe(http, "alice", window="2h", factor=1.5)
    assert made["window_seconds"] == 7200
