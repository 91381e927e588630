"""The price answers streaming at once, bounded (``FEDERATION_MAX_STREAMS``).

Each ``GET /{pair}`` holds one connection per shard while it streams, and the shard
client's pool is shared by every request, so unbounded streams let a few hundred
clients that never read take every shard connection, and every other answer comes back
partial. Past the limit, a new answer takes the place of the one whose client has been
stalled longest, if that client has left a ``send`` waiting for ``STALLED_S`` or more
(it is abandoned: its shard streams are closed at once); when every streaming client
reads, the new answer is refused with 503 and ``Retry-After``. So clients that read are
served first, and clients that do not cannot keep anyone out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from federation.core.errors import Busy
from federation.router.sending import SendGuard

# A client that has not taken a byte of its answer for this long is stalled (a reading
# client's send waits milliseconds: the server's buffer drains as the client reads).
STALLED_S = 1.0
RETRY_AFTER_S = 1


@dataclass(eq=False)
class Slot:
    guard: SendGuard | None
    _slots: StreamSlots = field(repr=False)

    def release(self) -> None:
        self._slots.held.discard(self)


class StreamSlots:
    def __init__(self, limit: int, *, stalled_s: float = STALLED_S) -> None:
        self.limit = limit
        self.stalled_s = stalled_s
        self.held: set[Slot] = set()

    def acquire(self, guard: SendGuard | None) -> Slot:
        """A slot for one answer (release it once the answer is closed), or Busy."""
        if len(self.held) >= self.limit:
            self._make_room()
        slot = Slot(guard, self)
        self.held.add(slot)
        return slot

    def _make_room(self) -> None:
        now = time.monotonic()
        stalled = [(s.guard.stalled_s(now), s) for s in self.held if s.guard is not None]
        longest, victim = max(stalled, key=lambda pair: pair[0], default=(0.0, None))
        if victim is None or victim.guard is None or longest < self.stalled_s:
            raise Busy(
                f"{self.limit} price answers are streaming; try again shortly",
                limit="FEDERATION_MAX_STREAMS",
                maximum=self.limit,
                retry_after_s=RETRY_AFTER_S,
            )
        victim.guard.abandon(
            f"its client read nothing for {longest:.1f} s while {self.limit} price answers"
            " were streaming"
        )
        victim.release()
