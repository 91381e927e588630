"""A source that speaks the Cryptowatch REST format (the original service's feed).

``GET /markets/prices`` gives the last price of every market,
``{"result": {"market:<exchange>:<pair>": price, ...}, "cursor": {...}, "allowance": {...}}``
(older answers leave out the ``market:`` prefix; both are read), and
``GET /markets/summaries`` gives per ``<exchange>:<pair>`` the 24 h summary, from which the
volume (in base units) is taken. Both are asked at once and follow ``cursor.hasMore``.
The public service closed in 2023; the base URL points at whatever serves the format.

What goes wrong is counted, logged by the tick, and never written: a malformed key, a
price that is not a number (or not positive: :func:`ingest.source.validate`), a summary
without its fields. A failed request (HTTP error, ``{"error": ...}``, a body that is not
the format, a timeout, an exhausted allowance: 429, honouring ``Retry-After``) raises
:class:`~ingest.errors.SourceError` when prices cannot be had at all; when only
one of the two endpoints fails, the other still gives what it can (prices without
volume, or the summaries' last prices).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections import Counter
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
        max_pages: int = 100,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.timeout_s = timeout_s
        self.volume = volume
        self.max_pages = max_pages
        self.headers = {"X-CW-API-Key": api_key} if api_key else {}
        self.allowance: dict[str, Any] = {}
        self._blocked_until = 0.0  # monotonic time before which a 429 asked us not to call

    async def aclose(self) -> None:
        return None

    async def snapshot(self, tick_ms: int) -> Snapshot:
        wait = self._blocked_until - time.monotonic()
        if wait > 0:
            raise SourceError(
                self.name, "rate_limited", f"allowance exhausted; next request in {wait:.0f}s"
            )
        problems: Counter[str] = Counter()
        calls = [self._get_all("/markets/prices")]
        if self.volume:
            calls.append(self._get_all("/markets/summaries"))
        answers = await asyncio.gather(*calls, return_exceptions=True)
        prices_answer = answers[0]
        summaries_answer = answers[1] if self.volume else None
        for answer in answers:
            if isinstance(answer, BaseException) and not isinstance(answer, SourceError):
                raise answer
        summaries: dict[tuple[str, str], tuple[float, float]] = {}
        if isinstance(summaries_answer, SourceError):
            problems[f"summaries_{summaries_answer.reason}"] += 1
            log.warning("%s; prices are written without volume", summaries_answer)
        elif isinstance(summaries_answer, dict):
            summaries = self._parse_summaries(summaries_answer, problems)

        if isinstance(prices_answer, SourceError):
            if not summaries:
                raise prices_answer
            problems[f"prices_{prices_answer.reason}"] += 1
            log.warning("%s; using the summaries' last prices", prices_answer)
            keys = list(summaries)
            price = [summaries[k][0] for k in keys]
        else:
            assert isinstance(prices_answer, dict)
            keys, price = self._parse_prices(prices_answer, problems)
        volume = [summaries[k][1] if k in summaries else math.nan for k in keys]
        rows = pd.DataFrame(
            {
                "time": np.full(len(keys), np.nan),  # no time in the format: the tick's
                "exchange": [k[0] for k in keys],
                "pair": [k[1] for k in keys],
                "price": price,
                "volume": volume,
            }
        )
        return Snapshot(rows, problems)

    def _parse_prices(
        self, result: dict[str, Any], problems: Counter[str]
    ) -> tuple[list[tuple[str, str]], list[float]]:
        keys, prices = [], []
        for key, value in result.items():
            match = _KEY.match(key)
            if match is None:
                problems["bad_key"] += 1
                continue
            keys.append((match.group(1), match.group(2)))
            prices.append(_number(value))  # not a number: NaN, counted by validate()
        return keys, prices

    def _parse_summaries(
        self, result: dict[str, Any], problems: Counter[str]
    ) -> dict[tuple[str, str], tuple[float, float]]:
        out: dict[tuple[str, str], tuple[float, float]] = {}
        for key, summary in result.items():
            match = _KEY.match(key)
            if match is None:
                problems["summary_bad_key"] += 1
                continue
            price = summary.get("price") if isinstance(summary, dict) else None
            last = _number(price.get("last")) if isinstance(price, dict) else math.nan
            volume = _number(summary.get("volume")) if isinstance(summary, dict) else math.nan
            if math.isnan(volume) or math.isnan(last):
                problems["summary_missing_field"] += 1
            out[(match.group(1), match.group(2))] = (last, volume)
        return out

    async def _get_all(self, path: str) -> dict[str, Any]:
        """Every page of ``path``'s ``result`` mapping, following the cursor."""
        merged: dict[str, Any] = {}
        params: dict[str, str] = {}
        for _ in range(self.max_pages):
            body = await self._get(path, params)
            result = body.get("result")
            if not isinstance(result, dict):
                raise SourceError(
                    self.name, "bad_shape", f"GET {path}: 'result' is not a mapping of markets"
                )
            merged.update(result)
            cursor = body.get("cursor")
            if not (isinstance(cursor, dict) and cursor.get("hasMore") and cursor.get("last")):
                return merged
            params = {"cursor": str(cursor["last"])}
        log.warning("%s: GET %s has over %d pages; kept those", self.name, path, self.max_pages)
        return merged

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


def _error_text(response: httpx.Response) -> str:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])[:200]
    return str(body)[:200]
