"""The query router: a Starlette app over the federation of shards.

Routes: ``GET /{pair}`` (the original service's endpoint), ``/health`` (the process
lives), ``/ready`` (every shard answers ``/ping``), ``/shards``, ``/pairs``, ``/metrics``,
``/openapi.json`` and the alert subscriptions (``/alerts...``, from :mod:`alerts.api`).
The shard clients' shared ``httpx2.AsyncClient``, the ``aiohttp.ClientSession`` their
price streams read through, and the alerts database belong to the lifespan.
Cross-cutting work is ASGI middleware around the routes: outermost, the send deadline
(:mod:`federation.router.sending`: a client that stops reading has its answer
abandoned), then metrics
(:class:`~federation.router.metrics.RequestMetrics`) outside the error path
(:mod:`federation.router.errors`), so a 500 is counted as sent, then the API keys
(:mod:`federation.router.auth`), so a refusal is counted too, and inside them the
request body's limits (:mod:`federation.router.limits`). Each route's docstring is its
entry in /openapi.json (:mod:`federation.router.contract` builds the description).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from alerts.api import AlertsContext
from alerts.api import routes as alert_routes
from federation import __version__
from federation.core.clock import SYSTEM_CLOCK, Clock
from federation.core.errors import APIError
from federation.core.influx import (
    Connect,
    InfluxClient,
    ShardClient,
    http_for_shards,
    pool_status,
)
from federation.core.inputs import query_params
from federation.core.mapwatch import MapWatcher
from federation.core.shardmap import Shard, ShardMap, load_shard_map
from federation.router.auth import ApiKeyAuth
from federation.router.contract import document
from federation.router.errors import UnhandledErrors, api_error, http_error
from federation.router.fanout import Federation
from federation.router.frontdoor.routes import routes as frontdoor_routes
from federation.router.frontdoor.spooled import SpooledWriter
from federation.router.frontdoor.write import WRITE_LIMIT
from federation.router.hotcache import HotCache
from federation.router.limits import BodyLimits
from federation.router.metrics import RequestMetrics, RouterMetrics, ShardPoolCollector
from federation.router.page import routes as page_routes
from federation.router.params import PairQuery
from federation.router.ranktable import RankTable
from federation.router.sending import ClosingStream, SendDeadline, guard_of
from federation.router.settings import RouterSettings
from federation.router.streamslots import StreamSlots

log = logging.getLogger(__name__)


class ORJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


def _federation(request: Request) -> Federation:
    federation: Federation = request.app.state.federation
    return federation


async def health(request: Request) -> Response:
    """
    summary: The router process lives.
    responses:
      200:
        description: The router process is alive.
        content:
          application/json: {schema: {$ref: "#/components/schemas/Health"}}
    """
    query_params(request.query_params.multi_items(), ())
    return ORJSONResponse({"status": "ok", "version": __version__})


async def ready(request: Request) -> Response:
    """
    summary: Whether every shard answers /ping.
    responses:
      200:
        description: Every shard answers /ping.
        content:
          application/json: {schema: {$ref: "#/components/schemas/Ready"}}
      503:
        description: Some shards do not answer; their names are listed.
        content:
          application/json: {schema: {$ref: "#/components/schemas/Ready"}}
    """
    query_params(request.query_params.multi_items(), ())
    gathered = await _federation(request).ready()
    missing = sorted(gathered.missing)
    body = {"ready": not missing, "missing_shards": missing}
    return ORJSONResponse(body, status_code=503 if missing else 200)


async def shards(request: Request) -> Response:
    """
    summary: The shard map in force and each shard's state.
    responses:
      200:
        description: The shard map in force and each shard's state, series and pairs.
        content:
          application/json: {schema: {$ref: "#/components/schemas/ShardsStatus"}}
    """
    query_params(request.query_params.multi_items(), ())
    body = await _federation(request).shard_status()
    watcher: MapWatcher | None = request.app.state.watcher
    if watcher is not None:
        body.update(watcher.status())
    settings: RouterSettings = request.app.state.settings
    spool = Path(settings.spool_dir or Path(settings.config_path).parent / ".spool")
    for shard in body["shards"]:
        shard["spool"] = _spool_status(spool / shard["name"] / "status.json")
    return ORJSONResponse(body)


def _spool_status(path: Path) -> dict[str, Any] | None:
    """What an ingester on this host says of its spool for one shard (None: no spool here)."""
    try:
        status: dict[str, Any] = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return status


async def pairs(request: Request) -> Response:
    """
    summary: Every known pair with the exchanges that quote it.
    responses:
      200:
        description: Every known pair with the exchanges that quote it.
        content:
          application/json: {schema: {$ref: "#/components/schemas/Pairs"}}
    """
    query_params(request.query_params.multi_items(), ())
    return ORJSONResponse(await _federation(request).pairs())


async def metrics(request: Request) -> Response:
    """
    summary: Prometheus metrics of the router.
    responses:
      200:
        description: The metrics, in Prometheus' text format.
        content:
          text/plain: {schema: {type: string}}
    """
    query_params(request.query_params.multi_items(), ())
    registry = _federation(request).metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    """
    summary: This description.
    responses:
      200:
        description: The OpenAPI 3.1 description of the API.
        content:
          application/json: {schema: {type: object}}
    """
    query_params(request.query_params.multi_items(), ())
    return ORJSONResponse(request.app.state.openapi)


async def pair(request: Request) -> Response:
    """
    summary: One pair's rank and prices, merged from every shard.
    parameters:
      - {$ref: "#/components/parameters/Pair"}
      - {$ref: "#/components/parameters/Exchange"}
      - {$ref: "#/components/parameters/Duration"}
      - {$ref: "#/components/parameters/Strict"}
    responses:
      200:
        description: >
          The pair's standard-deviation rank among all (exchange, pair) series and its
          prices in the window, merged from every shard; partial is true (with the
          missing shard names) when shards that may hold data did not answer.
        content:
          application/json: {schema: {$ref: "#/components/schemas/PairAnswer"}}
      400:
        description: A malformed, unknown or repeated parameter; the body names it.
      404:
        description: No shard holds the pair (on that exchange).
      422:
        description: >
          strict=true and the answer holds more prices than FEDERATION_STRICT_MAX_ROWS
          (ask without strict=true: it streams).
      503:
        description: >
          strict=true and shards were missing; or FEDERATION_RANK_BUILDS rank tables of
          other windows are being built; or FEDERATION_MAX_STREAMS price answers are
          streaming to clients that read (with Retry-After).
    """
    federation = _federation(request)
    settings: RouterSettings = request.app.state.settings
    query = PairQuery.parse(
        request.path_params["pair"],
        request.query_params.multi_items(),
        settings.max_duration.seconds,
    )
    cached = await federation.cached_answer(query)
    if cached is not None:  # holds no shard connection: no stream slot
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
            return Response(await cached.gzipped(), media_type="application/json", headers=headers)
        headers = {"Vary": "Accept-Encoding"}
        return Response(cached.body, media_type="application/json", headers=headers)
    streams: StreamSlots = request.app.state.streams
    slot = streams.acquire(guard_of(request.scope))
    try:
        answer = await federation.pair_answer(query)
    except BaseException:
        slot.release()
        raise

    async def closed() -> None:
        try:
            await answer.aclose()
        finally:
            slot.release()

    return ClosingStream(answer.body(), closed, media_type="application/json")


class PairRoute(Route):
    """``/{pair}``, which never takes a path another route serves: ``GET /write`` is
    that route's 405 (with ``Allow``), not a question about a pair named "write"."""

    def __init__(self, others: list[BaseRoute]) -> None:
        super().__init__("/{pair}", pair)
        self.taken = frozenset(r.path for r in others if isinstance(r, Route))

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get("path") in self.taken:
            return Match.NONE, {}
        return super().matches(scope)


