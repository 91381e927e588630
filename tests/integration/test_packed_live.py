"""A real influxd's price answer read from MessagePack (what the router asks for) against
the same answer read from its own JSON: the same elements byte for byte, so every
price's text is the one InfluxDB writes, at the edges of Go's float layout too."""

from __future__ import annotations

import httpx2
import numpy as np
import pytest

from federation.core.influx import is_packed
from federation.core.influxql import prices_range_query
from federation.router.rows import PriceRows, rows_of_chunk
from federation.tools.localcluster import LocalCluster
from tests.integration.conftest import clients_for, shard_map_for

pytestmark = pytest.mark.integration

EDGES = [0.0, -0.0, 1.0, 0.1, 1e-5, 1e-6, 9.99e-7, 1e-7, 1.5e-10, 5e-324, 1e20, 1e21, -2.5e22]
EDGES += [9.999999999999999e20, 123456789012345680000.0, 1.7976931348623157e308, 62052.70425322867]


async def test_packed_answer_reads_as_influxdbs_json(
    cluster: LocalCluster, http: httpx2.AsyncClient
) -> None:
    shard_map = shard_map_for(cluster)
    client = next(iter((await clients_for(shard_map, http)).values()))
    prices = EDGES + np.random.default_rng(7).normal(62_000, 900, 3_000).tolist()
    lines = [f"price,exchange=ex-{i % 7},pair=btcusd price={p!r} {i}" for i, p in enumerate(prices)]
    await client.write("\n".join(lines).encode())
    statement = prices_range_query("btcusd", 0, None)
    answers, forms = [], []
    for read in (client.query_lines, client.query_packed):
        chunks = [c async for c in read(statement, chunk_size=1_000)]
        answers.append(PriceRows.joined([rows_of_chunk(client.name, c) for c in chunks]))
        forms.append({is_packed(c) for c in chunks})
    as_json, as_packed = answers
    assert (forms, len(as_json)) == ([{False}, {True}], len(prices))
    assert as_packed.encoded() == as_json.encoded()
