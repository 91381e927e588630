"""Request bodies, bounded: ASGI middleware wrapping ``receive``.

The router faces the internet, so a body is never trusted to be small or to arrive:

- a ``Content-Length`` over ``FEDERATION_MAX_BODY`` is refused with 413 before a byte of
  the body is read; a chunked body (no length) is counted as it arrives and refused as
  soon as it passes the limit, so at most the limit and one chunk are ever held;
- a path may have a limit of its own (``/write``: ``FEDERATION_WRITE_MAX_BODY``, for
  InfluxDB clients' batches), enforced the same way;
- the whole body must arrive within ``FEDERATION_BODY_TIMEOUT`` of the request's start,
  else 408.

Both answers close the connection (``Connection: close``): the rest of the body is never
read. The errors are raised from ``receive``, inside the endpoint reading the body, so
the one error handler renders them; once the response has started, ``receive`` only
passes messages through (Starlette listens on it for the client going away).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from federation.core.errors import BadParameter, BodyTimeout, BodyTooLarge
from federation.router.errors import json_error


class BodyLimits:
    """``paths`` maps a path to its own (bytes, setting name), in place of
    (``max_bytes``, ``FEDERATION_MAX_BODY``)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        timeout_s: float,
        paths: Mapping[str, tuple[int, str]] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.paths = dict(paths or {})

    def _limit(self, scope: Scope) -> tuple[int, str]:
        return self.paths.get(scope["path"], (self.max_bytes, "FEDERATION_MAX_BODY"))

    @staticmethod
    def too_large(max_bytes: int, setting: str) -> BodyTooLarge:
        return BodyTooLarge(
            f"the request body is larger than {max_bytes} bytes", limit=setting, maximum=max_bytes
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            declared = _content_length(scope)
        except BadParameter as exc:
            await json_error(exc.to_json(), exc.status, {"Connection": "close"})(
                scope, receive, send
            )
            return
        max_bytes, setting = self._limit(scope)
        if declared is not None and declared > max_bytes:
            error = self.too_large(max_bytes, setting)
            await json_error(error.to_json(), error.status, error.headers)(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        received = 0
        complete = started = False

        async def bounded_receive() -> Message:
            nonlocal received, complete
            if complete or started:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout(
                    f"the request body did not arrive within {self.timeout_s:g} s",
                    limit="FEDERATION_BODY_TIMEOUT",
                    maximum=self.timeout_s,
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise self.too_large(max_bytes, setting)
                complete = not message.get("more_body", False)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, bounded_receive, watched_send)


def _content_length(scope: Scope) -> int | None:
    """The declared body length, or None for a body without one (chunked, or none)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            if not value.isdigit() or len(value) > 18:
                raise BadParameter(
                    "Content-Length must be a whole number of bytes", parameter="Content-Length"
                )
            return int(value)
    return None
