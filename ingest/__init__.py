"""The ingester: sources, the tick loop and shard-aware batched writes."""

from __future__ import annotations
