"""``/write``, as InfluxDB 1.x answers it, written as the ingester writes.

The body (line protocol, gzip or not) is read within the request's limits
(:mod:`federation.router.limits` bounds what arrives, :func:`read_body` what gzip
inflates to), checked line by line (:mod:`.lines`), and each good line is dealt to the
owners of its placement key and written by the ingester's own writer
(:class:`ingest.writer.ShardWriter`) with a spool of the router's own: a line is
acknowledged once every owner stored it or it is fsynced in that owner's queue, so a
shard that is down costs no point, and the spool replays it when the shard is back.

Answers: 204; 400 ``unable to parse ...`` when no line is good; 400 ``partial write:
... dropped=N`` when some are (the good ones are written), with the shards' own
partial-write reasons (a field type conflict) passed on; 404 for a database the
federation does not hold; 503 when lines could be neither stored nor spooled (send the
batch again: points stored twice are kept once).
"""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import AsyncIterator

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response

from federation.core.errors import (
    BodyTooLarge,
    InfluxAPIError,
    InfluxNotFound,
    InfluxUnavailable,
)
from federation.core.shardmap import ShardMap
from federation.router.frontdoor.headers import INFLUX_HEADERS
from federation.router.frontdoor.lines import PRECISIONS, Parsed, parse_body
from federation.router.frontdoor.spooled import SpooledWriter
from ingest.writer import WriteReport

WRITE_LIMIT = "FEDERATION_WRITE_MAX_BODY"
DEFAULT_RP = "autogen"  # the retention policy CREATE DATABASE makes, the only one written
_SHARD_REASON = re.compile(r"answered \d{3}: (?:partial write: )?(.*?)(?: dropped=(\d+))?$", re.S)


def influx_error(error: InfluxAPIError) -> InfluxAPIError:
    """``error`` with InfluxDB's version headers, as every answer of the front door."""
    error.headers.update(INFLUX_HEADERS)
    return error


async def write(request: Request) -> Response:
    """
    summary: InfluxDB 1.x's /write, placed and spooled as the ingester writes.
    description: >
      Line protocol (optionally gzip, Content-Encoding gzip), each line written to the
      owners of its placement key (docs/influx-api.md). Needs an API key when keys are
      configured (u/p, basic auth or Authorization Token/Bearer), else a loopback client.
    parameters:
      - {name: db, in: query, required: true, schema: {type: string}}
      - {name: rp, in: query, schema: {type: string}}
      - {name: precision, in: query, schema: {type: string, enum: [n, ns, u, ms, s, m, h]}}
    requestBody:
      content:
        text/plain: {schema: {type: string}}
    responses:
      204:
        description: Every line was stored by its shards or spooled for them.
      400:
        description: >
          No database, a bad parameter, or bad lines (partial write, the good lines
          written).
        content:
          application/json: {schema: {$ref: "#/components/schemas/InfluxError"}}
      401:
        description: Keys are configured and the request has none, or a wrong one.
        content:
          application/json: {schema: {$ref: "#/components/schemas/InfluxError"}}
      403:
        description: No key is configured and the client is not on loopback.
        content:
          application/json: {schema: {$ref: "#/components/schemas/InfluxError"}}
      404:
        description: The database is not the federation's.
        content:
          application/json: {schema: {$ref: "#/components/schemas/InfluxError"}}
      413:
        description: The body, or what gzip inflates it to, is over FEDERATION_WRITE_MAX_BODY.
      503:
        description: Lines could be neither stored nor spooled; send them again.
        content:
          application/json: {schema: {$ref: "#/components/schemas/InfluxError"}}
    """
    writes: SpooledWriter = request.app.state.writes
    shard_map = writes.shard_map
    params = request.query_params
    database = params.get("db", "")
    if not database:
        raise influx_error(InfluxAPIError("database is required"))
    if database != shard_map.database:
        raise influx_error(InfluxNotFound(f'database not found: "{database}"'))
    if params.get("rp", "") not in ("", DEFAULT_RP):
        raise influx_error(InfluxAPIError(f"retention policy not found: {params['rp']}"))
    precision = params.get("precision", "")
    if precision not in PRECISIONS:
        raise influx_error(
            InfluxAPIError(f"precision {precision!r} is not one of n, u, ms, s, m, h")
        )
    limit: int = request.app.state.settings.write_max_body
    body = await read_body(request.stream(), request.headers, limit)
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        raise influx_error(InfluxAPIError(f"the body is not UTF-8: {exc}")) from None
    parsed = parse_body(
        text, precision=precision, now_ns=time.time_ns(), placement_tag=shard_map.placement_tag
    )
    report = WriteReport()
    if parsed.lines:
        try:
            writer = writes.writer
        except OSError as exc:
            message = f"the write spool cannot be opened ({exc}); send them again"
            raise influx_error(InfluxUnavailable(message)) from None
        report = await writer.write_lines(deal(parsed, shard_map))
    answer(parsed, report)
    return Response(status_code=204, headers=INFLUX_HEADERS)


