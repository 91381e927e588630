"""Sharded crypto price federation: the core, the query router and the operator tools.

The project is four layers; each imports only the layers below it (``make lint``
checks the contract in pyproject.toml)::

    federation.tools     operator tools: local shards, rebalance, the CLI (python -m federation)
          │
    federation.router    the Starlette app: GET /{pair}, /shards, /pairs, /metrics, the
          │              rank table, the streamed merge; mounts the alerts API
          │
    ingest │ alerts      the ingester (sources, tick loop, writer, spool) and alerts
          │              (subscriptions, detection, delivery); neither imports the other
          │
    federation.core      what every process uses: shard map, placement, InfluxDB client,
                         the InfluxQL catalogue, line protocol, errors, ids, durations,
                         clock, settings, logging

This module holds only the version, so importing any layer costs nothing else.
"""

from __future__ import annotations

__version__ = "0.1.0"
