"""The core every process uses: shard map and placement, the InfluxDB client and the
shards' credentials, the InfluxQL catalogue, line protocol, the exception tree, ids,
durations, the clock and periodic loops, the settings machinery and logging.

It imports nothing else of the project, so the ingester, alerts, the router and the
operator tools can all stand on it.
"""

from __future__ import annotations
