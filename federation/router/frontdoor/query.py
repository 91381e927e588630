"""``/query``, as InfluxDB 1.x answers it: ``q`` (statements separated by ``;``),
``db``, ``epoch``, ``chunked``/``chunk_size``, ``pretty`` and ``params``, from the
query string or a form body. A query that cannot be parsed is a 400
``{"error": "error parsing query: ..."}``; a statement's own error is its result's
``error`` inside a 200, as InfluxDB does. Statements run one after another
(:mod:`.run`); times are rendered as ``epoch`` asks, else as RFC3339 with nanoseconds.
"""

from __future__ import annotations

import datetime as dt
import time
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from federation.core.errors import InfluxAPIError
from federation.core.influxql_ast import Select, Show
from federation.core.influxql_ast import Statement as Tree
from federation.core.influxql_parser import parse_query
from federation.core.influxql_scanner import ParseError
from federation.router.frontdoor.headers import INFLUX_HEADERS
from federation.router.frontdoor.run import Runner

EPOCH_DIVISORS = {
    "h": 3_600_000_000_000,
    "m": 60_000_000_000,
    "s": 1_000_000_000,
    "ms": 1_000_000,
    "u": 1_000,
    "ns": 1,
}
DEFAULT_CHUNK_SIZE = 10_000


def rfc3339_nano(ns: int) -> str:
    """A time as InfluxDB writes it (Go's RFC3339Nano: fraction without trailing zeros)."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    text = (dt.datetime(1970, 1, 1) + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "Z"


def _times(result: dict[str, Any], epoch: str | None) -> dict[str, Any]:
    divisor = EPOCH_DIVISORS.get(epoch or "")
    for series in result.get("series", []):
        if series["columns"][:1] != ["time"]:
            continue
        for row in series["values"]:
            row[0] = row[0] // divisor if divisor else rfc3339_nano(row[0])
    return result


async def _params(request: Request) -> dict[str, str]:
    """The query string's parameters, and a POST's url-encoded form (what InfluxDB's
    clients send); the query string wins, as in InfluxDB's ``FormValue``."""
    params = dict(request.query_params)
    content_type = request.headers.get("content-type", "")
    if request.method == "POST" and content_type.startswith("application/x-www-form-urlencoded"):
        body = (await request.body()).decode("utf-8", "replace")
        for key, value in urllib.parse.parse_qsl(body, keep_blank_values=True):
            params.setdefault(key, value)
    return params


def _bind(text: str | None) -> dict[str, object]:
    if not text:
        return {}
    try:
        params = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InfluxAPIError(f"error parsing query parameters: {exc}") from None
    if not isinstance(params, dict):
        raise InfluxAPIError("error parsing query parameters: not an object")
    return params


async def query(request: Request) -> Response:
    """
    summary: InfluxDB 1.x's /query, over every shard as one database.
    parameters:
      - {name: q, in: query, required: true, schema: {type: string, minLength: 1},
         description: InfluxQL statements separated by ;}
      - {name: db, in: query, schema: {type: string}}
      - {name: epoch, in: query, schema: {type: string}}
      - {name: chunked, in: query, schema: {type: string}}
      - {name: chunk_size, in: query, schema: {type: string}}
      - {name: pretty, in: query, schema: {type: string}}
      - {name: params, in: query, schema: {type: string}}
    responses:
      200:
        description: One result per statement; a statement's error is in its result.
      400:
        description: The query cannot be parsed, or q is missing.
        content:
          application/json:
            schema: {$ref: "#/components/schemas/InfluxError"}
    """
    params = await _params(request)
    text = params.get("q", "")
    if not text.strip():
        raise InfluxAPIError('missing required parameter "q"')
    try:
        parsed = parse_query(text, _bind(params.get("params")))
    except ParseError as exc:
        raise InfluxAPIError(f"error parsing query: {exc}") from None
    runner = Runner(
        request.app.state.federation,
        params.get("db"),
        time.time_ns(),
        request.app.state.settings.influx_max_rows,
    )
    epoch = params.get("epoch")
    if params.get("chunked") == "true":
        return StreamingResponse(
            _chunks(runner, parsed.statements, epoch, _chunk_size(params.get("chunk_size"))),
            media_type="application/json",
            headers=INFLUX_HEADERS,
        )
    results = []
    for i, statement in enumerate(parsed.statements):
        results.append({"statement_id": i, **_times(await runner.run(statement), epoch)})
    option = orjson.OPT_INDENT_2 if params.get("pretty") == "true" else 0
    return Response(
        orjson.dumps({"results": results}, option=option | orjson.OPT_SERIALIZE_NUMPY),
        media_type="application/json",
        headers=INFLUX_HEADERS,
    )


def _chunk_size(text: str | None) -> int:
    try:
        size = int(text or DEFAULT_CHUNK_SIZE)
    except ValueError:
        return DEFAULT_CHUNK_SIZE
    return size if size > 0 else DEFAULT_CHUNK_SIZE


# How influxd 1.6 chunks a SHOW: SHOW SERIES as a SELECT (it runs as one); TAG KEYS and
# TAG VALUES a line per measurement; FIELD KEYS a line per measurement, every line but
# the last marked partial; the others (one series) in one line.
_SHOW_LINES = {"tag keys": False, "tag values": False, "field keys": True}


async def _chunks(
    runner: Runner, statements: list[Tree], epoch: str | None, size: int
) -> AsyncIterator[bytes]:
    """InfluxDB's chunked answer: one ``{"results": [...]}`` a line, each holding one
    series or at most ``size`` rows of it (a series split over lines carries
    ``partial``, and so does every line of a statement but its last); SHOW answers as
    :data:`_SHOW_LINES` says."""
    for i, statement in enumerate(statements):
        result = _times(await runner.run(statement), epoch)
        series_list = result.get("series", [])
        by_rows = isinstance(statement, Select) or (
            isinstance(statement, Show) and statement.kind == "series"
        )
        if isinstance(statement, Show) and statement.kind in _SHOW_LINES and series_list:
            marked = _SHOW_LINES[statement.kind]
            for k, series in enumerate(series_list):
                line: dict[str, Any] = {"statement_id": i, "series": [series]}
                if marked and k < len(series_list) - 1:
                    line["partial"] = True
                yield orjson.dumps({"results": [line]}) + b"\n"
            continue
        if not by_rows or not series_list:
            yield orjson.dumps({"results": [{"statement_id": i, **result}]}) + b"\n"
            continue
        pieces: list[dict[str, Any]] = []
        for series in series_list:
            values = series["values"]
            for start in range(0, len(values), size):
                piece = {**series, "values": values[start : start + size]}
                if start + size < len(values):
                    piece["partial"] = True
                pieces.append(piece)
        for k, piece in enumerate(pieces):
            body: dict[str, Any] = {"statement_id": i, "series": [piece]}
            if k < len(pieces) - 1:
                body["partial"] = True
            yield orjson.dumps({"results": [body]}) + b"\n"
