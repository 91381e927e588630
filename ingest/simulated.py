"""A simulated crypto market: the ingester's offline default price source.

It stands in for the Cryptowatch feed the service was built on, so that a cluster runs,
and can be tested and demonstrated, with no network: up to ~20k (exchange, pair) series
named like Cryptowatch's (``kraken``/``btcusd``), chosen by popularity, with real-world
magnitudes (``btcjpy`` in millions, ``adabtc`` ~1e-5). Each asset follows one geometric
random walk in USD, correlated with btc, so a pair's price agrees across exchanges to a
few basis points; 24h volumes drift smoothly and occasionally spike 3-10x for a few
minutes (more often around rare price jumps of a few %), which gives the alert feature
something to find. Everything is vectorised with numpy and deterministic per seed;
``history`` draws exactly what the same sequence of ``snapshot`` calls would.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

SNAPSHOT_COLUMNS: tuple[str, ...] = ("time", "exchange", "pair", "price", "volume")

# Base assets in rough market-cap order (the order is their popularity), with USD prices.
_ASSETS = """
btc:62000 eth:3100 usdt:1 bnb:560 sol:150 usdc:1 xrp:0.55 doge:0.12 ton:5.5 ada:0.45
trx:0.15 avax:28 shib:0.000018 dot:6 link:13 bch:380 near:5 matic:0.55 ltc:75 icp:9
uni:8 dai:1 leo:5.8 etc:22 apt:8 hbar:0.07 xlm:0.1 atom:6.5 fil:4 okb:40 xmr:160
arb:0.8 imx:1.5 stx:1.7 mnt:0.7 cro:0.09 inj:22 rndr:7 op:1.7 vet:0.025 grt:0.18 sui:1
mkr:2000 tao:350 theta:1.3 ar:25 ftm:0.6 pepe:0.00001 wif:2 floki:0.00015 bonk:0.00002
ldo:1.5 algo:0.15 sei:0.35 bsv:50 rune:4 flow:0.6 egld:30 aave:120 qnt:70 axs:5
sand:0.3 mana:0.3 xtz:0.7 eos:0.55 neo:10 kcs:9 gala:0.025 chz:0.07 snx:1.8 ape:0.7
cfx:0.15 mina:0.5 iota:0.15 kava:0.4 xec:0.00003 crv:0.3 zec:30 dash:25 comp:50
1inch:0.3 enj:0.15 bat:0.17 zil:0.015 twt:0.9 gmx:25 rpl:15 lrc:0.15 ksm:20 sushi:0.6
yfi:6000 celo:0.5 one:0.013 qtum:2.5 rvn:0.02 zrx:0.3 ens:18 ankr:0.025 hot:0.0015
iotx:0.03 omg:0.3 waves:1.2 icx:0.15 kda:0.5 dcr:15 sc:0.005 glm:0.3 storj:0.35
band:1.2 skl:0.04 ont:0.18 zen:8 audio:0.15 lsk:0.9 ogn:0.1 uma:2.5 bal:2.5 knc:0.5
ren:0.04 nmr:18 celr:0.012 ctsi:0.15 mask:2.5 jasmy:0.02 api3:1.5 blur:0.2 dydx:1.2
ondo:0.8 jup:0.8 pyth:0.35 wld:2 strk:0.5 tia:6 xdc:0.03 fet:1.3 ocean:0.6 akt:3 tusd:1
"""
_STABLES = frozenset({"usdt", "usdc", "dai", "tusd"})
_FIAT = {"usd": 1.0, "eur": 1.08, "gbp": 1.27, "jpy": 1 / 150, "krw": 1 / 1350, "try": 1 / 33}
# Exchanges by size (weight), each with the quote currencies it lists and their weight.
_EXCHANGES = """
binance 1.0 usdt:1 usdc:.5 btc:.5 eth:.25 eur:.3 try:.3
coinbase-pro .8 usd:1 usdt:.3 eur:.4 gbp:.3 btc:.3 eth:.1
okx .75 usdt:1 usdc:.4 btc:.3 eth:.1 eur:.05
bybit .7 usdt:1 usdc:.4 btc:.15 eth:.1 eur:.05
kraken .6 usd:1 eur:.8 usdt:.3 usdc:.2 gbp:.3 btc:.3 eth:.15 jpy:.05
kucoin .5 usdt:1 usdc:.3 btc:.4 eth:.15 try:.05
bitfinex .45 usd:1 usdt:.5 eur:.2 gbp:.1 jpy:.1 btc:.3 eth:.1
bitstamp .45 usd:1 eur:.7 gbp:.3 usdt:.2 usdc:.2 btc:.3
huobi .45 usdt:1 usdc:.15 btc:.3 eth:.15 try:.05
gateio .45 usdt:1 usdc:.2 btc:.2 eth:.2 try:.05
upbit .45 krw:1 btc:.4 usdt:.3
bitget .35 usdt:1 usdc:.3 btc:.1 eth:.1 eur:.05
cryptocom .35 usd:1 usdt:.8 usdc:.3 btc:.3 eur:.2 gbp:.1
bithumb .35 krw:1 btc:.2
binance-us .35 usd:1 usdt:.7 usdc:.3 btc:.2 eth:.05
gemini .35 usd:1 usdt:.1 eur:.1 gbp:.1 btc:.2 eth:.1
mexc .3 usdt:1 usdc:.2 btc:.1 eth:.05
bitflyer .3 jpy:1 usd:.1 eur:.1 btc:.2
poloniex .2 usdt:1 usdc:.2 btc:.4 eth:.05
bitmex .2 usd:1 usdt:.6 eur:.05 eth:.1
deribit .2 usd:1 usdc:.6 btc:.2 eth:.1
bittrex .15 usd:.8 usdt:1 btc:.5 eth:.2 eur:.1
hitbtc .15 usdt:1 usd:.3 btc:.5 eth:.3 eur:.05
btcturk .15 try:1 usdt:.6 usd:.05 btc:.2
bitvavo .15 eur:1 btc:.2
cexio .12 usd:1 eur:.6 gbp:.3 usdt:.3 btc:.3
okcoin .1 usd:1 eur:.2 usdt:.1 btc:.1
luno .1 eur:.6 gbp:.6 usdc:.4 usdt:.3 btc:.4
zonda .1 eur:1 usd:.6 gbp:.2 usdt:.5 btc:.4
bitso .1 usd:.8 usdt:.3 btc:.3 eth:.1
bitpanda .1 eur:1 usdt:.2 gbp:.2 usd:.1
bitbank .1 jpy:1 btc:.3
coincheck .1 jpy:1 btc:.2
coinone .1 krw:1 btc:.1
liquid .05 jpy:.6 usd:.4 usdt:.3 btc:.3
"""
_MINUTE_MS = 60_000
_POPULARITY_NOISE = 0.6  # log-space jitter of the listing order: which pairs exist varies
_SPIKE_RATE = 1 / (125 * 60)  # per series-minute: ~4 volume spikes an hour per 500 series
_JUMP_RATE = 1 / (120 * 130)  # per asset-minute: ~1 price jump every 2 hours market-wide
_KIMCHI = 0.02  # KRW markets trade at a premium to the rest of the world


@dataclass(frozen=True)
class _Catalogue:
    """Every (exchange, pair) the universe can hold, and every asset's parameters."""

    exchange: npt.NDArray[np.object_]
    pair: npt.NDArray[np.object_]
    base: npt.NDArray[np.intp]
    quote: npt.NDArray[np.intp]
    score: npt.NDArray[np.float64]  # log popularity (higher is listed first)
    usd: npt.NDArray[np.float64]  # anchor USD price per asset
    sigma: npt.NDArray[np.float64]  # log-return volatility per minute per asset
    rho: npt.NDArray[np.float64]  # correlation with btc per asset
    jumps: npt.NDArray[np.bool_]  # whether the asset has occasional price jumps
    btc: int
    krw: int


