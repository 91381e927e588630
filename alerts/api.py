"""The subscriptions API, mounted on the router before its ``/{pair}`` catch-all.

POST   /alerts              subscribe: a webhook URL or an email address, optional pair,
                            exchange, metric (price|volume), factor (default 3), window (1h)
GET    /alerts              the caller's subscriptions (an admin's: every one)
GET    /alerts/{id}         one subscription
DELETE /alerts/{id}         unsubscribe (its pending alerts are dropped)
GET    /alerts/{id}/events  its most recent alerts and their delivery state

Every request acts for a principal the router's key middleware put in
``request.state.principal`` (:mod:`federation.router.auth`). A subscription belongs to
the key name that made it: another key gets 404 for it, as for an id that does not
exist, so its existence is not confirmed; admins see and delete all.

Bad input is a 400 naming the field (:class:`~federation.core.errors.BadParameter`), an
unknown id a 404, a subscription limit a 409 naming its setting
(:class:`~federation.core.errors.LimitReached`), all rendered by the router's one error
handler. What each endpoint takes and answers is declared once in :mod:`alerts.contract`
and published in /openapi.json; the body's size and the time it may take to arrive are
the router's limits (:mod:`federation.router.limits`).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import email_validator
import httpx
import orjson
from pydantic import ValidationError
from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from alerts.contract import (
    EVENTS_LIMIT_MAX,
    FACTOR_MAX,
    ID_RE,
    MAX_URL,
    WINDOW_MAX_S,
    WINDOW_MIN_S,
    NewAlert,
)
from alerts.errors import TargetRefused, TooManySubscriptions
from alerts.netguard import NetworkGuard
from alerts.settings import AlertSettings
from alerts.store import AlertStore
from alerts.types import NewSubscription, Subscription, window_text
from federation.core.apikeys import Principal
from federation.core.clock import now_ms
from federation.core.durations import Duration
from federation.core.errors import BadParameter, LimitReached, NotFound
from federation.core.inputs import parse_id, parse_whole, query_params, reject_unknown

FIELDS = tuple(NewAlert.model_fields)


@dataclass(frozen=True)
class AlertsContext:
    """What the endpoints need, opened and closed by the router's lifespan."""

    store: AlertStore
    guard: NetworkGuard
    settings: AlertSettings

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: AlertSettings) -> AsyncIterator[AlertsContext]:
        store = AlertStore(settings.db_url)  # connects on first use
        try:
            yield cls(store, NetworkGuard(settings.allow_networks), settings)
        finally:
            await store.close()


def parse_window(text: str) -> int:
    """A window is a length (``1h``, ``90m``), not a look-back: ``-1h`` is refused."""
    try:
        seconds = Duration.parse_length(text).seconds
    except ValueError as exc:
        raise BadParameter(f"window {exc}", parameter="window") from None
    if not WINDOW_MIN_S <= seconds <= WINDOW_MAX_S or seconds % 60:
        raise BadParameter(
            f"window {text!r} must be whole minutes between 1m and 24h", parameter="window"
        )
    return seconds


def parse_factor(value: float) -> float:
    if not (math.isfinite(value) and 1.0 < value <= FACTOR_MAX):
        raise BadParameter(
            f"factor {value!r} must be a number above 1 and at most {FACTOR_MAX:g}",
            parameter="factor",
        )
    return float(value)


