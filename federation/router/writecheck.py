"""Whether points may have landed in time the rank table already read, told by the
shards' own write counters instead of a count of every held hour.

Late points (a spool replaying, a backfill, a rebalance copying) land in minutes the
rank table read long ago. Counting the points of every held hour finds them, but costs
a scan of the whole window on every shard. Each shard's InfluxDB counts the points it
was written (``writePointsOk`` of ``SHOW STATS``), so a refresh compares, per shard,
how far the counter moved with what it found: the points of the minutes it read for the
first time, and the change in the points newer than them (the *slack*: ticks already
written past the minute the table is as of). When the counter moved by more, the extra
points went somewhere already read (or rewrote stored ones) and the table asks for the
full count; otherwise nothing was missed.

The counter and the points cannot be read at the same instant. The counter is read
first, so a point written in between is found before it is counted: the account is
short for one refresh (``excess`` below zero) and even at the next; it can hide late
points for that one refresh, never longer. The full count every ``recount_hours`` is the net
under that. A counter that went back (a restarted server), a shard that did not answer,
or a server that refuses ``SHOW STATS`` (authentication without admin rights) all mean
"count everything".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from federation.core.types import Series

WRITTEN = "writePointsOk"


def points_written(answer: list[list[Series]], database: str | None) -> int | None:
    """The points ``database``'s storage shards were written (all databases' when None),
    from an answer to :func:`~federation.core.influxql.write_stats_query`; None when the
    answer has no such counter."""
    total, found = 0, False
    for series in answer[0] if answer else []:
        if series.get("name") != "shard" or WRITTEN not in series["columns"]:
            continue
        if database is not None and series.get("tags", {}).get("database") != database:
            continue
        column = series["columns"].index(WRITTEN)
        total += sum(int(row[column] or 0) for row in series["values"])
        found = True
    return total if found else None


class WriteCheck:
    """Per shard: the counter, the slack and the running excess of the last refresh."""

    def __init__(self) -> None:
        self._written: dict[str, int] = {}
        self._slack: dict[str, int] = {}
        self._excess: dict[str, int] = {}
        self.trusted = False  # True once a full count set the account

    def account(
        self,
        shards: Iterable[str],
        written: Mapping[str, int | None],
        found: Mapping[str, int],
        slack: Mapping[str, int | None],
    ) -> bool:
        """Take one refresh's figures per shard (``found``: points of the minutes read for
        the first time); True when points may have landed in what was read before."""
        suspect = not self.trusted
        before_written, before_slack = self._written, self._slack
        self._written, self._slack = {}, {}
        for name in shards:
            now_written, now_slack = written.get(name), slack.get(name)
            if now_written is None or now_slack is None:
                suspect = True
                continue
            self._written[name], self._slack[name] = now_written, now_slack
            if name not in before_written or now_written < before_written[name]:
                suspect = True
                continue
            moved = now_written - before_written[name]
            expected = found.get(name, 0) + now_slack - before_slack[name]
            self._excess[name] = self._excess.get(name, 0) + moved - expected
            suspect = suspect or self._excess[name] > 0
        return suspect

    def settled(self, complete: bool) -> None:
        """A full count compared everything held: start the account again (trusted only
        when every shard answered it)."""
        self._excess = {}
        self.trusted = complete