def create_app(
    shard_map: ShardMap | None = None,
    settings: RouterSettings | None = None,
    connect: Connect | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Starlette:
    """The router, with ``settings`` built once by its process (the defaults when None);
    without ``shard_map``, the map is read from its file and watched for changes.
    ``connect`` builds each shard's client (tests put fake shards behind it); by default
    an :class:`InfluxClient` on the lifespan's HTTP client, with the shard's credentials.
    ``clock`` drives the rank refreshes and the shard map checks."""
    settings = settings or RouterSettings()
    from_file = shard_map is None  # only a map read from its file is watched for changes
    shard_map = shard_map or load_shard_map(settings.config_path)
    router_metrics = RouterMetrics()  # the middleware counts into it before the lifespan runs

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        limits = httpx2.Limits(max_connections=100, max_keepalive_connections=50)
        # The streams' own pool, as bounded: 100 connections to the shards at most. Like
        # http_for_shards, it takes nothing from the environment (aiohttp's trust_env would
        # also read ~/.netrc on a worker thread for every request: ~3 ms of CPU an answer).
        connector = aiohttp.TCPConnector(limit=100)
        async with (
            http_for_shards(limits) as http,
            aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar()
            ) as streams,
            AlertsContext.open(settings.alerts) as app.state.alerts,
        ):

            def influx(shard: Shard, database: str) -> ShardClient:
                headers = settings.credentials.headers(shard.name)
                return InfluxClient(
                    shard,
                    http,
                    database,
                    timeout=settings.shard_timeout,
                    headers=headers,
                    streams=streams,
                )

            federation = Federation(
                shard_map,
                connect or influx,
                shard_timeout=settings.shard_timeout,
                deadline_s=settings.deadline_s,
                strict_max_rows=settings.strict_max_rows,
                metrics=router_metrics,
            )
            app.state.federation, app.state.shard_http = federation, http
            app.state.shard_streams = streams
            pool_collector = ShardPoolCollector(lambda: pool_status(http, streams))
            router_metrics.registry.register(pool_collector)
            stop = asyncio.Event()
            write_spool = settings.write_spool_dir or (
                Path(settings.config_path).parent / ".write-spool"
            )
            writes = SpooledWriter(Path(write_spool), shard_map, federation.clients, clock=clock)
            app.state.writes = writes
            tasks = [asyncio.create_task(writes.run(stop))]
            if settings.rank_refresh_s:
                federation.ranks = RankTable(
                    federation.gather_by_shard,
                    refresh_s=settings.rank_refresh_s,
                    max_windows=settings.rank_windows,
                    max_builds=settings.rank_builds,
                    recount_hours=settings.rank_recount_hours,
                    database=shard_map.database,
                    clock=clock,
                )
                tasks.append(asyncio.create_task(federation.ranks.run(stop)))
                if settings.hot_cache_bytes:
                    federation.hot = HotCache(
                        lambda: federation.clients,
                        max_bytes=settings.hot_cache_bytes,
                        refresh_s=settings.rank_refresh_s,
                        shard_timeout=settings.shard_timeout,
                        deadline_s=settings.deadline_s,
                        metrics=router_metrics,
                        clock=clock,
                    )
                    federation.ranks.on_refreshed.append(federation.hot.hours_checked)
                    tasks.append(asyncio.create_task(federation.hot.run(stop)))
            app.state.watcher = None
            if from_file:

                async def set_map(new_map: ShardMap) -> None:
                    await federation.set_map(new_map)
                    writes.set_map(new_map, federation.clients)

                app.state.watcher = MapWatcher(
                    settings.config_path,
                    shard_map,
                    set_map,
                    interval_s=settings.reload_check_s,
                    clock=clock,
                )
                tasks.append(asyncio.create_task(app.state.watcher.run(stop)))
            log.info("router up: %d shards, map %s", len(shard_map.shards), shard_map.version)
            if settings.api.configured:
                admins = ", ".join(settings.api.admins) or "none"
                log.info("API keys: %d (admins: %s)", len(settings.api.keys), admins)
            else:
                log.info(
                    "no FEDERATION_API_KEYS: alert management is accepted from loopback"
                    " clients only"
                )
            try:
                yield
            finally:
                stop.set()
                await asyncio.gather(*tasks)
                router_metrics.registry.unregister(pool_collector)

    routes: list[BaseRoute] = [
        Route("/health", health),
        Route("/ready", ready),
        Route("/shards", shards),
        Route("/pairs", pairs),
        Route("/metrics", metrics),
        Route("/openapi.json", openapi),
        *alert_routes(),  # before the /{pair} catch-all
        *frontdoor_routes(),  # /ping, /query, /write: InfluxDB's own API
        *page_routes(),  # GET / and /static/...: the page
    ]
    routes.append(PairRoute(routes))
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(SendDeadline, timeout_s=settings.send_timeout_s),
            Middleware(RequestMetrics, router_metrics),
            Middleware(UnhandledErrors),
            Middleware(ApiKeyAuth, settings.api, routes),
            Middleware(
                BodyLimits,
                max_bytes=settings.max_body,
                timeout_s=settings.body_timeout_s,
                paths={"/write": (settings.write_max_body, WRITE_LIMIT)},
            ),
        ],
        exception_handlers={APIError: api_error, HTTPException: http_error},
    )
    app.state.settings = settings
    app.state.streams = StreamSlots(settings.max_streams)
    app.state.openapi = document(routes, settings)
    return app
