"""``/ping``, as InfluxDB 1.x answers it: 204 with its version headers, so a client's
health check of "its database" passes against the router."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from federation.router.frontdoor.headers import INFLUX_HEADERS


async def ping(request: Request) -> Response:
    """
    summary: InfluxDB 1.x's /ping.
    responses:
      204:
        description: The router is up (InfluxDB's answer, with X-Influxdb-Version).
    """
    return Response(status_code=204, headers=INFLUX_HEADERS)