@functools.cache
def _catalogue() -> _Catalogue:
    bases = [tok.split(":") for tok in _ASSETS.split()]
    names = [b for b, _ in bases] + list(_FIAT)
    usd = np.array([float(p) for _, p in bases] + list(_FIAT.values()))
    index = {name: i for i, name in enumerate(names)}
    # Volatility grows down the market-cap list: btc ~0.07 %/min, small caps ~0.25 %/min.
    rank = np.arange(len(names), dtype=np.float64) / len(bases)
    sigma = 0.0011 + 0.0014 * rank
    rho = np.full(len(names), 0.7)
    jumps = np.ones(len(names), dtype=np.bool_)
    for name, vol in (("btc", 0.0007), ("eth", 0.0009)):
        sigma[index[name]] = vol
    for name in _STABLES | set(_FIAT):
        # Stablecoins and fiat barely move against USD (fiat ~0.5 %/day) and ignore btc.
        i = index[name]
        sigma[i], rho[i], jumps[i] = (2e-5 if name in _STABLES else 1.3e-4), 0.0, False
    sigma[index["usd"]] = 0.0  # the numeraire
    rho[index["btc"]] = 1.0

    def listed(b: int, quote: str) -> bool:
        # Like real listings: ethbtc but not btceth, no stablecoins or sub-cent coins in btc.
        if quote not in ("btc", "eth"):
            return names[b] != quote
        return b > index[quote] and names[b] not in _STABLES and usd[b] >= 0.01

    rows: list[tuple[str, str, int, int, float]] = []
    for line in _EXCHANGES.strip().splitlines():
        exchange, weight, *quotes = line.split()
        for tok in quotes:
            quote, qweight = tok.split(":")
            for b, (base, _) in enumerate(bases):
                if not listed(b, quote):
                    continue
                score = math.log(float(weight) * float(qweight)) - 1.1 * math.log(b + 1)
                rows.append((exchange, base + quote, b, index[quote], score))
    exch, pair, base_i, quote_i, scores = zip(*rows, strict=True)
    return _Catalogue(
        exchange=np.array(exch, dtype=object),
        pair=np.array(pair, dtype=object),
        base=np.array(base_i, dtype=np.intp),
        quote=np.array(quote_i, dtype=np.intp),
        score=np.array(scores, dtype=np.float64),
        usd=usd,
        sigma=sigma,
        rho=rho,
        jumps=jumps,
        btc=index["btc"],
        krw=index["krw"],
    )


