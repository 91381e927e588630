"""Writing one benchmark's section of docs/benchmarks.md, leaving the others as they are."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
IMG = DOC.parent / "img"


def write_section(name: str, markdown: str) -> None:
    """Replace the text between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    block = f"{start}\n{markdown.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    text = (
        pattern.sub(lambda _: block, text) if pattern.search(text) else text + "\n" + block + "\n"
    )
    DOC.write_text(text)


def command(name: str, quick: bool, env: Iterable[str] = ()) -> str:
    """The command line that ran a benchmark: the settings of ``env`` that are set, its
    name, ``--quick``."""
    settings = "".join(f"{var}={os.environ[var]} " for var in env if os.environ.get(var))
    return f"{settings}python -m bench {name}{' --quick' if quick else ''}"