def deal(parsed: Parsed, shard_map: ShardMap) -> dict[str, list[str]]:
    """Each good line to every owner of its placement key, in order."""
    parts: dict[str, list[str]] = {}
    for line, key in zip(parsed.lines, parsed.keys, strict=True):
        for owner in shard_map.owners(key):
            parts.setdefault(owner, []).append(line)
    return parts


def answer(parsed: Parsed, report: WriteReport) -> None:
    """Raise the error the write deserves (nothing for a 204)."""
    if report.lost:
        errors = "; ".join(report.errors[name] for name in sorted(report.lost))
        raise influx_error(
            InfluxUnavailable(
                f"{sum(report.lost.values())} points could be neither stored nor spooled"
                f" ({errors}); send them again"
            )
        )
    reasons = list(parsed.errors)
    dropped = len(parsed.errors)
    seen: set[str] = set()
    for name in sorted(report.failed):  # refused for good by a shard (400, 413)
        match = _SHARD_REASON.search(report.errors.get(name, ""))
        reason = match.group(1) if match else report.errors.get(name, "refused")
        if reason not in seen:
            seen.add(reason)
            reasons.append(reason)
            dropped += int(match.group(2)) if match and match.group(2) else report.failed[name]
    if not reasons:
        return
    if not parsed.lines:
        raise influx_error(InfluxAPIError("\n".join(reasons)))  # nothing written: no "partial"
    text = "\n".join(reasons)
    raise influx_error(InfluxAPIError(f"partial write: {text} dropped={dropped}"))


async def read_body(chunks: AsyncIterator[bytes], headers: Headers, limit: int) -> bytes:
    """The request body, inflated when ``Content-Encoding: gzip``; what it inflates to is
    bounded by ``limit`` as it inflates, so a small bomb never costs more than the limit."""
    encoding = headers.get("content-encoding", "").lower()
    if encoding in ("", "identity"):
        return b"".join([chunk async for chunk in chunks])
    if encoding != "gzip":
        raise influx_error(
            InfluxAPIError(f"Content-Encoding {encoding!r} is not supported; send gzip or none")
        )
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = bytearray()
    try:
        async for chunk in chunks:
            data = chunk
            while data:
                out += inflate.decompress(data, limit + 1 - len(out))
                if len(out) > limit:
                    raise BodyTooLarge(
                        f"the request body inflates to more than {limit} bytes",
                        limit=WRITE_LIMIT,
                        maximum=limit,
                    )
                data = inflate.unconsumed_tail
    except zlib.error as exc:
        raise influx_error(InfluxAPIError(f"the gzip body cannot be read: {exc}")) from None
    if not inflate.eof:
        raise influx_error(InfluxAPIError("the gzip body cannot be read: unexpected EOF"))
    return bytes(out)
