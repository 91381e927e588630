"""Who may call what: API keys as ASGI middleware, before routing.

Alert management (``/alerts`` and below) always needs a principal: the holder of the
``Authorization: Bearer`` key, or, while no key is configured, a loopback client (as
the ``local`` admin, so ``make run`` stays one command). The price API is public unless
``FEDERATION_PRICES_NEED_KEY`` is on; ``/health`` and ``/ready`` always are. The
endpoints read the principal from ``request.state.principal``. Refusals are the API's
JSON errors (401 with ``WWW-Authenticate: Bearer``); the key itself is never logged.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from federation.core.apikeys import LOCAL, ApiKeys, Principal, bearer
from federation.core.errors import APIError, Forbidden, Unauthorized
from federation.router.errors import render

PUBLIC = ("/health", "/ready")


def needs_key(path: str, keys: ApiKeys) -> bool:
    """Whether a request to ``path`` needs a principal (see :mod:`federation.router.auth`)."""
    return (
        path == "/alerts"
        or path.startswith("/alerts/")
        or (keys.prices_need_key and path not in PUBLIC)
    )


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
                    principal = principal_of(scope, self.keys)
                except APIError as exc:
                    await render(exc)(scope, receive, send)
                    return
                scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)
