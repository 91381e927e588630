"""The spool's files: written durably (whole or not at all) and read tolerantly (a torn
tail is cut, never a reason to stop). :mod:`ingest.spool` decides what they hold."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import BinaryIO

DEAD_HEADER = re.compile(rb"^# dead-letter \S+ seq=\S+ points=(\d+) ")


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def private_dir(directory: Path) -> None:
    """``directory`` (made if missing) readable by its owner only: batches hold every
    price and volume written, and only the ingester and the router read them."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)


def private_file(path: Path, *, append: bool = False) -> BinaryIO:
    """``path`` opened for writing, created readable by its owner only."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    return os.fdopen(os.open(path, flags, 0o600), "ab" if append else "wb")


def write_durably(path: Path, data: bytes) -> None:
    """``data`` at ``path`` whole or not at all: a failed write leaves no ``.tmp``."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with private_file(tmp) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.rename(path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def append_durably(path: Path, data: bytes) -> None:
    """Append ``data`` whole or not at all: a failed append is cut off again, so the
    next one does not run on from a torn line."""
    with private_file(path, append=True) as f:
        size = f.seek(0, os.SEEK_END)
        try:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        except OSError:
            with contextlib.suppress(OSError):
                f.truncate(size)
            raise


def cut_torn(data: bytes) -> tuple[bytes, int]:
    """``data`` up to its last newline, and how many bytes of torn tail were cut."""
    if not data or data.endswith(b"\n"):
        return data, 0
    keep = data.rfind(b"\n") + 1
    return data[:keep], len(data) - keep


def ends_whole(path: Path) -> bool:
    """Whether the file is not empty and ends with a newline (read: its last byte)."""
    with path.open("rb") as f:
        if f.seek(0, os.SEEK_END) == 0:
            return False
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def cut_file_tail(path: Path) -> tuple[bytes, int]:
    """The file's whole lines, its torn tail (if any) cut off on disk; bytes cut."""
    with path.open("r+b") as f:
        whole, cut = cut_torn(f.read())
        if cut:
            f.truncate(len(whole))
            os.fsync(f.fileno())
    return whole, cut


def dead_letter_figures(data: bytes) -> tuple[int, int, int]:
    """(batches, points, headers that cannot be read) of a dead-letter file's text."""
    batches = points = unreadable = 0
    for line in data.splitlines():
        if not line.startswith(b"# dead-letter "):
            continue
        batches += 1
        header = DEAD_HEADER.match(line)
        if header is None:
            unreadable += 1
        else:
            points += int(header.group(1))
    return batches, points, unreadable
