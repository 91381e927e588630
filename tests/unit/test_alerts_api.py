"""The subscriptions API on the router, in-process, over a real SQLite file."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from alerts.settings import AlertSettings, database_url
from federation.core.shardmap import Shard, ShardMap
from federation.router.app import create_app
from federation.router.settings import RouterSettings
from tests.asgi import served
from tests.fakeshard import connect_to

HOOK = "https://93.184.216.34/hook"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    alerts = AlertSettings(
        db_url=database_url(str(tmp_path / "alerts.sqlite3")),
        allow_networks=(ipaddress.ip_network("127.0.0.0/8"),),
    )
    shard_map = ShardMap((Shard("shard-a", "http://shard-a:8086"),))
    app = create_app(shard_map, RouterSettings(alerts=alerts), connect_to({}))
    async with served(app) as http:
        yield http


async def test_subscribe_returns_defaults_and_secret(client: httpx.AsyncClient) -> None:
    response = await client.post("/alerts", json={"webhook": HOOK})
    body = response.json()
    assert response.status_code == 201
    assert (body["factor"], body["window"], body["metric"], body["pair"]) == (3.0, "1h", None, None)
    assert response.headers["location"] == f"/alerts/{body['id']}"
    assert len(body["secret"]) > 30


async def test_subscription_is_listed_fetched_and_deleted(client: httpx.AsyncClient) -> None:
    body = {"email": "Ops@Example.com", "pair": "BTCUSD", "metric": "price", "factor": 1.5}
    sub = (await client.post("/alerts", json={**body, "window": "15m"})).json()
    assert (sub["email"], sub["pair"], sub["window_seconds"]) == ("Ops@example.com", "btcusd", 900)
    listed = (await client.get("/alerts")).json()["subscriptions"]
    assert [s["id"] for s in listed] == [sub["id"]]
    assert "secret" not in listed[0]
    assert (await client.get(f"/alerts/{sub['id']}")).json()["factor"] == 1.5
    assert (await client.delete(f"/alerts/{sub['id']}")).status_code == 204
    assert (await client.get(f"/alerts/{sub['id']}")).status_code == 404


async def test_subscription_dotted_pair_accepted_lowercased(client: httpx.AsyncClient) -> None:
    response = await client.post("/alerts", json={"webhook": HOOK, "pair": "IMX.2WETH"})
    assert (response.status_code, response.json()["pair"]) == (201, "imx.2weth")


async def test_events_of_new_subscription_are_empty(client: httpx.AsyncClient) -> None:
    sub = (await client.post("/alerts", json={"webhook": "http://127.0.0.1:9/hook"})).json()
    response = await client.get(f"/alerts/{sub['id']}/events?limit=10")
    assert response.json() == {"subscription_id": sub["id"], "events": []}


@pytest.mark.parametrize(
    ("body", "parameter"),
    [
        ({"webhook": "ftp://example.com/x"}, "webhook"),
        ({"webhook": "http://10.0.0.1/hook"}, "webhook"),
        ({"webhook": "http://169.254.169.254/latest"}, "webhook"),
        ({"webhook": "http://[::1]:8080/"}, "webhook"),
        ({"webhook": "not a url"}, "webhook"),
        ({"email": "not-an-email"}, "email"),
        ({}, "webhook"),
        ({"webhook": None, "email": "ops@example.com"}, "webhook"),
        ({"webhook": HOOK, "email": "ops@example.com"}, "webhook"),
        ({"webhook": HOOK, "factor": 1}, "factor"),
        ({"webhook": HOOK, "factor": 0.5}, "factor"),
        ({"webhook": HOOK, "factor": 1e9}, "factor"),
        ({"webhook": HOOK, "factor": "3"}, "factor"),
        ({"webhook": HOOK, "window": "90s"}, "window"),
        ({"webhook": HOOK, "window": "2d"}, "window"),
        ({"webhook": HOOK, "window": "an hour"}, "window"),
        ({"webhook": HOOK, "window": "-1h"}, "window"),
        ({"webhook": HOOK, "window": "1.5h"}, "window"),
        ({"webhook": HOOK, "metric": "rank"}, "metric"),
        ({"webhook": HOOK, "pair": "btc'usd"}, "pair"),
        ({"webhook": HOOK, "exchange": "a b"}, "exchange"),
        ({"webhook": HOOK, "colour": "red"}, "colour"),
        ([HOOK], "body"),
    ],
    ids=[
        "scheme",
        "private",
        "link-local",
        "loopback-v6",
        "not-url",
        "email",
        "neither",
        "webhook-null",
        "both",
        "factor-one",
        "factor-low",
        "factor-high",
        "factor-text",
        "window-seconds",
        "window-long",
        "window-text",
        "window-look-back",
        "window-fraction",
        "metric",
        "pair",
        "exchange",
        "unknown-field",
        "not-object",
    ],
)
async def test_bad_subscription_is_400_naming_the_field(
    client: httpx.AsyncClient, body: object, parameter: str
) -> None:
    response = await client.post("/alerts", json=body)
    assert response.status_code == 400
    assert response.json()["parameter"] == parameter


async def test_body_that_is_not_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/alerts", content=b"{webhook")
    assert (response.status_code, response.json()["parameter"]) == (400, "body")


@pytest.mark.parametrize(
    ("path", "status", "parameter"),
    [
        ("/alerts/0123456789abcdef0123456789abcdef", 404, "id"),
        ("/alerts/nope", 400, "id"),
        ("/alerts/0123456789abcdef0123456789abcdef/events", 404, "id"),
        ("/alerts?limit=5", 400, "limit"),
    ],
    ids=["unknown", "malformed", "events-unknown", "unknown-parameter"],
)
async def test_bad_lookup_names_the_parameter(
    client: httpx.AsyncClient, path: str, status: int, parameter: str
) -> None:
    response = await client.get(path)
    assert (response.status_code, response.json()["parameter"]) == (status, parameter)


@pytest.mark.parametrize(
    "limit",
    ["0", "501", "ten", "\u2081", "5&limit=6"],
    ids=["zero", "over", "word", "subscript", "repeated"],
)
async def test_events_limit_is_checked(client: httpx.AsyncClient, limit: str) -> None:
    sub = (await client.post("/alerts", json={"webhook": HOOK})).json()
    response = await client.get(f"/alerts/{sub['id']}/events?limit={limit}")
    assert (response.status_code, response.json()["parameter"]) == (400, "limit")


async def test_openapi_lists_alert_endpoints(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert set(paths["/alerts"]) == {"get", "post"}
    assert set(paths["/alerts/{id}"]) == {"get", "delete"}
