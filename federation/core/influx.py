"""An async client for one InfluxDB server, over the v1 HTTP API (``/ping``, ``/write``,
``/query``), which InfluxDB 1.x serves natively and 2.x/3.x through their v1 endpoints.

Every failure becomes a :class:`~federation.core.errors.ShardError`: a transport error,
timeout or 5xx is :class:`ShardUnavailable` (retry later), any other 4xx is
:class:`ShardRejected` (retrying cannot help), and an error InfluxDB reports inside a
200 answer is :class:`QueryError`. The ``httpx2.AsyncClient`` is passed in: its owner
(the app's lifespan, the ingester) decides its lifetime and connection limits; so are
the credentials, which the process's settings read from the environment at start.

The transport is httpx2 (httpcore2), not httpx: httpcore 1.0.9 loses a pool slot for
good each time a request is cancelled while it waits for a connection (a burst past the
shard timeout left every slot lost and every later request failing), and httpcore2 has
the fix. The measurement that chose it is in docs/benchmarks.md. A client given an
``aiohttp.ClientSession`` as ``streams`` (the router's) reads its chunked answers
(:meth:`InfluxClient.query_lines`) through it instead: its C parser reads a pair's day
for ~10 ms less CPU than httpx2 when four shards are asked (docs/benchmarks.md).

Callers depend on :class:`ShardClient`, the interface :class:`InfluxClient` implements,
so tests can put a fake shard behind the same calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

import aiohttp
import httpx2 as httpx
import msgpack
import orjson

from federation.core import influxql
from federation.core.credentials import Credentials
from federation.core.errors import QueryError, ShardError, ShardRejected, ShardUnavailable
from federation.core.influxql import Statement
from federation.core.shardmap import Shard, ShardMap
from federation.core.types import Series

log = logging.getLogger(__name__)
JSON = "application/json"
PACKED = "application/x-msgpack"
# A MessagePack chunk's bound while its end is sought: a chunk of 10,000 points of a few
# fields is under 1 MB; past this the shard's answer is refused, not held.
MAX_PACKED = 64 * 1024 * 1024


@dataclass(frozen=True)
class Ping:
    version: str
    latency_s: float


class ShardClient(Protocol):
    """One shard's database, as every caller uses it. Statements come from the
    catalogue (:mod:`federation.core.influxql`); every failure is a ``ShardError``."""

    @property
    def name(self) -> str: ...

    @property
    def shard(self) -> Shard: ...

    @property
    def database(self) -> str: ...

    async def ping(self) -> Ping: ...

    async def write(self, body: bytes, precision: str = "ms") -> None: ...

    async def query(self, statement: Statement, *, epoch: str = "ms") -> list[list[Series]]: ...

    def query_chunks(
        self, statement: Statement, *, epoch: str = "ms", chunk_size: int = 10_000
    ) -> AsyncGenerator[list[Series], None]: ...

    def query_lines(
        self, statement: Statement, *, epoch: str = "ms", chunk_size: int = 10_000
    ) -> AsyncGenerator[bytes, None]: ...

    def query_packed(
        self, statement: Statement, *, epoch: str = "ms", chunk_size: int = 10_000
    ) -> AsyncGenerator[bytes, None]: ...

    async def execute(self, statement: Statement) -> list[list[Series]]: ...

    async def create_database(self) -> None: ...


# Builds the client of one shard's database (the router is given one: tests fake shards).
Connect = Callable[[Shard, str], ShardClient]


class InfluxClient:
    def __init__(
        self,
        shard: Shard,
        http: httpx.AsyncClient,
        database: str,
        *,
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        streams: aiohttp.ClientSession | None = None,
    ) -> None:
        """``headers`` carry the shard's credentials (:meth:`Credentials.headers`);
        ``streams``, when given, carries the chunked answers of :meth:`query_lines`."""
        self.shard = shard
        self.name = shard.name
        self.database = database
        self._http = http
        self._streams = streams
        self._base = shard.url.rstrip("/")
        self._timeout = timeout
        # httpx asks for gzip by default; a shard on a fast link answers faster without.
        self._headers = ({} if shard.gzip else {"Accept-Encoding": "identity"}) | dict(
            headers or {}
        )

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        content: bytes | None = None,
        data: dict[str, str] | None = None,
    ) -> httpx.Response:
        with self._transport_errors(method, path):
            response = await self._http.request(
                method,
                self._base + path,
                params=params,
                content=content,
                data=data,
                headers=self._headers,
                timeout=self._timeout,
            )
        self._check_status(response, method, path)
        return response

    @contextlib.contextmanager
    def _transport_errors(self, method: str, path: str) -> Iterator[None]:
        try:
            yield
        except httpx.TimeoutException:
            raise ShardUnavailable(self.name, f"{method} {path} timed out") from None
        except httpx.TransportError as exc:
            raise ShardUnavailable(self.name, f"{method} {path} failed: {exc!r}") from None

    def _check_status(self, response: httpx.Response, method: str, path: str) -> None:
        if response.status_code >= 400:
            why = _reason(response.content, response.reason_phrase)
            self._refuse(response.status_code, why, method, path)

    def _refuse(self, status: int, why: str, method: str, path: str) -> NoReturn:
        if status >= 500:
            raise ShardUnavailable(self.name, f"{method} {path} answered {status}: {why}")
        raise ShardRejected(self.name, f"{method} {path} answered {status}: {why}", status)

    async def ping(self) -> Ping:
        started = time.perf_counter()
        response = await self._request("GET", "/ping")
        version = response.headers.get("X-Influxdb-Version", "unknown")
        return Ping(version=version, latency_s=time.perf_counter() - started)

    async def write(self, body: bytes, precision: str = "ms") -> None:
        """Write line protocol; returns once the shard has stored it (204)."""
        params = {"db": self.database, "precision": precision}
        await self._request("POST", "/write", params=params, content=body)

    async def query(self, statement: Statement, *, epoch: str = "ms") -> list[list[Series]]:
        """Run read-only InfluxQL; one list of series per statement."""
        params = {"db": self.database, "q": statement.text, "epoch": epoch}
        response = await self._request("GET", "/query", params=params)
        return self._results(response)

    async def query_chunks(
        self, statement: Statement, *, epoch: str = "ms", chunk_size: int = 10_000
    ) -> AsyncGenerator[list[Series], None]:
        """Run one read-only statement with ``chunked=true``: its series arrive a chunk
        at a time (one JSON object per line), so no answer is ever held whole."""
        lines = self.query_lines(statement, epoch=epoch, chunk_size=chunk_size)
        async with contextlib.aclosing(lines):
            async for line in lines:
                yield parse_chunk(self.name, line)

    def query_lines(
        self, statement: Statement, *, epoch: str = "ms", chunk_size: int = 10_000
    ) -> AsyncGenerator[bytes, None]:
        """:meth:`query_chunks` unread: each chunk's line as the shard sent it, for a
        reader that needs no Python object per value (:func:`parse_chunk` reads one)."""
        return self._stream(statement, epoch, chunk_size, JSON)

    def query_packed(
        self, statement: Statement, *, epoch: str = "ms", chunk_size: int = 10_000
    ) -> AsyncGenerator[bytes, None]:
        """:meth:`query_lines` in MessagePack, which InfluxDB makes for ~40 % less CPU
        than JSON (docs/benchmarks.md): each chunk's object as the shard sent it, or its
        JSON line from a shard that answers JSON anyway (:func:`is_packed` tells)."""
        return self._stream(statement, epoch, chunk_size, PACKED)

    async def _stream(
        self, statement: Statement, epoch: str, chunk_size: int, accept: str
    ) -> AsyncGenerator[bytes, None]:
        params = {
            "db": self.database,
            "q": statement.text,
            "epoch": epoch,
            "chunked": "true",
            "chunk_size": str(chunk_size),
        }
        headers = self._headers | {"Accept": accept}
        if self._streams is not None:
            # aclosing: closing this generator closes the stream at once, not at GC.
            streamed = self._stream_through(self._streams, params, headers)
            async with contextlib.aclosing(streamed) as chunks:
                async for chunk in chunks:
                    yield chunk
            return
        with self._transport_errors("GET", "/query"):
            async with self._http.stream(
                "GET",
                self._base + "/query",
                params=params,
                headers=headers,
                timeout=self._timeout,
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    self._check_status(response, "GET", "/query")
                split = _split_for(response.headers.get("content-type", ""))
                async for chunk in split(self.name, response.aiter_bytes()):
                    yield chunk

    async def _stream_through(
        self, streams: aiohttp.ClientSession, params: dict[str, str], headers: dict[str, str]
    ) -> AsyncGenerator[bytes, None]:
        """:meth:`_stream` through aiohttp, its errors as httpx2's become."""
        # As httpx2's timeout: each connect and each read, not the whole answer.
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._timeout, sock_read=self._timeout
        )
        try:
            async with streams.get(
                self._base + "/query", params=params, headers=headers, timeout=timeout
            ) as response:
                if response.status >= 400:
                    body = await response.read()
                    self._refuse(response.status, _reason(body, response.reason), "GET", "/query")
                split = _split_for(response.headers.get("Content-Type", ""))
                async for chunk in split(self.name, response.content.iter_any()):
                    yield chunk
        except TimeoutError:
            raise ShardUnavailable(self.name, "GET /query timed out") from None
        except aiohttp.ClientError as exc:
            raise ShardUnavailable(self.name, f"GET /query failed: {exc!r}") from None

    async def execute(self, statement: Statement) -> list[list[Series]]:
        """Run InfluxQL that changes state (CREATE, DROP, DELETE): POST, as the API asks."""
        data = {"db": self.database, "q": statement.text}
        response = await self._request("POST", "/query", data=data)
        return self._results(response)

    async def create_database(self) -> None:
        await self.execute(influxql.create_database(self.database))

    def _results(self, response: httpx.Response) -> list[list[Series]]:
        return parse_results(self.name, response.content)


