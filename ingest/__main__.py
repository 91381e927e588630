"""``python -m ingest``: the ingester process. It runs ingest and alerts together, so its
wiring lives above both, in :mod:`federation.tools.ingester`; this launcher keeps the
command's name (the layer contract lists it as its one exception)."""

from __future__ import annotations

import contextlib
import sys

from federation.tools.ingester import main

if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
