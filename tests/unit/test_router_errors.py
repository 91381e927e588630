"""The router's one error path: an unexpected exception is logged once and answered 500
JSON, or cuts a streamed answer already under way."""

from __future__ import annotations

import logging

import pytest
from starlette.types import Message, Receive, Scope, Send

from federation.core.influx import Ping
from federation.router.errors import UnhandledErrors
from tests.fakeshard import FakeShard
from tests.unit.test_router import SHARDS, router

INTERNAL = {"error": "internal error", "code": "internal"}


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


class BrokenPing(FakeShard):
    async def ping(self) -> Ping:
        raise RuntimeError("a bug nobody foresaw")


def broken_ping() -> dict[str, FakeShard]:
    return {s.name: BrokenPing(s) for s in SHARDS}


async def test_unhandled_error_is_one_500_json_and_one_logged_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with router(broken_ping()) as client:
        response = await client.get("/ready")
    assert (response.status_code, response.json()) == (500, INTERNAL)
    [record] = errors_logged(caplog)
    assert record.exc_info is not None


async def test_unhandled_error_is_counted_as_a_500() -> None:
    async with router(broken_ping()) as client:
        await client.get("/ready")
        text = (await client.get("/metrics")).text
    assert 'federation_requests_total{route="/ready",status="500"} 1.0' in text


async def test_error_after_the_response_started_sends_nothing_more(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def streams_then_fails(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'{"prices":[', "more_body": True})
        raise RuntimeError("a bug nobody foresaw")

    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/btcusd"}
    await UnhandledErrors(streams_then_fails)(scope, receive, send)
    assert [m.get("more_body") for m in sent] == [None, True]  # the body is left unfinished
    [record] = errors_logged(caplog)
    assert record.exc_info is not None
