"""Operator tools, the top layer: local influxd shards (``localcluster``), the verified
rebalance (``rebalance``) and the command line that runs the router, the local stack
and both of those (``cli``, ``python -m federation``)."""

from __future__ import annotations
