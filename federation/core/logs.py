"""Logging of every process (router, ingester, tools), set up here once.

One format, ``FORMAT``, for our loggers and for uvicorn's (``uvicorn.error``,
``uvicorn.access``): one handler on the root logger writes every line, and uvicorn's
loggers hand their records to it instead of keeping handlers of their own (whose
format differs and colours lines with ANSI codes on a terminal).
"""

from __future__ import annotations

import logging
from typing import Any

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def setup_logging(level: str) -> None:
    # basicConfig leaves a root that already has handlers as it is (pytest's capture).
    logging.basicConfig(level=level.upper(), format=FORMAT)
    # httpx logs one INFO line per request: at a tick a second it would drown the rest.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def uvicorn_log_config(level: str) -> dict[str, Any]:
    """uvicorn's ``log_config`` (a :func:`logging.config.dictConfig` dict): its loggers
    without handlers, passing records to the root's from :func:`setup_logging`."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {
            name: {"handlers": [], "propagate": True, "level": level.upper()}
            for name in UVICORN_LOGGERS
        },
    }
