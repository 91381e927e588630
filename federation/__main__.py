"""``python -m federation``: the operator's command line (:mod:`federation.tools.cli`)."""

from __future__ import annotations

import sys

from federation.tools.cli import main

if __name__ == "__main__":
    sys.exit(main())
