"""The query router: a Starlette app over the federation of shards.

Routes: ``GET /{pair}`` (the original service's endpoint), ``/health`` (the process
lives), ``/ready`` (every shard answers ``/ping``), ``/shards``, ``/pairs``, ``/metrics``,
``/openapi.json`` and the alert subscriptions (``/alerts...``, from :mod:`alerts.api`).
The shared ``httpx.AsyncClient`` and the alerts database belong to the lifespan.
Cross-cutting work is ASGI middleware around the routes: metrics
(:class:`~federation.router.metrics.RequestMetrics`) outside the error path
(:mod:`federation.router.errors`), so a 500 is counted as sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.schemas import SchemaGenerator

from alerts.api import AlertsContext
from alerts.api import routes as alert_routes
from federation import __version__
from federation.core.clock import SYSTEM_CLOCK, Clock
from federation.core.errors import APIError
from federation.core.influx import Connect, InfluxClient, ShardClient
from federation.core.inputs import reject_unknown
from federation.core.mapwatch import MapWatcher
from federation.core.shardmap import Shard, ShardMap, load_shard_map
from federation.router.errors import UnhandledErrors, api_error, http_error
from federation.router.fanout import Federation
from federation.router.metrics import RequestMetrics, RouterMetrics
from federation.router.page import routes as page_routes
from federation.router.params import PairQuery
from federation.router.ranktable import RankTable
from federation.router.settings import RouterSettings

log = logging.getLogger(__name__)

schemas = SchemaGenerator(
    {"openapi": "3.0.0", "info": {"title": "Crypto price federation", "version": __version__}}
)


class ORJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


def _federation(request: Request) -> Federation:
    federation: Federation = request.app.state.federation
    return federation


async def health(request: Request) -> Response:
    """
    responses:
      200:
        description: The router process is alive.
    """
    return ORJSONResponse({"status": "ok", "version": __version__})


async def ready(request: Request) -> Response:
    """
    responses:
      200:
        description: Every shard answers /ping.
      503:
        description: Some shards do not answer; their names are listed.
    """
    gathered = await _federation(request).ready()
    missing = sorted(gathered.missing)
    body = {"ready": not missing, "missing_shards": missing}
    return ORJSONResponse(body, status_code=503 if missing else 200)


async def shards(request: Request) -> Response:
    """
    responses:
      200:
        description: The shard map in force and each shard's state, series and pairs.
    """
    reject_unknown(request.query_params, ())
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
    responses:
      200:
        description: Every known pair with the exchanges that quote it.
    """
    reject_unknown(request.query_params, ())
    return ORJSONResponse(await _federation(request).pairs())


async def metrics(request: Request) -> Response:
    registry = _federation(request).metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    return ORJSONResponse(schemas.get_schema(routes=request.app.routes))


async def pair(request: Request) -> Response:
    """
    parameters:
      - {name: pair, in: path, required: true, schema: {type: string}, example: btcusd}
      - {name: exchange, in: query, schema: {type: string}, example: binance-us}
      - {name: duration, in: query, schema: {type: string, default: -24h}, example: -1h}
      - {name: strict, in: query, schema: {type: boolean, default: false}}
    responses:
      200:
        description: >
          The pair's standard-deviation rank among all (exchange, pair) series and its
          prices in the window, merged from every shard; partial is true (with the
          missing shard names) when shards that may hold data did not answer.
      400:
        description: A malformed parameter; the body names it.
      404:
        description: No shard holds the pair (on that exchange).
      503:
        description: strict=true and shards were missing.
    """
    federation = _federation(request)
    settings: RouterSettings = request.app.state.settings
    query = PairQuery.parse(
        request.path_params["pair"], request.query_params, settings.max_duration.seconds
    )
    answer = await federation.pair_answer(query)
    return StreamingResponse(answer.body(), media_type="application/json")


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
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=50)
        async with (
            httpx.AsyncClient(limits=limits) as http,
            AlertsContext.open(settings.alerts) as app.state.alerts,
        ):

            def influx(shard: Shard, database: str) -> ShardClient:
                headers = settings.credentials.headers(shard.name)
                return InfluxClient(
                    shard, http, database, timeout=settings.shard_timeout, headers=headers
                )

            federation = Federation(
                shard_map,
                connect or influx,
                shard_timeout=settings.shard_timeout,
                deadline_s=settings.deadline_s,
                metrics=router_metrics,
            )
            app.state.federation = federation
            stop = asyncio.Event()
            tasks = []
            if settings.rank_refresh_s:
                federation.ranks = RankTable(
                    federation.gather_answers, refresh_s=settings.rank_refresh_s, clock=clock
                )
                tasks.append(asyncio.create_task(federation.ranks.run(stop)))
            app.state.watcher = None
            if from_file:
                app.state.watcher = MapWatcher(
                    settings.config_path,
                    shard_map,
                    federation.set_map,
                    interval_s=settings.reload_check_s,
                    clock=clock,
                )
                tasks.append(asyncio.create_task(app.state.watcher.run(stop)))
            log.info("router up: %d shards, map %s", len(shard_map.shards), shard_map.version)
            try:
                yield
            finally:
                stop.set()
                await asyncio.gather(*tasks)

    routes = [
        Route("/health", health),
        Route("/ready", ready),
        Route("/shards", shards),
        Route("/pairs", pairs),
        Route("/metrics", metrics, include_in_schema=False),
        Route("/openapi.json", openapi, include_in_schema=False),
        *alert_routes(),  # before the /{pair} catch-all
        *page_routes(),  # GET / and /static/...: the page
        Route("/{pair}", pair),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(RequestMetrics, router_metrics), Middleware(UnhandledErrors)],
        exception_handlers={APIError: api_error, HTTPException: http_error},
    )
    app.state.settings = settings
    return app
