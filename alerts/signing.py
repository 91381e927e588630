"""The webhook signature: an HMAC-SHA256 over the timestamp and the exact body, keyed by
the subscription's secret, so a receiver can tell our alerts from forgeries and replays.

Header: ``X-Alert-Signature: t=<unix seconds>,v1=<hex digest>``, the digest taken over
``f"{t}."`` followed by the raw body bytes. Receivers recompute it with their secret,
compare in constant time, and refuse timestamps too far from their clock.
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "X-Alert-Signature"
TOLERANCE_S = 300


def signature(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str,
    body: bytes,
    header: str,
    *,
    now: float | None = None,
    tolerance_s: int = TOLERANCE_S,
) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` within ``tolerance_s`` of now."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = signature(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))
