"""The rows a statement's raw read may bring into the router
(``FEDERATION_INFLUX_MAX_ROWS``), every shard together."""

from __future__ import annotations

import contextlib

from federation.core.influx import ShardClient
from federation.core.influxql import Statement
from federation.core.types import Series


class RowBudget:
    """The rows the shards' answers to one statement may bring into the router, every
    shard together: their answers are read a chunk at a time and the reading stops once
    the budget is spent, so a statement selecting the whole database costs at most this
    many rows of memory before it is refused with ``message``."""

    def __init__(self, max_rows: int, message: str) -> None:
        self.left = max_rows
        self.message = message

    @property
    def spent(self) -> bool:
        return self.left < 0

    async def read(self, client: ShardClient, statement: Statement) -> list[Series]:
        """One shard's series, their chunks joined, until the budget is spent."""
        series: list[Series] = []
        chunks = client.query_chunks(statement, epoch="ns", chunk_size=CHUNK_ROWS)
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                for part in chunk:
                    self.left -= len(part.get("values") or [])
                    last = series[-1] if series else None
                    if last is not None and last.get("partial") and _same(last, part):
                        last["values"] = [*last["values"], *(part.get("values") or [])]
                        last["partial"] = part.get("partial", False)
                    else:
                        series.append({**part})
                if self.spent:
                    break
        for one in series:
            one.pop("partial", None)
        return series


CHUNK_ROWS = 10_000  # influxd's default chunk


def _same(a: Series, b: Series) -> bool:
    return a.get("name") == b.get("name") and a.get("tags") == b.get("tags")
