"""Live tickers from a list of exchanges through ccxt's async API (the ``live`` extra:
``pip install '.[live]'``).

One ccxt instance per exchange, made once and reused (``load_markets`` costs requests
and is cached per instance), closed by :meth:`CcxtSource.aclose`. Exchanges are asked
at once, each under its own deadline, with ccxt's rate limiter on (``enableRateLimit``),
so a slow or failing exchange costs only its own rows: it is counted and logged, and
the tick fails only when every exchange did. Exchanges without ``fetchTickers`` are
asked market by market (the configured symbols, or their spot markets).

Rows are named like the original service's: the exchange id through a small alias
table (ccxt ``binanceus`` is ``binance-us``), the pair from the unified symbol
(``BTC/USD`` is ``btcusd``); derivatives (``BTC/USDT:USDT``) are left out. The price is
the ticker's ``last`` (``close`` when ``last`` is missing), the volume its
``baseVolume``, the time the exchange's ``timestamp`` where it gives one and otherwise
the time of the fetch (Kraken gives none).

``api_urls`` points an exchange at another host (a proxy, a recording in tests): every
URL of its ``urls["api"]`` keeps its path and gets that scheme, host and port.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pandas as pd

from federation.core.clock import now_ms
from federation.core.errors import ConfigError
from ingest.errors import SourceError
from ingest.source import Snapshot, empty_rows

log = logging.getLogger(__name__)

INSTALL_HINT = "the ccxt source needs the ccxt package; fix: pip install '.[live]'"

# ccxt ids whose exchange the original service (Cryptowatch) named differently.
EXCHANGE_IDS = {
    "binanceus": "binance-us",
    "coinbaseexchange": "coinbase-pro",
    "bitfinex2": "bitfinex",
    "htx": "huobi",
    "gate": "gateio",
    "okx": "okx",
}
_NOT_ALNUM = re.compile(r"[^a-z0-9]")


def exchange_id(ccxt_id: str) -> str:
    return EXCHANGE_IDS.get(ccxt_id, ccxt_id)


def pair_id(symbol: str) -> str | None:
    """``BTC/USD`` -> ``btcusd``; None for a derivative or a symbol that is no pair."""
    if ":" in symbol or symbol.count("/") != 1:
        return None
    base, quote = (_NOT_ALNUM.sub("", part.lower()) for part in symbol.split("/"))
    return base + quote if base and quote else None


def rebase_urls(urls: Any, base: str) -> Any:
    """``urls`` (a URL, or a dict of them by API name, nested) with ``base``'s scheme
    and host, paths kept."""
    if isinstance(urls, dict):
        return {key: rebase_urls(value, base) for key, value in urls.items()}
    if not isinstance(urls, str):
        return urls
    target = urlsplit(base)
    parts = urlsplit(urls)
    return urlunsplit(
        (target.scheme, target.netloc, target.path.rstrip("/") + parts.path, parts.query, "")
    )


def _reason(exc: BaseException) -> str:
    import ccxt

    for cls, reason in (
        (ccxt.RateLimitExceeded, "rate_limited"),
        (ccxt.DDoSProtection, "rate_limited"),
        (ccxt.RequestTimeout, "timeout"),
        (ccxt.NetworkError, "unreachable"),
        (ccxt.ExchangeError, "exchange_error"),
        (TimeoutError, "timeout"),
    ):
        if isinstance(exc, cls):
            return reason
    return "bad_payload"  # ccxt fails with KeyError and the like on a malformed body


def _number(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


class CcxtSource:
    name = "ccxt"

    def __init__(
        self,
        exchanges: Sequence[str],
        *,
        symbols: Sequence[str] | None = None,
        api_urls: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
        deadline_s: float = 30.0,
        options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        try:
            import ccxt.async_support as ccxt_async
        except ImportError:
            raise ConfigError(INSTALL_HINT) from None
        if not exchanges:
            raise ConfigError("--exchanges: no exchange given; fix: e.g. --exchanges kraken")
        unknown = [e for e in exchanges if e not in ccxt_async.exchanges]
        if unknown:
            raise ConfigError(
                f"--exchanges: {', '.join(unknown)} not known to ccxt; fix: use ccxt ids such"
                " as kraken, bitstamp, binanceus, coinbaseexchange"
            )
        api_urls = dict(api_urls or {})
        stray = sorted(set(api_urls) - set(exchanges))
        if stray:
            raise ConfigError(
                f"--exchange-url: {', '.join(stray)} is not in --exchanges; fix: add it there"
            )
        self.symbols = list(symbols) if symbols else None
        self.deadline_s = deadline_s
        self.instances: dict[str, Any] = {}
        for ex_id in exchanges:
            config: dict[str, Any] = {"enableRateLimit": True, "timeout": int(timeout_s * 1000)}
            config.update((options or {}).get(ex_id, {}))
            instance = getattr(ccxt_async, ex_id)(config)
            if ex_id in api_urls:
                instance.urls["api"] = rebase_urls(instance.urls["api"], api_urls[ex_id])
            self.instances[ex_id] = instance

    async def aclose(self) -> None:
        await asyncio.gather(*(ex.close() for ex in self.instances.values()))

    async def snapshot(self, tick_ms: int) -> Snapshot:
        problems: Counter[str] = Counter()
        ids = list(self.instances)
        answers = await asyncio.gather(
            *(asyncio.wait_for(self._fetch(i, problems), self.deadline_s) for i in ids),
            return_exceptions=True,
        )
        frames, failures = [], []
        for ex_id, answer in zip(ids, answers, strict=True):
            if isinstance(answer, pd.DataFrame):
                frames.append(answer)
                continue
            if not isinstance(answer, Exception):
                raise answer  # cancellation and the like: not ours to swallow
            reason = _reason(answer)
            problems[f"exchange_{reason}"] += 1
            text = str(answer)[:200] or type(answer).__name__
            failures.append(f"{ex_id}: {reason} ({text})")
            log.warning("ccxt %s: no tickers this tick: %s: %s", ex_id, reason, text)
        if not frames:
            raise SourceError(self.name, "all_exchanges_failed", "; ".join(failures))
        rows = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        return Snapshot(rows, problems)

    async def _fetch(self, ex_id: str, problems: Counter[str]) -> pd.DataFrame:
        ex = self.instances[ex_id]
        if not ex.markets:
            await ex.load_markets()
        symbols = [s for s in self.symbols if s in ex.markets] if self.symbols else None
        if self.symbols and not symbols:
            problems["symbols_not_listed"] += 1
            return empty_rows()
        fetched_ms = now_ms()
        if ex.has.get("fetchTickers"):
            tickers: dict[str, Any] = await ex.fetch_tickers(symbols)
        else:
            wanted = symbols or [s for s, m in ex.markets.items() if m.get("spot")]
            answers = await asyncio.gather(*(ex.fetch_ticker(s) for s in wanted))
            tickers = dict(zip(wanted, answers, strict=True))
        exchange = exchange_id(ex_id)
        times, pairs, prices, volumes = [], [], [], []
        if not tickers:
            problems["exchange_no_tickers"] += 1
            log.warning("ccxt %s: answered no tickers", ex_id)
        for symbol, ticker in tickers.items():
            market = ex.markets.get(symbol)
            if market is None:
                problems["unknown_market"] += 1  # not in load_markets: cannot tell what it is
                continue
            pair = pair_id(symbol) if market.get("spot") else None
            if pair is None:
                problems["not_spot"] += 1
                continue
            last = ticker.get("last")
            price = _number(last if last is not None else ticker.get("close"))
            stamp = ticker.get("timestamp")
            times.append(float(stamp) if isinstance(stamp, int | float) else float(fetched_ms))
            pairs.append(pair)
            prices.append(price)  # missing or not a number: NaN, counted by validate()
            volumes.append(_number(ticker.get("baseVolume")))
        return pd.DataFrame(
            {
                "time": times,
                "exchange": [exchange] * len(pairs),
                "pair": pairs,
                "price": prices,
                "volume": volumes,
            }
        )