def parse_results(
    shard: str, body: bytes, loads: Callable[[bytes], Any] = orjson.loads, form: str = "JSON"
) -> list[list[Series]]:
    """The series of each statement of a shard's answer (JSON, or the ``form`` that
    ``loads`` reads); an error the shard reports raises ``QueryError``, a body that is
    not of its form ``ShardUnavailable``."""
    try:
        answer: dict[str, Any] = loads(body)
    except ValueError:  # orjson's, json's and msgpack's decode errors are ValueErrors
        raise ShardUnavailable(shard, f"answered a body that is not {form}") from None
    if "error" in answer:
        raise QueryError(shard, str(answer["error"]))
    out: list[list[Series]] = []
    for result in answer.get("results", []):
        if "error" in result:
            raise QueryError(shard, str(result["error"]))
        out.append(result.get("series", []))
    return out


def parse_chunk(
    shard: str, line: bytes, loads: Callable[[bytes], Any] = orjson.loads, form: str = "JSON"
) -> list[Series]:
    """The series of one chunk of a ``chunked=true`` answer (one statement's)."""
    results = parse_results(shard, line, loads, form)
    return results[0] if results else []


def http_for_shards(limits: httpx.Limits | None = None) -> httpx.AsyncClient:
    """An HTTP client for the shards. They are reached at their URLs in shards.yaml and
    nothing from the environment (a proxy, ~/.netrc) is used for them, as for webhooks."""
    return httpx.AsyncClient(limits=limits or httpx.Limits(), trust_env=False)


