"""The front door's routes (see :mod:`federation.router.frontdoor`); each is listed here
once it is built."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from federation.router.frontdoor.ping import ping
from federation.router.frontdoor.query import query


def routes() -> list[BaseRoute]:
    return [
        Route("/ping", ping, methods=["GET", "HEAD"]),
        Route("/query", query, methods=["GET", "POST"]),
    ]
