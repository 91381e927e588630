"""One pair's answer to ``GET /{pair}``: the head (pair, rank, duration), known before
the first byte is sent; the prices, which stream from the merge as they arrive; and
whether the answer is partial, known only at the end and so written last. An answer
that ends partial is counted and logged once, as one WARNING naming every shard it
lacks and why.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import orjson

from federation.core.errors import AnswerTooLarge
from federation.core.timefmt import iso_time
from federation.router.metrics import RouterMetrics
from federation.router.params import PairQuery
from federation.router.rows import PriceRows
from federation.router.stream import MergedPrices

log = logging.getLogger(__name__)


def shards_and_why(missing: Mapping[str, str]) -> str:
    return ", ".join(f"{name} ({why})" for name, why in sorted(missing.items()))


def ended_partial(metrics: RouterMetrics, answer: str, missing: Mapping[str, str]) -> None:
    """Count an answer sent partial, and say so once, naming its missing shards and why."""
    metrics.partial_answers.inc()
    log.warning("partial answer to %s: missing %s", answer, shards_and_why(missing))


def answer_head(
    q: PairQuery, rank: tuple[int, int] | None, rank_as_of: int | None
) -> dict[str, Any]:
    """What an answer says before its prices: the pair, its rank and as of when."""
    head: dict[str, Any] = {
        "pair": q.pair,
        "rank": None if rank is None else f"{rank[0]}/{rank[1]}",
        "duration": str(q.duration),
    }
    if rank_as_of is not None:
        head["rank_as_of"] = iso_time(rank_as_of)
    return head


def opening(head: Mapping[str, Any]) -> bytes:
    """The answer's bytes up to its first price."""
    return orjson.dumps(head)[:-1] + b',"prices":['


def closing(missing: Mapping[str, str]) -> bytes:
    """The answer's bytes after its last price: whether it is partial, and why."""
    return b"]," + orjson.dumps({"partial": bool(missing), "missing_shards": sorted(missing)})[1:]


class PairAnswer:
    """The head of a pair's answer, known before the first byte is sent, and its prices,
    which stream; whether it is partial is known at the end and comes last."""

    def __init__(
        self,
        q: PairQuery,
        rank: tuple[int, int] | None,
        rank_as_of: int | None,
        rank_missing: dict[str, str],
        owners: list[str],
        merged: MergedPrices,
        first: PriceRows | None,
        rest: AsyncGenerator[PriceRows, None],
        metrics: RouterMetrics,
    ) -> None:
        self.request = f"GET /{q.pair}"
        self.head = answer_head(q, rank, rank_as_of)
        self._rank_missing = rank_missing
        self._owners = owners
        self._merged = merged
        self._pending: list[PriceRows] = [first] if first else []
        self._rest = rest
        self._metrics = metrics

    def missing(self) -> dict[str, str]:
        """Shards whose absence may have changed this answer (so far), and why each is
        missing."""
        missing = dict(self._rank_missing)
        if all(name in self._merged.missing for name in self._owners):
            missing.update(self._merged.missing)
        return missing

    async def read_all(self, max_rows: int) -> None:
        """Read the rest before sending (strict=true), holding at most ``max_rows``
        prices: past them the answer is refused rather than held whole in memory."""
        held = sum(len(batch) for batch in self._pending)
        while held <= max_rows:
            batch = await anext(self._rest, None)
            if batch is None:
                return
            self._pending.append(batch)
            held += len(batch)
        raise AnswerTooLarge(
            f"a strict=true answer holds at most {max_rows} prices and this one has more:"
            " narrow duration or exchange, or ask without strict=true (it streams)",
            limit="FEDERATION_STRICT_MAX_ROWS",
            maximum=max_rows,
        )

    async def aclose(self) -> None:
        """Close the shard streams, whether or not the body was sent (or begun)."""
        try:
            await self._rest.aclose()
        finally:
            await self._merged.aclose()

    async def body(self) -> AsyncGenerator[bytes, None]:
        yield opening(self.head)
        separator = b""
        try:
            for batch in self._pending:
                yield separator + batch.encoded()
                separator = b","
            async for batch in self._rest:
                yield separator + batch.encoded()
                separator = b","
        finally:
            await self._merged.aclose()
        missing = self.missing()
        if missing:
            ended_partial(self._metrics, self.request, missing)
        yield closing(missing)
