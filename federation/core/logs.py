"""Logging set-up shared by the command-line entry points."""

from __future__ import annotations

import logging


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # httpx logs one INFO line per request: at a tick a second it would drown the rest.
    logging.getLogger("httpx").setLevel(logging.WARNING)
