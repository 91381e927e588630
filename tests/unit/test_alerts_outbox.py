"""Delivery faults a real receiver cannot show on demand (5xx, a hang, a redirect),
injected with httpx.MockTransport; where a webhook goes (the checked address, the name in
Host, a name rebound to a private address) on a real HTTP server on 127.0.0.1, with names
resolved from a table. Further real receivers are in tests/integration."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from alerts import webhook
from alerts.api import parse_webhook
from alerts.netguard import NetworkGuard, Resolver
from alerts.outbox import Outbox, backoff_s
from alerts.service import AlertService
from alerts.settings import AlertSettings, database_url
from alerts.store import AlertStore, Claimed
from alerts.types import AlertPayload, NewSubscription, Subscription
from tests.alerts import payload
from tests.clock import FakeClock

PUBLIC = "https://93.184.216.34/hook"  # a public address: the guard lets it through
NAME = "hooks.example.test"  # resolves only through dns() below, never for real
NOW = 1_700_000_000_000
Handler = Callable[[httpx.Request], object]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AlertStore]:
    opened = AlertStore(database_url(str(tmp_path / "alerts.sqlite3")))
    yield opened
    await opened.close()


def accepted_on(request: Request) -> Response:
    """204, naming the address the server accepted the connection on."""
    local = request.environ["werkzeug.socket"].getsockname()[0]
    return Response(status=204, headers={"X-Accepted-On": local})


@pytest.fixture
def receiver() -> Iterator[HTTPServer]:
    """A real webhook receiver listening on 127.0.0.1 only."""
    with HTTPServer(host="127.0.0.1") as server:
        server.expect_request("/hook", method="POST").respond_with_handler(accepted_on)
        yield server


def dns(records: dict[str, list[str]]) -> Resolver:
    """A resolver answering from ``records``, which a test changes as DNS would change."""

    async def resolve(host: str, port: int) -> list[str]:
        if host not in records:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(records[host])

    return resolve


def settings(**changes: float) -> AlertSettings:
    defaults = {"delivery_timeout_s": 0.2, "retry_base_s": 2.0, "retry_max_s": 60.0}
    return AlertSettings(**{**defaults, **changes})  # type: ignore[arg-type]


def alert(sub: Subscription) -> AlertPayload:
    return payload(sub.id, time_ms=NOW)


async def attempt(
    store: AlertStore,
    url: str,
    http: httpx.AsyncClient,
    guard: NetworkGuard | None = None,
    later_ms: int = 0,
    **changes: float,
) -> tuple[Subscription, Outbox]:
    """A subscription to ``url`` with one alert in the outbox, and one attempt at it,
    ``later_ms`` after the alert was raised."""
    sub = await store.create_subscription(NewSubscription(webhook=url, email=None), NOW)
    await store.record([alert(sub)], [], [], NOW)
    outbox = Outbox(store, settings(**changes), http, guard=guard, clock=FakeClock(NOW + later_ms))
    assert await outbox.poll() == 1
    await outbox.drain()
    return sub, outbox


async def deliver_once(
    store: AlertStore,
    handler: Handler,
    url: str = PUBLIC,
    guard: NetworkGuard | None = None,
    later_ms: int = 0,
    **changes: float,
) -> tuple[Subscription, Outbox]:
    async def respond(request: httpx.Request) -> httpx.Response:
        answer = handler(request)
        return await answer if asyncio.iscoroutine(answer) else answer  # type: ignore[no-any-return]

    async with httpx.AsyncClient(transport=httpx.MockTransport(respond)) as http:
        return await attempt(store, url, http, guard, later_ms, **changes)


async def test_webhook_2xx_marks_delivered(store: AlertStore) -> None:
    sub, _ = await deliver_once(store, lambda r: httpx.Response(204))
    (event,) = await store.events_of(sub.id)
    assert (event.state, event.attempts) == ("delivered", 1)


async def test_webhook_to_a_name_goes_to_its_checked_address_with_the_name(
    store: AlertStore, receiver: HTTPServer
) -> None:
    guard = NetworkGuard([ipaddress.ip_network("127.0.0.0/8")], resolver=dns({NAME: ["127.0.0.1"]}))
    url = f"http://{NAME}:{receiver.port}/hook"
    async with webhook.new_client() as http:
        sub, _ = await attempt(store, url, http, guard, delivery_timeout_s=5.0)
    ((request, response),) = receiver.log  # NAME resolves nowhere else: the pinned address
    assert request.headers["Host"] == f"{NAME}:{receiver.port}"
    assert (request.remote_addr, response.headers["X-Accepted-On"]) == ("127.0.0.1", "127.0.0.1")
    assert request.headers["X-Alert-Event-Id"] == "e1"
    assert (await store.events_of(sub.id))[0].state == "delivered"


async def test_https_webhook_keeps_the_name_for_host_and_tls(store: AlertStore) -> None:
    seen: list[httpx.Request] = []
    guard = NetworkGuard(resolver=dns({NAME: ["93.184.216.34"]}))
    url = f"https://{NAME}/hook"
    await deliver_once(store, lambda r: seen.append(r) or httpx.Response(200), url, guard)
    assert (seen[0].url.host, seen[0].headers["host"]) == ("93.184.216.34", NAME)
    assert seen[0].extensions["sni_hostname"] == NAME  # the certificate is checked for NAME


async def test_name_rebound_to_a_private_address_is_refused_at_delivery(
    store: AlertStore, receiver: HTTPServer
) -> None:
    records = {NAME: ["93.184.216.34"]}
    guard = NetworkGuard(resolver=dns(records))
    url = await parse_webhook(f"http://{NAME}:{receiver.port}/hook", guard)  # subscribed
    records[NAME] = ["127.0.0.1"]  # then the name is pointed inside
    async with webhook.new_client() as http:
        sub, outbox = await attempt(store, url, http, guard)
    (event,) = await store.events_of(sub.id)
    assert (event.state, event.attempts, outbox.failed_attempts) == ("pending", 1, 1)
    assert "is not an allowed target" in (event.last_error or "")
    assert "127.0.0.1" not in (event.last_error or "")
    assert receiver.log == []


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        (lambda r: httpx.Response(503), "answered 503"),
        (lambda r: httpx.Response(302, headers={"Location": "http://10.0.0.1/"}), "answered 302"),
        (lambda r: asyncio.sleep(5), "no answer within"),
    ],
    ids=["5xx", "redirect-not-followed", "hang"],
)
async def test_failed_attempt_is_retried_later(
    store: AlertStore, handler: Handler, error: str
) -> None:
    sub, outbox = await deliver_once(store, handler)
    (event,) = await store.events_of(sub.id)
    assert (event.state, event.attempts, outbox.failed_attempts) == ("pending", 1, 1)
    assert error in (event.last_error or "")
    assert NOW + 1600 <= event.next_attempt_ms <= NOW + 2000


async def test_private_target_is_refused_at_delivery(store: AlertStore) -> None:
    sub, _ = await deliver_once(store, lambda r: httpx.Response(200), url="http://10.0.0.7/hook")
    (event,) = await store.events_of(sub.id)
    assert (event.state, "ALERTS_ALLOW_NETWORKS" in (event.last_error or "")) == ("pending", True)


async def test_alert_older_than_give_up_is_marked_failed(store: AlertStore) -> None:
    sub, _ = await deliver_once(
        store, lambda r: httpx.Response(500), later_ms=1000, give_up_after_s=1.0
    )
    assert (await store.events_of(sub.id))[0].state == "failed"


def test_backoff_doubles_up_to_the_cap() -> None:
    delays = [backoff_s(n, settings()) for n in range(1, 8)]
    assert all(d >= 0.8 * c for d, c in zip(delays, [2, 4, 8, 16, 32, 60, 60], strict=True))
    assert all(d <= c for d, c in zip(delays, [2, 4, 8, 16, 32, 60, 60], strict=True))
    assert delays[6] >= 48


async def test_hung_receiver_does_not_hold_up_detection(tmp_path: Path) -> None:
    release = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200)

    config = AlertSettings(db_url=database_url(str(tmp_path / "a.sqlite3")), delivery_timeout_s=60)
    async with httpx.AsyncClient(transport=httpx.MockTransport(hang)) as http:
        service = AlertService(config, http=http, clock=FakeClock(0))
        sub = await service.store.create_subscription(
            NewSubscription(webhook=PUBLIC, email=None, metric="volume"), 0
        )
        await service.start()
        for minute in range(61):
            volume = 900.0 if minute in (30, 60) else 100.0
            await service.observe(
                pd.DataFrame(
                    {
                        "time": [NOW + minute * 60_000],
                        "exchange": ["k"],
                        "pair": ["p"],
                        "price": [1.0],
                        "volume": [volume],
                    }
                )
            )
            if minute == 30:
                await service.flush()
                assert await service.outbox.poll() == 1  # type: ignore[union-attr]
        await service.flush()  # detection went on while the first delivery hangs
        assert len(await service.store.events_of(sub.id)) == 2
        release.set()
        await service.close()


async def outbox_running(
    store: AlertStore, http: httpx.AsyncClient, clock: FakeClock, **changes: float
) -> tuple[Outbox, asyncio.Event, asyncio.Task[None]]:
    outbox = Outbox(store, settings(poll_interval_s=60, **changes), http, clock=clock)
    stop = asyncio.Event()
    return outbox, stop, asyncio.create_task(outbox.run(stop))


async def test_run_delivers_at_once_when_woken(store: AlertStore) -> None:
    sub = await store.create_subscription(NewSubscription(webhook=PUBLIC, email=None), NOW)
    clock = FakeClock(NOW)
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(204))
    ) as http:
        outbox, stop, running = await outbox_running(store, http, clock)
        await clock.advance(1)  # the poll at start found nothing; the next is at 60 s
        await store.record([alert(sub)], [], [], NOW)
        outbox.wake()
        await clock.advance(1)
        stop.set()
        await running
    (event,) = await store.events_of(sub.id)
    assert (event.state, outbox.delivered) == ("delivered", 1)


async def test_run_goes_on_after_a_failed_poll(
    store: AlertStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    claims: list[int] = []

    async def down(now_ms: int, limit: int, lease_ms: int) -> list[Claimed]:
        claims.append(now_ms)
        raise OSError("database unavailable")

    monkeypatch.setattr(store, "claim", down)
    clock = FakeClock(NOW)
    async with httpx.AsyncClient() as http:
        _, stop, running = await outbox_running(store, http, clock)
        await clock.advance(150)
        stop.set()
        await running
    assert claims == [NOW, NOW + 60_000, NOW + 120_000]
    assert "alerts outbox: poll failed" in caplog.text


async def test_run_stopped_lets_deliveries_in_flight_finish(store: AlertStore) -> None:
    sub = await store.create_subscription(NewSubscription(webhook=PUBLIC, email=None), NOW)
    await store.record([alert(sub)], [], [], NOW)
    posted, release = asyncio.Event(), asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        posted.set()
        await release.wait()
        return httpx.Response(204)

    async with httpx.AsyncClient(transport=httpx.MockTransport(slow)) as http:
        _, stop, running = await outbox_running(store, http, FakeClock(NOW), delivery_timeout_s=60)
        await posted.wait()
        stop.set()
        release.set()
        await running
    (event,) = await store.events_of(sub.id)
    assert event.state == "delivered"


async def test_service_run_follows_new_subscriptions_every_poll(tmp_path: Path) -> None:
    clock, stop = FakeClock(NOW), asyncio.Event()
    config = AlertSettings(db_url=database_url(str(tmp_path / "a.sqlite3")), poll_interval_s=5)
    async with httpx.AsyncClient() as http:
        service = AlertService(config, http=http, clock=clock)
        await service.start()
        running = asyncio.create_task(service.run(stop))
        await clock.advance(1)  # read at start
        await service.store.create_subscription(NewSubscription(webhook=PUBLIC, email=None), NOW)
        await clock.advance(3)
        before = len(service.detector.subscriptions)
        await clock.advance(2)
        stop.set()
        await running
        await service.close()
    assert (before, len(service.detector.subscriptions)) == (0, 1)


IDN = "bücher.example.test"
PUNYCODE = "xn--bcher-kva.example.test"


async def test_webhook_to_an_internationalised_name_is_delivered(
    store: AlertStore, receiver: HTTPServer
) -> None:
    guard = NetworkGuard(
        [ipaddress.ip_network("127.0.0.0/8")], resolver=dns({PUNYCODE: ["127.0.0.1"]})
    )
    url = await parse_webhook(f"http://{IDN}:{receiver.port}/hook", guard)
    async with webhook.new_client() as http:
        sub, _ = await attempt(store, url, http, guard, delivery_timeout_s=5.0)
    ((request, _response),) = receiver.log
    assert request.headers["Host"] == f"{PUNYCODE}:{receiver.port}"
    assert (await store.events_of(sub.id))[0].state == "delivered"


async def test_https_internationalised_name_is_sent_as_punycode_for_tls(
    store: AlertStore,
) -> None:
    seen: list[httpx.Request] = []
    guard = NetworkGuard(resolver=dns({PUNYCODE: ["93.184.216.34"]}))
    url = f"https://{IDN}/hook"
    await deliver_once(store, lambda r: seen.append(r) or httpx.Response(200), url, guard)
    assert (seen[0].headers["host"], seen[0].extensions["sni_hostname"]) == (PUNYCODE, PUNYCODE)


@pytest.mark.parametrize(
    "handler",
    [lambda r: 1 / 0, lambda r: (_ for _ in ()).throw(UnicodeEncodeError("ascii", "ü", 0, 1, "x"))],
    ids=["zero-division", "unicode-error"],
)
async def test_any_exception_while_delivering_is_a_failed_attempt(
    store: AlertStore, handler: Handler
) -> None:
    sub, outbox = await deliver_once(store, handler)
    (event,) = await store.events_of(sub.id)
    assert (event.state, event.attempts, outbox.failed_attempts) == ("pending", 1, 1)
    assert NOW + 1600 <= event.next_attempt_ms <= NOW + 2000


async def test_unexpected_exception_ends_in_give_up(store: AlertStore) -> None:
    sub, _ = await deliver_once(store, lambda r: 1 / 0, later_ms=1000, give_up_after_s=1.0)
    (event,) = await store.events_of(sub.id)
    assert (event.state, "ZeroDivisionError" in (event.last_error or "")) == ("failed", True)
