"""Prometheus metrics of the router, in a registry of the app's own (tests build many apps),
and the ASGI middleware that counts and times every request."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from federation.core.influx import PoolStatus

UNMATCHED = "unmatched"  # the route label of a path no route matches (a bounded label set)


class RouterMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "federation_requests",
            "HTTP requests answered",
            ["route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "federation_request_seconds",
            "Time to answer a request, to the last byte of its body",
            ["route"],
            registry=self.registry,
        )
        self.shard_seconds = Histogram(
            "federation_shard_query_seconds",
            "Time of one shard query",
            ["shard"],
            registry=self.registry,
        )
        self.shard_failures = Counter(
            "federation_shard_failures",
            "Shard queries that failed or timed out",
            ["shard"],
            registry=self.registry,
        )
        self.partial_answers = Counter(
            "federation_partial_answers", "Answers flagged partial", registry=self.registry
        )
        self.hot_cache_bytes = Gauge(
            "federation_hot_cache_bytes",
            "Bytes the hot cache holds (points, encoded, and the answers made from them)",
            registry=self.registry,
        )
        self.hot_cache_pairs = Gauge(
            "federation_hot_cache_pairs", "Pairs the hot cache holds", registry=self.registry
        )
        self.hot_cache_hits = Counter(
            "federation_hot_cache_hits",
            "Price answers served from pairs the hot cache held",
            registry=self.registry,
        )
        self.hot_cache_misses = Counter(
            "federation_hot_cache_misses",
            "Price answers the hot cache was asked for and did not hold (filled, or sent"
            " the uncached way)",
            registry=self.registry,
        )
        self.hot_cache_evictions = Counter(
            "federation_hot_cache_evictions",
            "Pairs dropped from the hot cache to stay within FEDERATION_HOT_CACHE_BYTES",
            registry=self.registry,
        )


class ShardPoolCollector:
    """The shard client's pool, read when scraped: connections in use, idle, and requests
    waiting for one (what slow clients or lost slots would show)."""

    def __init__(self, status: Callable[[], PoolStatus]) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        pool = self.status()
        gauge = GaugeMetricFamily(
            "federation_shard_connections",
            "The shard client's pool: connections in use, idle, and requests waiting",
            labels=["state"],
        )
        gauge.add_metric(["in_use"], pool.in_use)
        gauge.add_metric(["idle"], pool.connections - pool.in_use)
        gauge.add_metric(["waiting"], pool.waiting)
        yield gauge


class RequestMetrics:
    """Every HTTP request counted and timed, by the matched route's path template
    (``/{pair}``, ``/alerts/{id}``; a mount by its prefix, ``/static``) and the status sent.

    It wraps ``send``: a request is timed from the call until its last body message is
    sent, so a streamed answer is timed whole, or until the app fails or returns (the
    client went away). The template is what Starlette's router put in ``scope["route"]``
    (the scope is shared down the stack)."""

    def __init__(self, app: ASGIApp, metrics: RouterMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server sends for an app that fails before answering
        observed = False

        def observe() -> None:
            nonlocal observed
            if observed:
                return
            observed = True
            route = scope.get("route")
            label = route.path if isinstance(route, Route | Mount) else UNMATCHED
            self.metrics.request_seconds.labels(label).observe(time.perf_counter() - started)
            self.metrics.requests.labels(label, str(status)).inc()

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                observe()

        try:
            await self.app(scope, receive, timed_send)
        finally:
            observe()
