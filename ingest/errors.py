"""The ingester's errors, under the project's base (the tree is drawn in
:mod:`federation.core.errors`)."""

from __future__ import annotations

from federation.core.errors import FederationError


class SourceError(FederationError):
    """A price source could not give a snapshot (HTTP error, rate limit, timeout, a body
    that is not the expected shape); ``reason`` is a short key for counting."""

    def __init__(self, source: str, reason: str, message: str) -> None:
        super().__init__(f"source {source}: {message}")
        self.source = source
        self.message = message
        self.reason = reason
