"""Prometheus metrics of the router, in a registry of the app's own (tests build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


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
            "Time to answer a request",
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
