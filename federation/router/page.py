"""The page: ``GET /`` serves one HTML file, ``/static/...`` its script, style and the
vendored chart library, all from the package (no CDN, no build step).

The page is a client of the JSON API and nothing more: it reads ``/pairs``,
``/{pair}``, ``/shards`` and ``/alerts...`` as any other client would, so it adds no
route that answers data. The chart library is uPlot 1.6.32 (MIT), vendored from the npm
registry's tarball ``uplot-1.6.32.tgz`` (``dist/uPlot.iife.min.js``, ``dist/uPlot.min.css``
and ``LICENSE``, unchanged) under ``static/vendor/uplot/``: made for time series, 50 kB,
and it draws tens of thousands of points in a few milliseconds.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
STATIC_PATH = "/static"
UPLOT_VERSION = "1.6.32"  # the vendored chart library (static/vendor/uplot/), pinned


async def index(request: Request) -> Response:
    """
    summary: The page (HTML)
    description: >
      The page's query string (view, pair, window) is read by its script, not here, so a
      shared link opens the same view.
    responses:
      200:
        description: The page.
        content:
          text/html: {schema: {type: string}}
    """
    # no-cache: revalidated each load (ETag), so a new release is seen at once.
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


def routes() -> list[BaseRoute]:
    """``GET /`` and the static files, mounted before the router's ``/{pair}`` catch-all."""
    return [
        Route("/", index),
        Mount(STATIC_PATH, StaticFiles(directory=STATIC), name="static"),
    ]
