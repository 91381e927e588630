"""The front door's routes (see :mod:`federation.router.frontdoor`)."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from federation.router.frontdoor.ping import ping
from federation.router.frontdoor.query import query
from federation.router.frontdoor.write import write


def routes() -> list[BaseRoute]:
    return [
        Route("/ping", ping, methods=["GET", "HEAD"]),
        Route("/write", write, methods=["POST"]),
        Route("/query", query, methods=["GET", "POST"]),
    ]
