"""Who may call what: API keys as ASGI middleware, before routing.

Alert management (``/alerts`` and below) always needs a principal: the holder of the
``Authorization: Bearer`` key, or, while no key is configured, a loopback client (as
the ``local`` admin, so ``make run`` stays one command). The price API is public unless
``FEDERATION_PRICES_NEED_KEY`` is on; ``/health`` and ``/ready`` always are. The
endpoints read the principal from ``request.state.principal``. Refusals are the API's
JSON errors (401 with ``WWW-Authenticate: Bearer``); the key itself is never logged.

The InfluxDB front door (``/ping``, ``/query``, ``/write``) takes credentials as
InfluxDB 1.x does: ``u``/``p`` query parameters, HTTP basic auth, or ``Authorization:
Token <key>`` (or ``Bearer``); the key is the password and the user name is not checked.
``/write`` changes data, so it always needs a principal, as alert management does;
``/ping`` and ``/query`` follow the price API. Its refusals are InfluxDB's: 401
``{"error":"authorization failed"}``.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Sequence
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from federation.core.apikeys import LOCAL, ApiKeys, Principal, bearer
from federation.core.errors import (
    APIError,
    Forbidden,
    InfluxForbidden,
    InfluxUnauthorized,
    Unauthorized,
)
from federation.router.errors import render
from federation.router.frontdoor.headers import INFLUX_HEADERS

PUBLIC = ("/health", "/ready")
FRONT_DOOR = ("/ping", "/query", "/write")


def needs_key(path: str, keys: ApiKeys) -> bool:
    """Whether a request to ``path`` needs a principal (see :mod:`federation.router.auth`)."""
    return (
        path in ("/alerts", "/write")
        or path.startswith("/alerts/")
        or (keys.prices_need_key and path not in PUBLIC)
    )


def influx_key(scope: Scope) -> str | None:
    """The key a request presents as InfluxDB 1.x clients send credentials: an
    ``Authorization`` header (``Token``, ``Bearer`` or ``Basic`` with the key as the
    password), else the ``p`` query parameter. None: no credentials."""
    scheme, _, value = Headers(scope=scope).get("authorization", "").partition(" ")
    value = value.strip()
    if scheme.lower() in ("token", "bearer") and value:
        return value
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return (query.get("p") or [None])[0] or None


def front_door_principal(scope: Scope, keys: ApiKeys) -> Principal:
    """The principal of a front-door request that needs one; raises InfluxDB's refusal."""
    if not keys.configured:
        if is_loopback(scope):
            return Principal(LOCAL, admin=True)
        raise InfluxForbidden(
            f"{scope['path']} is accepted from loopback clients only while no API key is"
            " configured; fix: set FEDERATION_API_KEYS on the router"
        )
    presented = influx_key(scope)
    holder = None if presented is None else keys.holder(presented)
    if holder is None:
        raise InfluxUnauthorized()
    return holder


def is_loopback(scope: Scope) -> bool:
    client = scope.get("client")
    if not client:
        return False
    try:
        return ipaddress.ip_address(str(client[0])).is_loopback
    except ValueError:
        return False


def principal_of(scope: Scope, keys: ApiKeys) -> Principal:
    """The principal of a request to a protected route; raises the refusal."""
    if not keys.configured:
        if is_loopback(scope):
            return Principal(LOCAL, admin=True)
        raise Forbidden(
            "alert management is accepted from loopback clients only while no API key is"
            " configured; fix: set FEDERATION_API_KEYS on the router"
        )
    presented = bearer(Headers(scope=scope))
    if presented is None:
        raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>'")
    holder = keys.holder(presented)
    if holder is None:
        raise Unauthorized("the API key is not valid")
    return holder


class ApiKeyAuth:
    """Checks the key of a request that a route serves (path and method): a method the
    path does not have is routing's 405 with ``Allow``, whoever asks."""

    def __init__(self, app: ASGIApp, keys: ApiKeys, routes: Sequence[BaseRoute] = ()) -> None:
        self.app = app
        self.keys = keys
        self.routes = routes

    def _served(self, scope: Scope) -> bool:
        return not self.routes or any(r.matches(scope)[0] == Match.FULL for r in self.routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if needs_key(path, self.keys) and self._served(scope):
                try:
                    if path in FRONT_DOOR:
                        principal = front_door_principal(scope, self.keys)
                    else:
                        principal = principal_of(scope, self.keys)
                except APIError as exc:
                    if path in FRONT_DOOR:
                        exc.headers.update(INFLUX_HEADERS)
                    await render(exc)(scope, receive, send)
                    return
                scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)
