"""Operator tools, the top layer: local influxd shards (``localcluster``), the verified
rebalance (``rebalance``), the command line that runs the router, the local stack
and both of those (``cli``, ``python -m federation``), the ingester process
(``ingester``, ``python -m ingest``) and the settings of the processes they run
(``settings``)."""

from __future__ import annotations
