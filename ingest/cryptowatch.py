"""A source that speaks the Cryptowatch REST format (the original service's feed).

``GET /markets/prices`` gives the last price of every market,
``{"result": {"market:<exchange>:<pair>": price, ...}, "cursor": {...}, "allowance": {...}}``
(older answers leave out the ``market:`` prefix; both are read; ``index:`` keys, which
real price lists contain, are not markets: counted as ignored, never warned), and
``GET /markets/summaries`` gives per ``<exchange>:<pair>`` the 24 h summary, from which the
volume (in base units) is taken. Both are asked at once and follow ``cursor.hasMore``
(a JSON ``true``, nothing else; a cursor that repeats stops the paging). Ids are
lower-cased before prices and volumes are joined.
The public service closed in 2023; the base URL points at whatever serves the format.

Sources keep what arrived. Prices are written as soon as they are read; volumes only
when the summaries arrived within ``volume_wait_s`` of the tick's start (a slow
``/markets/summaries`` never holds the prices back). A failure while paging keeps the
pages already read and counts the endpoint as incomplete (``prices_incomplete_<reason>``).

What goes wrong is counted, logged by the tick naming the endpoint, and never written:
a malformed key, a price that is not a number (or not positive:
:func:`ingest.source.validate`), a summary without its fields. A failed request (HTTP
error, ``{"error": ...}``, a body that is not the format, a timeout, an exhausted
allowance: 429, honouring ``Retry-After``) raises :class:`~ingest.errors.SourceError`
when prices cannot be had at all; when only one of the two endpoints fails, the other
still gives what it can (prices without volume, or the summaries' last prices).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd

from ingest.errors import SourceError
from ingest.source import Snapshot

log = logging.getLogger(__name__)

# "market:<exchange>:<pair>", or the older "<exchange>:<pair>" (no exchange is called "market").
_KEY = re.compile(r"^(?:market:(?=[^:]+:))?(?!market:)([^:\s]+):([^:\s]+)$")
_NOT_MARKETS = ("index:",)  # keys of other instruments in the same lists
PRICES, SUMMARIES = "/markets/prices", "/markets/summaries"


@dataclass
class _Pages:
    """What paging through one endpoint read, and the error that stopped it early."""

    result: dict[str, Any]
    pages: int
    error: SourceError | None = None


def _number(value: Any) -> float:
    """A JSON number as float; anything else (a string, a bool, null) as NaN."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