def parse_email(value: str) -> str:
    try:
        checked = email_validator.validate_email(value, check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        raise BadParameter(f"email {value!r} is not valid: {exc}", parameter="email") from None
    return str(checked.normalized)


async def parse_webhook(value: str, guard: NetworkGuard) -> str:
    if len(value) > MAX_URL:
        raise BadParameter(f"webhook is longer than {MAX_URL} characters", parameter="webhook")
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise BadParameter(f"webhook {value!r} is not a URL: {exc}", parameter="webhook") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise BadParameter(
            f"webhook {value!r} must be an http:// or https:// URL with a host",
            parameter="webhook",
        )
    try:
        host = url.raw_host.decode("ascii")  # punycode for an internationalised name
        await guard.resolve(host, url.port or (443 if url.scheme == "https" else 80))
    except TargetRefused as exc:
        raise BadParameter(f"webhook refused: {exc}", parameter="webhook") from None
    return str(url)


async def parse_subscription(raw: bytes, guard: NetworkGuard) -> NewSubscription:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadParameter(f"the body is not JSON: {exc}", parameter="body") from None
    if not isinstance(data, dict):
        raise BadParameter("the body must be a JSON object", parameter="body")
    reject_unknown(data, FIELDS)
    try:
        body = NewAlert.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else "body"
        raise BadParameter(f"{field}: {error['msg']}", parameter=field) from None
    if (body.webhook is None) == (body.email is None):
        raise BadParameter("give exactly one of webhook and email", parameter="webhook")
    return NewSubscription(
        webhook=None if body.webhook is None else await parse_webhook(body.webhook, guard),
        email=None if body.email is None else parse_email(body.email),
        pair=None if body.pair is None else parse_id("pair", body.pair),
        exchange=None if body.exchange is None else parse_id("exchange", body.exchange),
        metric=body.metric,
        factor=parse_factor(body.factor),
        window_s=parse_window(body.window),
    )


def within_limits(new: NewSubscription, settings: AlertSettings) -> NewSubscription:
    """The subscription if its window is one the ingester follows and its factor is at
    least the minimum (a factor near 1 would alert on almost every point)."""
    if new.window_s not in settings.windows:
        allowed = ", ".join(window_text(w) for w in settings.windows)
        raise BadParameter(
            f"window {window_text(new.window_s)} is not one of the allowed windows"
            f" ({allowed}; ALERTS_WINDOWS)",
            parameter="window",
            limit="ALERTS_WINDOWS",
        )
    if new.factor < settings.min_factor:
        raise BadParameter(
            f"factor {new.factor:g} is below the minimum of {settings.min_factor:g}"
            " (ALERTS_MIN_FACTOR)",
            parameter="factor",
            limit="ALERTS_MIN_FACTOR",
        )
    return new


_LIMIT_SETTINGS = {"per_key": "ALERTS_MAX_PER_KEY", "total": "ALERTS_MAX_SUBSCRIPTIONS"}


def _context(request: Request) -> AlertsContext:
    context: AlertsContext = request.app.state.alerts
    return context


def _principal(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal


async def _subscription(request: Request) -> Subscription:
    """The subscription of the path, if the caller may see it (else 404, as for an id
    that does not exist)."""
    sub_id = request.path_params["id"]
    if not ID_RE.fullmatch(sub_id):
        raise BadParameter(
            f"id {sub_id!r} is malformed: an alert id is 32 hexadecimal digits", parameter="id"
        )
    sub = await _context(request).store.get_subscription(sub_id)
    if sub is None or not _principal(request).owns(sub.owner):
        raise NotFound(f"no alert subscription {sub_id!r}", parameter="id")
    return sub


def _json(content: Any, status_code: int = 200, **kwargs: Any) -> Response:
    return Response(orjson.dumps(content), status_code, media_type="application/json", **kwargs)


async def create(request: Request) -> Response:
    """
    summary: Subscribe to spike alerts by webhook or email.
    requestBody:
      required: true
      content:
        application/json:
          schema: {$ref: "#/components/schemas/NewAlert"}
          example: {"webhook": "https://example.com/hook", "pair": "btcusd", "metric": "volume"}
    responses:
      201:
        description: >
          The subscription, with the secret that signs its webhook calls (shown only here).
        headers:
          Location: {description: the subscription's address, schema: {type: string}}
        content:
          application/json: {schema: {$ref: "#/components/schemas/Subscription"}}
      400:
        description: A field is malformed, or the webhook address is refused; the body names it.
      409:
        description: A subscription limit is reached; the body names its setting.
    """
    query_params(request.query_params.multi_items(), ())
    context, settings = _context(request), _context(request).settings
    new = within_limits(await parse_subscription(await request.body(), context.guard), settings)
    try:
        sub = await context.store.create_subscription(
            new,
            now_ms(),
            _principal(request).name,
            max_per_owner=settings.max_per_key,
            max_total=settings.max_subscriptions,
        )
    except TooManySubscriptions as exc:
        setting_name = _LIMIT_SETTINGS[exc.which]
        raise LimitReached(
            f"{'this key holds' if exc.which == 'per_key' else 'the service holds'} the most"
            f" subscriptions allowed ({exc.limit}, {setting_name}); delete one first",
            limit=setting_name,
            maximum=exc.limit,
        ) from None
    return _json(sub.public(with_secret=True), 201, headers={"Location": f"/alerts/{sub.id}"})


async def list_all(request: Request) -> Response:
    """
    summary: Every alert subscription (secrets are not shown).
    responses:
      200:
        description: >
          The caller's subscriptions, or every one for an admin (secrets are not shown).
        content:
          application/json: {schema: {$ref: "#/components/schemas/Subscriptions"}}
    """
    query_params(request.query_params.multi_items(), ())
    principal = _principal(request)
    subs = await _context(request).store.list_subscriptions(
        None if principal.admin else principal.name
    )
    return _json({"subscriptions": [s.public() for s in subs]})


async def get_one(request: Request) -> Response:
    """
    summary: One subscription.
    parameters:
      - {$ref: "#/components/parameters/AlertId"}
    responses:
      200:
        description: The subscription.
        content:
          application/json: {schema: {$ref: "#/components/schemas/Subscription"}}
      404:
        description: No such subscription.
    """
    query_params(request.query_params.multi_items(), ())
    return _json((await _subscription(request)).public())


async def delete(request: Request) -> Response:
    """
    summary: Unsubscribe.
    parameters:
      - {$ref: "#/components/parameters/AlertId"}
    responses:
      204:
        description: Unsubscribed; alerts not yet delivered are dropped.
      404:
        description: No such subscription.
    """
    query_params(request.query_params.multi_items(), ())
    sub = await _subscription(request)
    await _context(request).store.delete_subscription(sub.id)
    return Response(status_code=204)


async def events(request: Request) -> Response:
    """
    summary: A subscription's most recent alerts and their delivery state.
    parameters:
      - {$ref: "#/components/parameters/AlertId"}
      - {$ref: "#/components/parameters/EventsLimit"}
    responses:
      200:
        description: >
          The subscription's most recent alerts, newest first, each with its delivery
          state (pending, delivered, failed), attempts and last error.
        content:
          application/json: {schema: {$ref: "#/components/schemas/Events"}}
      404:
        description: No such subscription.
    """
    params = query_params(request.query_params.multi_items(), ("limit",))
    limit = parse_whole("limit", params.get("limit", "50"), 1, EVENTS_LIMIT_MAX)
    sub = await _subscription(request)
    found = await _context(request).store.events_of(sub.id, limit)
    return _json({"subscription_id": sub.id, "events": [e.public() for e in found]})


class _Alerts(HTTPEndpoint):
    get = staticmethod(list_all)
    post = staticmethod(create)


class _Alert(HTTPEndpoint):
    get = staticmethod(get_one)
    delete = staticmethod(delete)


def routes() -> list[Route]:
    """One route per path, so that a method it does not take is a 405 whose ``Allow``
    lists every method of the path."""
    return [
        Route("/alerts", _Alerts),
        Route("/alerts/{id}", _Alert),
        Route("/alerts/{id}/events", events, methods=["GET"]),
    ]