def clients_for(
    shard_map: ShardMap,
    http: httpx.AsyncClient,
    *,
    credentials: Credentials,
    timeout: float = 10.0,
) -> dict[str, InfluxClient]:
    """One client per shard of the map, by shard name, sharing ``http``."""
    return {
        s.name: InfluxClient(
            s, http, shard_map.database, timeout=timeout, headers=credentials.headers(s.name)
        )
        for s in shard_map.shards
    }


async def ensure_databases(
    clients: Mapping[str, ShardClient], timeout_s: float = 60.0, *, required: bool = True
) -> None:
    """Create the database on every shard (idempotent), waiting for shards still starting.
    A shard still failing after ``timeout_s`` raises, unless not ``required``: then it is
    logged and left (the ingester's spool creates it before replaying; a reader sees the
    shard as missing until it is there)."""

    async def one(client: ShardClient) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                await client.create_database()
                return
            except ShardError as exc:
                if time.monotonic() >= deadline:
                    if required:
                        raise
                    log.warning("%s; going on without its database for now", exc)
                    return
                log.info("waiting for %s: %s", client.name, exc)
                await asyncio.sleep(1.0)

    await asyncio.gather(*(one(c) for c in clients.values()))


def is_packed(chunk: bytes) -> bool:
    """Whether a chunk of :meth:`InfluxClient.query_packed` is MessagePack (a map), not
    a JSON line (``{``)."""
    return not chunk.startswith(b"{")


def _split_for(
    content_type: str,
) -> Callable[[str, AsyncIterator[bytes]], AsyncGenerator[bytes, None]]:
    return _objects if content_type.startswith(PACKED) else _lines


