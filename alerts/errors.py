"""The alerts feature's errors, under the project's base (the tree is drawn in
:mod:`federation.core.errors`)."""

from __future__ import annotations

from federation.core.errors import FederationError


class AlertsError(FederationError):
    """Base of the alerts feature's errors."""


class TargetRefused(AlertsError):
    """A webhook URL resolves to an address alerts may not be sent to (private, loopback,
    link-local, ...) and no ``ALERTS_ALLOW_NETWORKS`` entry permits it."""


class DeliveryFailed(AlertsError):
    """One attempt to deliver an alert failed; retried later unless ``permanent``."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class TooManySubscriptions(AlertsError):
    """A subscription limit was reached: ``which`` is ``per_key`` or ``total``."""

    def __init__(self, which: str, limit: int) -> None:
        super().__init__(f"the {which} subscription limit ({limit}) is reached")
        self.which = which
        self.limit = limit