class CryptowatchSource:
    name = "cryptowatch"

    def __init__(
        self,
        base_url: str,
        http: httpx.AsyncClient,
        *,
        timeout_s: float = 10.0,
        api_key: str | None = None,
        volume: bool = True,
        volume_wait_s: float | None = None,
        max_pages: int = 100,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.timeout_s = timeout_s
        self.volume = volume
        # How long after the tick's start volumes may still arrive (the ingester passes
        # half the interval); never longer than a request may take.
        self.volume_wait_s = timeout_s if volume_wait_s is None else volume_wait_s
        self.max_pages = max_pages
        self.headers = {"X-CW-API-Key": api_key} if api_key else {}
        self.allowance: dict[str, Any] = {}
        self._blocked_until = 0.0  # monotonic time before which a 429 asked us not to call
        self._warned_cursor: set[str] = set()  # endpoints whose repeating cursor was logged

    async def aclose(self) -> None:
        return None

    async def snapshot(self, tick_ms: int) -> Snapshot:
        wait = self._blocked_until - time.monotonic()
        if wait > 0:
            raise SourceError(
                self.name, "rate_limited", f"allowance exhausted; next request in {wait:.0f}s"
            )
        started = time.monotonic()
        problems: Counter[str] = Counter()
        prices_task = asyncio.create_task(self._get_all(PRICES, problems))
        summaries_task = (
            asyncio.create_task(self._get_all(SUMMARIES, problems)) if self.volume else None
        )
        try:
            prices, prices_error = await _outcome(prices_task)
            summaries: _Pages | None = None
            summaries_error: SourceError | None = None
            if summaries_task is not None:
                # Volumes only within the tick; without prices, the summaries are all there is.
                left = None if prices is None else self.volume_wait_s - (time.monotonic() - started)
                done, _ = await asyncio.wait(
                    {summaries_task}, timeout=None if left is None else max(left, 0.0)
                )
                if done:
                    summaries, summaries_error = await _outcome(summaries_task)
                else:
                    summaries_error = SourceError(
                        self.name,
                        "late",
                        f"GET {SUMMARIES} did not answer within {self.volume_wait_s:g}s",
                    )
        finally:
            for task in (prices_task, summaries_task):
                if task is not None and not task.done():
                    task.cancel()
        ignored: Counter[str] = Counter()
        if prices is None:
            assert prices_error is not None
            if summaries is None or not summaries.result:
                also = f"; {summaries_error.message} too" if summaries_error is not None else ""
                raise SourceError(self.name, prices_error.reason, prices_error.message + also)
            problems[f"prices_{prices_error.reason}"] += 1
            log.warning("%s; using the last prices of %s", prices_error, SUMMARIES)
            parsed = self._parse_summaries(summaries, problems, ignored)
            keys = list(parsed)
            price = [parsed[k][0] for k in keys]
            volume = [parsed[k][1] for k in keys]
        else:
            self._note_incomplete("prices", prices, problems)
            keys, price = self._parse_prices(prices.result, problems, ignored)
            volumes: dict[tuple[str, str], tuple[float, float]] = {}
            if summaries is not None:
                self._note_incomplete("summaries", summaries, problems)
                volumes = self._parse_summaries(summaries, problems, ignored)
            elif summaries_error is not None:
                problems[f"summaries_{summaries_error.reason}"] += 1
                log.warning("%s; prices are written without volume this tick", summaries_error)
            volume = [volumes[k][1] if k in volumes else math.nan for k in keys]
        rows = pd.DataFrame(
            {
                "time": np.full(len(keys), np.nan),  # no time in the format: the tick's
                "exchange": [k[0] for k in keys],
                "pair": [k[1] for k in keys],
                "price": price,
                "volume": volume,
            }
        )
        return Snapshot(rows, problems, ignored)

    def _note_incomplete(self, endpoint: str, pages: _Pages, problems: Counter[str]) -> None:
        if pages.error is None:
            return
        problems[f"{endpoint}_incomplete_{pages.error.reason}"] += 1
        log.warning(
            "%s; kept the %d markets of the %d pages read before it",
            pages.error,
            len(pages.result),
            pages.pages,
        )

    def _market(
        self, key: str, problems: Counter[str], ignored: Counter[str], bad: str
    ) -> tuple[str, str] | None:
        """(exchange, pair) of a key, lower-cased so prices and volumes join whatever the
        case; None for a key that is not a market (counted as ``bad`` or ignored)."""
        match = _KEY.match(key)
        if match is not None:
            return match.group(1).lower(), match.group(2).lower()
        if key.startswith(_NOT_MARKETS):
            ignored["not_market"] += 1
        else:
            problems[bad] += 1
        return None

    def _parse_prices(
        self, result: dict[str, Any], problems: Counter[str], ignored: Counter[str]
    ) -> tuple[list[tuple[str, str]], list[float]]:
        keys, prices = [], []
        for key, value in result.items():
            market = self._market(key, problems, ignored, "bad_key")
            if market is not None:
                keys.append(market)
                prices.append(_number(value))  # not a number: NaN, counted by validate()
        return keys, prices

    def _parse_summaries(
        self, pages: _Pages, problems: Counter[str], ignored: Counter[str]
    ) -> dict[tuple[str, str], tuple[float, float]]:
        out: dict[tuple[str, str], tuple[float, float]] = {}
        for key, summary in pages.result.items():
            market = self._market(key, problems, ignored, "summary_bad_key")
            if market is None:
                continue
            price = summary.get("price") if isinstance(summary, dict) else None
            last = _number(price.get("last")) if isinstance(price, dict) else math.nan
            volume = _number(summary.get("volume")) if isinstance(summary, dict) else math.nan
            if math.isnan(volume) or math.isnan(last):
                problems["summary_missing_field"] += 1
            out[market] = (last, volume)
        return out

    async def _get_all(self, path: str, problems: Counter[str]) -> _Pages:
        """Every page of ``path``'s ``result`` mapping, following the cursor. A failure on
        the first page raises; a later one returns the pages read with the error."""
        pages = _Pages({}, 0)
        params: dict[str, str] = {}
        seen: set[str] = set()
        endpoint = path.rsplit("/", 1)[-1]
        while pages.pages < self.max_pages:
            try:
                body = await self._get(path, params)
                result = body.get("result")
                if not isinstance(result, dict):
                    raise SourceError(
                        self.name, "bad_shape", f"GET {path}: 'result' is not a mapping of markets"
                    )
            except SourceError as exc:
                if not pages.pages:
                    raise
                pages.error = SourceError(
                    self.name, exc.reason, f"{exc.message} (page {pages.pages + 1})"
                )
                return pages
            pages.result.update(result)
            pages.pages += 1
            cursor = body.get("cursor")
            if not isinstance(cursor, dict) or cursor.get("hasMore", False) is False:
                return pages
            more, last = cursor.get("hasMore"), cursor.get("last")
            if more is not True or not isinstance(last, str) or not last:
                problems[f"{endpoint}_bad_cursor"] += 1
                log.warning(
                    "%s: GET %s: cursor %r is not {hasMore: true|false, last: <text>};"
                    " kept the %d pages read",
                    self.name,
                    path,
                    cursor,
                    pages.pages,
                )
                return pages
            if last in seen:
                problems[f"{endpoint}_cursor_repeated"] += 1
                if path not in self._warned_cursor:
                    self._warned_cursor.add(path)
                    log.warning(
                        "%s: GET %s gave cursor %r twice; stopped paging there (counted as"
                        " %s_cursor_repeated, not logged again)",
                        self.name,
                        path,
                        last,
                        endpoint,
                    )
                return pages
            seen.add(last)
            params = {"cursor": last}
        log.warning("%s: GET %s has over %d pages; kept those", self.name, path, self.max_pages)
        return pages

    async def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        url = self.base_url + path
        try:
            response = await self.http.get(
                url, params=params, headers=self.headers, timeout=self.timeout_s
            )
        except httpx.TimeoutException:
            raise SourceError(
                self.name, "timeout", f"GET {path} timed out after {self.timeout_s:g}s"
            ) from None
        except httpx.TransportError as exc:
            raise SourceError(self.name, "unreachable", f"GET {url} failed: {exc!r}") from None
        if response.status_code == 429:
            retry_after = response.headers.get("Retry-After", "")
            if retry_after.isdigit():
                self._blocked_until = time.monotonic() + int(retry_after)
            raise SourceError(
                self.name,
                "rate_limited",
                f"GET {path} answered 429 (allowance exhausted): {_error_text(response)}"
                + (f"; waiting {retry_after}s" if retry_after.isdigit() else ""),
            )
        if response.status_code >= 400:
            raise SourceError(
                self.name,
                f"http_{response.status_code}",
                f"GET {path} answered {response.status_code}: {_error_text(response)}",
            )
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise SourceError(self.name, "bad_json", f"GET {path}: the body is not JSON") from None
        if not isinstance(body, dict):
            raise SourceError(self.name, "bad_shape", f"GET {path}: the body is not an object")
        if "error" in body:
            raise SourceError(self.name, "api_error", f"GET {path}: {str(body['error'])[:200]}")
        self._note_allowance(body.get("allowance"))
        return body

    def _note_allowance(self, allowance: Any) -> None:
        if not isinstance(allowance, dict):
            return
        self.allowance = allowance
        cost, remaining = _number(allowance.get("cost")), _number(allowance.get("remaining"))
        if remaining < 10 * cost:
            log.warning(
                "%s: allowance nearly spent (%g left, %g per call)", self.name, remaining, cost
            )


async def _outcome(task: asyncio.Task[_Pages]) -> tuple[_Pages | None, SourceError | None]:
    """A paging task's pages, or the SourceError it raised (any other error propagates)."""
    try:
        return await task, None
    except SourceError as exc:
        return None, exc


def _error_text(response: httpx.Response) -> str:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])[:200]
    return str(body)[:200]
