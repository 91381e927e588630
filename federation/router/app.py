"""The query router: a Starlette app over the federation of shards.

Routes: ``GET /{pair}`` (the original service's endpoint), ``/health`` (the process
lives), ``/ready`` (every shard answers ``/ping``), ``/shards``, ``/pairs``, ``/metrics``,
``/openapi.json`` and the alert subscriptions (``/alerts...``, from :mod:`alerts.api`).
The shared ``httpx.AsyncClient`` and the alerts database belong to the lifespan.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.schemas import SchemaGenerator

from alerts.api import AlertsContext
from alerts.api import routes as alert_routes
from alerts.settings import AlertSettings
from federation import __version__
from federation.core.clock import SYSTEM_CLOCK, Clock
from federation.core.errors import APIError
from federation.core.inputs import reject_unknown
from federation.core.mapwatch import MapWatcher
from federation.core.shardmap import ShardMap, load_shard_map
from federation.router.fanout import Federation
from federation.router.metrics import RouterMetrics
from federation.router.params import PairQuery
from federation.router.ranktable import RankTable
from federation.router.settings import Settings

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
    settings: Settings = request.app.state.settings
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
    settings: Settings = request.app.state.settings
    query = PairQuery.parse(
        request.path_params["pair"], request.query_params, settings.max_duration.seconds
    )
    answer = await federation.pair_answer(query)
    return StreamingResponse(answer.body(), media_type="application/json")


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return ORJSONResponse(exc.to_json(), status_code=exc.status)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return ORJSONResponse({"error": exc.detail, "code": "http_error"}, status_code=exc.status_code)


async def server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s", request.url.path, exc_info=exc)
    return ORJSONResponse({"error": "internal error", "code": "internal"}, status_code=500)


def _timed(
    name: str, endpoint: Callable[[Request], Awaitable[Response]]
) -> Callable[[Request], Awaitable[Response]]:
    async def wrapped(request: Request) -> Response:
        metrics: RouterMetrics = request.app.state.federation.metrics
        started = time.perf_counter()
        status = 500
        try:
            response = await endpoint(request)
            status = response.status_code
            return response
        except APIError as exc:
            status = exc.status
            raise
        finally:
            metrics.request_seconds.labels(name).observe(time.perf_counter() - started)
            metrics.requests.labels(name, str(status)).inc()

    wrapped.__doc__ = endpoint.__doc__
    return wrapped


def create_app(
    shard_map: ShardMap | None = None,
    settings: Settings | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    alerts: AlertSettings | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Starlette:
    """The router. Without arguments: settings from the environment, the map from its file.
    ``transport`` replaces the network (tests inject faults with it); ``clock`` drives the
    rank refreshes and the shard map checks."""
    settings = settings or Settings.from_env()
    alerts = alerts or AlertSettings.from_env(config_path=settings.config_path)
    from_file = shard_map is None  # only a map read from its file is watched for changes
    shard_map = shard_map or load_shard_map(settings.config_path)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=50)
        async with (
            httpx.AsyncClient(transport=transport, limits=limits) as http,
            AlertsContext.open(alerts) as app.state.alerts,
        ):
            federation = Federation(
                shard_map,
                http,
                shard_timeout=settings.shard_timeout,
                deadline_s=settings.deadline_s,
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
        Route("/health", _timed("health", health)),
        Route("/ready", _timed("ready", ready)),
        Route("/shards", _timed("shards", shards)),
        Route("/pairs", _timed("pairs", pairs)),
        Route("/metrics", metrics, include_in_schema=False),
        Route("/openapi.json", openapi, include_in_schema=False),
        *alert_routes(_timed),  # before the /{pair} catch-all
        Route("/{pair}", _timed("pair", pair)),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={APIError: api_error, HTTPException: http_error, 500: server_error},
    )
    app.state.settings = settings
    app.state.shard_map = shard_map
    return app
