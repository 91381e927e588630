"""The query router: the Starlette app and what only it uses.

``app`` builds the application (routes, lifespan, middleware); ``fanout`` asks every
shard in parallel; ``stream`` merges one pair's chunked answers; ``rows`` turns them
into the API's JSON; ``rank``, ``moments`` and ``ranktable`` hold the global
standard-deviation rank; ``params`` and ``settings`` validate what comes in; ``metrics``
measures requests as ASGI middleware. It stands on :mod:`federation.core` and mounts the
alerts API (:mod:`alerts.api`); operator tools (:mod:`federation.tools`) stand on it.
"""

from __future__ import annotations
