"""Sharded crypto price federation: shard map, InfluxDB client and query router."""

from __future__ import annotations

__version__ = "0.1.0"
