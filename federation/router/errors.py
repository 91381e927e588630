"""The router's one error path: every error answer is JSON
``{"error": ..., "code": ...}``, and an unexpected exception is logged once.

- :class:`~federation.core.errors.APIError` (bad input, unknown pair, strict and shards
  missing): its own status and JSON, from :func:`api_error`;
- routing's 404 and 405: JSON from :func:`http_error` (a 405 with its ``Allow`` header);
- anything else: :class:`UnhandledErrors`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from federation.core.errors import APIError

log = logging.getLogger(__name__)


def json_error(
    content: dict[str, Any], status_code: int, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(content), status_code, headers=headers, media_type="application/json"
    )


def render(exc: APIError) -> Response:
    """The one JSON shape of an API error, with its status and headers."""
    return json_error(exc.to_json(), exc.status, exc.headers or None)


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return render(exc)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    body = {"error": exc.detail, "code": "http_error"}
    return json_error(body, exc.status_code, exc.headers)


class UnhandledErrors:
    """Where an unexpected exception ends: logged once, with its traceback, then answered
    500 ``{"error": "internal error", "code": "internal"}`` if the response has not
    started. If it has, the app returns with the body unfinished and the server closes
    the connection, so the client sees a cut answer rather than a complete-looking one.

    It does not re-raise: Starlette's ServerErrorMiddleware and uvicorn would each log
    the exception again."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if not started:
                body = {"error": "internal error", "code": "internal"}
                await json_error(body, 500)(scope, receive, send)