async def _objects(shard: str, chunks: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    """The MessagePack objects of a body, one a chunk, as bytes. InfluxDB writes them
    back to back, each a map of "results" first: where those bytes appear again, the
    held bytes are walked once (msgpack's ``skip``) to find where the first object ends,
    rather than every time more of it arrives. Those bytes inside a value (an exchange
    of that name) cost a walk, and the next walk waits until twice as much is held."""
    held = bytearray()
    searched = 1  # no later object starts in held before this
    walk_from = 0  # no walk for a start found before this
    async for chunk in chunks:
        held += chunk
        while (at := held.find(_RESULTS, searched)) >= 0:
            end = _first_end(shard, memoryview(held)[:at]) if at >= walk_from else None
            if end is None:  # not whole yet: those bytes were inside a value
                searched, walk_from = at + 1, max(walk_from, 2 * at)
                continue
            yield bytes(memoryview(held)[:end])
            del held[:end]
            searched, walk_from = 1, 0
        if len(held) > MAX_PACKED:
            raise ShardUnavailable(shard, f"answered a chunk over {MAX_PACKED:,} bytes")
        searched = max(searched, len(held) - len(_RESULTS) + 1)
    while held:  # the last object (or objects of another shape)
        end = _first_end(shard, memoryview(held))
        if end is None:
            raise ShardUnavailable(shard, "answered a MessagePack body cut short")
        yield bytes(memoryview(held)[:end])
        del held[:end]


_RESULTS = b"\x81\xa7results"  # {"results": ...}: how each of InfluxDB's objects starts


def _first_end(shard: str, data: memoryview) -> int | None:
    """Where the first MessagePack object of ``data`` ends; None when it is cut short."""
    walker = msgpack.Unpacker()
    walker.feed(data)
    try:
        walker.skip()
    except msgpack.OutOfData:
        return None
    except ValueError:  # msgpack's format errors
        raise ShardUnavailable(shard, "answered a body that is not MessagePack") from None
    end: int = walker.tell()
    return end


async def _lines(_: str, chunks: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    """The non-blank lines of a body, as bytes (what orjson reads: no text decoding)."""
    held: list[bytes] = []
    async for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            line = b"".join([*held, chunk[start:end]]) if held else chunk[start:end]
            held.clear()
            if line.strip():
                yield line
            start = end + 1
        if start < len(chunk):
            held.append(chunk[start:])
    line = b"".join(held)
    if line.strip():
        yield line


def _reason(content: bytes, phrase: str | None) -> str:
    """The error text of a 1.x (``{"error"}``) or 2.x (``{"code","message"}``) answer."""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        try:  # an answer to Accept: application/x-msgpack
            body = msgpack.unpackb(content)
        except (ValueError, msgpack.UnpackException):
            return content[:200].decode(errors="replace") or phrase or ""
    if isinstance(body, dict):
        return str(body.get("error") or body.get("message") or body)[:500]
    return str(body)[:200]


def parse_series_key(key: str) -> dict[str, str]:
    """The tags of a series key as ``SHOW SERIES`` prints it (``price,exchange=a,pair=b``),
    honouring line protocol's backslash escapes."""
    parts: list[str] = []
    current: list[str] = []
    chars = iter(key)
    for ch in chars:
        if ch == "\\":
            current.append(ch + next(chars, ""))
        elif ch == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    tags: dict[str, str] = {}
    for part in parts[1:]:
        name, _, value = _split_unescaped(part, "=")
        tags[_unescape(name)] = _unescape(value)
    return tags


def _split_unescaped(text: str, sep: str) -> tuple[str, str, str]:
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == sep:
            return text[:i], sep, text[i + 1 :]
        i += 1
    return text, "", ""


def _unescape(text: str) -> str:
    out: list[str] = []
    chars = iter(text)
    for ch in chars:
        out.append(next(chars, "") if ch == "\\" else ch)
    return "".join(out)


@dataclass(frozen=True)
class PoolStatus:
    connections: int  # open to the shards
    in_use: int  # carrying a request now
    waiting: int  # requests queued for a connection


def pool_status(
    http: httpx.AsyncClient, streams: aiohttp.ClientSession | None = None
) -> PoolStatus:
    """What the clients' connection pools hold now, together (a pool that loses slots
    shows here): ``http``'s, and that of ``streams`` when the answers stream through it."""
    pool = http._transport._pool  # type: ignore[attr-defined]
    connections = list(pool.connections)
    in_use = sum(not c.is_idle() for c in connections)
    status = PoolStatus(len(connections), in_use, len(pool._requests))
    if streams is None or not isinstance(streams.connector, aiohttp.BaseConnector):
        return status
    # aiohttp keeps no public count: its connector's own books, as for httpcore's pool.
    connector = streams.connector
    held = len(connector._acquired)
    idle = sum(len(c) for c in connector._conns.values())
    waiting = sum(len(w) for w in connector._waiters.values())
    return PoolStatus(
        status.connections + held + idle, status.in_use + held, status.waiting + waiting
    )