MAX_SERIES: int = len(_catalogue().pair)


class SimulatedMarket:
    """Up to ``MAX_SERIES`` simulated (exchange, pair) series; see the module docstring.

    ``snapshot`` and ``history`` advance one shared state: each tick moves the walk by
    the time elapsed since the previous tick (``step_ms`` for the very first one; nothing
    for a time that does not move forward), so a backfill followed by live ticks is one
    continuous path.
    """

    def __init__(self, series: int = 500, seed: int = 0, step_ms: int = 60_000) -> None:
        if not 1 <= series <= MAX_SERIES:
            raise ValueError(f"series must be between 1 and {MAX_SERIES}, got {series}")
        if step_ms <= 0:
            raise ValueError(f"step_ms must be positive, got {step_ms}")
        cat = _catalogue()
        self._cat = cat
        self._n = series
        self._step_ms = step_ms
        # Independent streams, so that how ticks are grouped into chunks cannot change
        # what any of them draws: history() in any chunking equals per-tick snapshots.
        streams = np.random.SeedSequence(seed).spawn(7)
        rng = np.random.default_rng(streams[0])
        self._walk, self._noise, self._spike_u, self._spike_size, self._jump_u = (
            np.random.default_rng(s) for s in streams[1:6]
        )
        self._jump_size = np.random.default_rng(streams[6])

        noisy = cat.score + rng.normal(0.0, _POPULARITY_NOISE, cat.score.size)
        pick = np.argsort(-noisy, kind="stable")[:series]
        self._exchange = cat.exchange[pick]
        self._pair = cat.pair[pick]
        self._base = cat.base[pick]
        self._quote = cat.quote[pick]
        pop = cat.score[pick]
        # Static traits are drawn for the whole catalogue, so a series keeps its character
        # (offset, volume level, waves) whatever the size of the universe around it.
        size = cat.score.size
        # Illiquid markets sit further from the consensus price and are noisier.
        tail = np.clip(-pop / 10.0, 0.0, 1.0)
        self._offset = rng.normal(0.0, 1.0, size)[pick] * (2e-4 + 1e-3 * tail)
        self._offset += np.where(self._quote == cat.krw, _KIMCHI, 0.0)
        self._noise_sd = 1e-4 + 5e-4 * tail
        # 24h volume: ~$3B for binance btcusdt, falling with popularity, in base units.
        usd_volume = 3e9 * np.exp(1.3 * pop + rng.normal(0.0, 0.5, size)[pick])
        self._log_volume = np.log(usd_volume / cat.usd[self._base])
        # Smooth drift of volume: two slow waves (2-8 h and 12-48 h) per series.
        periods = np.stack(
            [rng.integers(2 * 60, 8 * 60, size), rng.integers(12 * 60, 48 * 60, size)]
        )
        self._periods = periods[:, pick].astype(np.int64) * _MINUTE_MS
        amplitudes = np.stack([rng.uniform(0.05, 0.2, size), rng.uniform(0.1, 0.3, size)])
        self._amplitudes = amplitudes[:, pick]
        self._phases = rng.uniform(0.0, 2 * math.pi, (2, size))[:, pick]

        self._logp = np.log(cat.usd)
        self._last_ms: int | None = None
        self._spike_until = np.full(series, np.iinfo(np.int64).min, dtype=np.int64)
        self._spike_mult = np.ones(series)
        self._universe = pd.DataFrame({"exchange": self._exchange, "pair": self._pair})
        self._shift = np.zeros(series)  # per-series log level set by resume()
        self.series, self.seed, self.step_ms = series, seed, step_ms

    @property
    def universe(self) -> pd.DataFrame:
        """One row per series (columns exchange, pair), most popular first."""
        return self._universe.copy()

    def resume(self, last: pd.DataFrame) -> None:
        """Continue from stored prices (columns exchange, pair, price: each series' newest)
        instead of the catalogue's start values: each series' level is shifted so that
        its next tick moves from its stored price. A series without one (the market grew)
        takes the mean shift of its pair's series that have one, so its exchanges agree."""
        key = pd.MultiIndex.from_arrays([self._exchange, self._pair])
        stored = last.groupby(["exchange", "pair"])["price"].last().reindex(key).to_numpy()
        model = self._logp[self._base] - self._logp[self._quote] + self._offset
        shift = pd.Series(np.log(stored.astype("float64")) - model, index=self._pair)
        shift = shift.fillna(shift.groupby(level=0).transform("mean")).fillna(0.0)
        self._shift = shift.to_numpy()

    def snapshot(self, time_ms: int) -> pd.DataFrame:
        """The next tick: one row per series, all stamped ``time_ms``."""
        return self._ticks(np.array([time_ms], dtype=np.int64))

    def history(
        self, start_ms: int, end_ms: int, step_ms: int = 60_000, chunk_points: int = 200_000
    ) -> Iterator[pd.DataFrame]:
        """Ticks at start_ms, start_ms + step_ms, ... < end_ms, in frames of whole ticks.

        Each frame has at most ``chunk_points`` rows (one tick if a tick is larger). The
        market advances as frames are consumed, so stopping early leaves it mid-way.
        """
        if step_ms <= 0:
            raise ValueError(f"step_ms must be positive, got {step_ms}")
        if chunk_points < 1:
            raise ValueError(f"chunk_points must be positive, got {chunk_points}")
        times = np.arange(start_ms, end_ms, step_ms, dtype=np.int64)
        per_frame = max(1, chunk_points // self._n)
        return (self._ticks(times[i : i + per_frame]) for i in range(0, times.size, per_frame))

    def _ticks(self, times: npt.NDArray[np.int64]) -> pd.DataFrame:
        cat, n, steps = self._cat, self._n, times.size
        prev = np.empty_like(times)
        prev[0] = times[0] - self._step_ms if self._last_ms is None else self._last_ms
        prev[1:] = times[:-1]
        minutes = np.maximum(times - prev, 0) / _MINUTE_MS
        self._last_ms = int(times[-1])

        # Asset walks: a btc-correlated normal increment per asset per tick, plus jumps.
        z = self._walk.standard_normal((steps, cat.usd.size))
        z = cat.rho * z[:, [cat.btc]] + np.sqrt(1.0 - cat.rho**2) * z
        inc = z * cat.sigma * np.sqrt(minutes)[:, None]
        p_jump = -np.expm1(-_JUMP_RATE * minutes)[:, None] * cat.jumps
        jumped = self._jump_u.random((steps, cat.usd.size)) < p_jump
        u = self._jump_size.uniform(-1.0, 1.0, int(jumped.sum()))
        inc[jumped] += np.sign(u) * (0.02 + 0.04 * np.abs(u))  # +-2..6 %
        logp = self._logp + np.cumsum(inc, axis=0)
        self._logp = logp[-1].copy()

        noise = self._noise.standard_normal((steps, n)) * self._noise_sd
        level = logp[:, self._base] - logp[:, self._quote] + self._offset + self._shift
        price = np.exp(level + noise)

        waves = (times[:, None, None] % self._periods) / self._periods * (2 * math.pi)
        log_volume = self._log_volume + (self._amplitudes * np.sin(waves + self._phases)).sum(1)
        volume = np.exp(log_volume) * self._spikes(times, minutes, jumped[:, self._base])

        return pd.DataFrame(
            {
                "time": np.repeat(times, n),
                "exchange": np.tile(self._exchange, steps),
                "pair": np.tile(self._pair, steps),
                "price": price.ravel(),
                "volume": volume.ravel(),
            },
            columns=list(SNAPSHOT_COLUMNS),
        )

    def _spikes(
        self,
        times: npt.NDArray[np.int64],
        minutes: npt.NDArray[np.float64],
        jumped: npt.NDArray[np.bool_],
    ) -> npt.NDArray[np.float64]:
        """Volume multipliers per (tick, series): 3-10x for 3-10 minutes after an event."""
        mult = np.where(times[:, None] < self._spike_until, self._spike_mult, 1.0)
        p = -np.expm1(-_SPIKE_RATE * minutes)[:, None]
        # Random bursts, and every market of an asset whose price just jumped.
        events = (self._spike_u.random(mult.shape) < p) | jumped
        rows, cols = np.nonzero(events)
        sizes = self._spike_size.random((rows.size, 2))
        # Events are rare (a few per hour per 500 series), so a loop over them is cheap.
        for row, col, (a, b) in zip(rows.tolist(), cols.tolist(), sizes.tolist(), strict=True):
            if times[row] < self._spike_until[col]:
                continue  # already spiking: the running spike keeps its shape
            factor, until = 3.0 + 7.0 * a, int(times[row]) + int((3 + 7 * b) * _MINUTE_MS)
            end = int(np.searchsorted(times, until))
            mult[row:end, col] = factor
            self._spike_until[col], self._spike_mult[col] = until, factor
        return mult
