"""Responses sent to clients that may not read them.

A client that stops reading does not fail a ``send``: the socket buffers fill, then the
server's ``send`` waits for room, and a streamed price answer waits with it, holding one
shard connection per shard. So every response has a send deadline:
:class:`SendDeadline` (ASGI middleware wrapping ``send``) gives each ``send``
``FEDERATION_SEND_TIMEOUT``; when one does not complete in time, the response is
abandoned: the app is cancelled (a cancellation, not an exception, so the error path
logs nothing and sends nothing), and the server closes the connection, since the
response never completed. The same abandonment is how the stream limit
(:mod:`federation.router.streamslots`) takes a stalled answer's place.

Cancelling the app is not enough to close a streamed answer's shard streams: an async
generator suspended at a ``yield`` is closed only when it is garbage collected.
:class:`ClosingStream` closes its source, and runs its ``on_close``, however sending
ends (complete, client gone, send abandoned), shielded from the cancellation that ends
it, so the shard connections return to the pool at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

GUARD = "federation.send_guard"  # the scope key of the request's SendGuard


class SendGuard:
    """One response's sending: since when its pending ``send`` waits, and how to
    abandon the response."""

    def __init__(self, cancel: anyio.CancelScope) -> None:
        self._cancel = cancel
        self.waiting_since: float | None = None  # time.monotonic() of the pending send
        self.abandoned: str | None = None  # why, once abandoned

    def stalled_s(self, now: float) -> float:
        """How long the pending ``send`` has waited (0 when none is pending)."""
        return 0.0 if self.waiting_since is None else now - self.waiting_since

    def abandon(self, why: str) -> None:
        """Stop the response: the app is cancelled wherever it waits."""
        self.abandoned = self.abandoned or why
        self._cancel.cancel()


def guard_of(scope: Scope) -> SendGuard | None:
    guard = scope.get(GUARD)
    return guard if isinstance(guard, SendGuard) else None


class SendDeadline:
    def __init__(self, app: ASGIApp, *, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with anyio.CancelScope() as cancel:
            guard = scope[GUARD] = SendGuard(cancel)

            async def bounded_send(message: Message) -> None:
                guard.waiting_since = time.monotonic()
                with anyio.move_on_after(self.timeout_s) as waited:
                    await send(message)
                guard.waiting_since = None
                if waited.cancelled_caught:
                    guard.abandon(f"a send waited {self.timeout_s:g} s on the client")
                    await anyio.lowlevel.checkpoint()  # the cancellation, at once

            await self.app(scope, receive, bounded_send)
        if guard.abandoned:
            log.info("abandoned %s %s: %s", scope["method"], scope["path"], guard.abandoned)


class ClosingStream(StreamingResponse):
    """A streamed response whose source is closed, and ``on_close`` awaited, as soon as
    sending ends, however it ends."""

    def __init__(
        self,
        source: AsyncGenerator[bytes, None],
        on_close: Callable[[], Awaitable[None]],
        **kwargs: Any,
    ) -> None:
        super().__init__(source, **kwargs)
        self._source, self._on_close = source, on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await self._source.aclose()
                finally:
                    await self._on_close()
