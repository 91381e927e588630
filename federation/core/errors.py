"""The project's one exception tree, drawn here once. The base and the errors every
layer shares live in this module; each package adds its own under the base, in its
``errors`` module::

    FederationError                       federation.core.errors
    ├── ConfigError              bad shards.yaml or settings: names the key and the fix
    ├── APIError                 carries .status; the router's one handler turns it into JSON
    │   ├── BadParameter         400, names the parameter
    │   ├── Unauthorized         401 with WWW-Authenticate: Bearer, a wrong or missing key
    │   ├── Forbidden            403, no key configured and the client is not on loopback
    │   ├── NotFound             404 (also what another key's subscription looks like)
    │   ├── ShardsUnavailable    503, strict mode with shards missing
    │   ├── LimitExceeded        a request passed a limit; .limit names its setting
    │   │   ├── BodyTooLarge     413, a request body over FEDERATION_MAX_BODY
    │   │   ├── BodyTimeout      408, a request body slower than FEDERATION_BODY_TIMEOUT
    │   │   ├── LimitReached     409, a count of subscriptions at its setting's maximum
    │   │   ├── AnswerTooLarge   422, a strict=true answer over FEDERATION_STRICT_MAX_ROWS
    │   │   └── Busy             503 with Retry-After, too much on-demand work under way
    │   └── InfluxAPIError       the InfluxDB-compatible front door's errors, in InfluxDB's
    │       │                    own shape {"error": "..."} with InfluxDB's status (400)
    │       ├── InfluxUnauthorized   401 "authorization failed": a missing or wrong key
    │       ├── InfluxForbidden      403, /write from a non-loopback client without keys
    │       ├── InfluxNotFound       404, a database the federation does not hold
    │       └── InfluxUnavailable    503, lines neither stored nor spooled: send them again
    ├── ShardError               carries .shard (the shard's name)
    │   ├── ShardUnavailable     connect error, timeout, 5xx: worth retrying later
    │   ├── ShardRejected        4xx on write/query (bad line, missing database): futile to retry
    │   └── QueryError           InfluxDB answered 200 with ``results[i].error``
    ├── SourceError                       ingest.errors
    │                            a price source gave nothing usable this tick; .source, .reason
    └── AlertsError                       alerts.errors
        ├── TargetRefused        a webhook address in a refused network (private, loopback, ...)
        ├── DeliveryFailed       one delivery attempt failed; .permanent: retrying is futile
        └── TooManySubscriptions a subscription limit reached (the API answers LimitReached)
"""

from __future__ import annotations

from typing import Any


class FederationError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(FederationError):
    """A configuration file or setting is wrong; the message names the key and the fix."""


class APIError(FederationError):
    status: int = 500
    code: str = "error"
    headers: dict[str, str] = {}  # noqa: RUF012 (the kind's own; each error copies them)

    def __init__(self, message: str, *, parameter: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.parameter = parameter
        self.extra = extra
        # Sent with the JSON: the kind's (WWW-Authenticate), then this error's own
        # (Retry-After, Connection).
        self.headers = dict(self.headers)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message, "code": self.code}
        if self.parameter is not None:
            body["parameter"] = self.parameter
        body.update(self.extra)
        return body


class BadParameter(APIError):
    status = 400
    code = "bad_parameter"


class Unauthorized(APIError):
    status = 401
    code = "unauthorized"
    headers = {"WWW-Authenticate": "Bearer"}  # noqa: RUF012


class Forbidden(APIError):
    status = 403
    code = "forbidden"


class NotFound(APIError):
    status = 404
    code = "not_found"


class ShardsUnavailable(APIError):
    status = 503
    code = "shards_unavailable"


class LimitExceeded(APIError):
    """A request passed one of the router's limits. The JSON names the limit (its
    setting) and its value: ``{"error", "code": "limit_exceeded", "limit", "max"}``."""

    code = "limit_exceeded"

    def __init__(self, message: str, *, limit: str, maximum: float, **extra: Any) -> None:
        super().__init__(message, limit=limit, max=maximum, **extra)
        self.limit = limit


class LimitReached(LimitExceeded):
    """A count the service bounds (subscriptions per key, in total) is at its setting's
    maximum: nothing more is taken until one is deleted."""

    status = 409
    code = "limit_reached"


class BodyTooLarge(LimitExceeded):
    """The request body is larger than the limit; the connection is closed after the
    answer, so the rest of the body is never read."""

    status = 413

    def __init__(self, message: str, *, limit: str, maximum: float) -> None:
        super().__init__(message, limit=limit, maximum=maximum)
        self.headers["Connection"] = "close"


class BodyTimeout(LimitExceeded):
    """The request body did not arrive in time; the connection is closed after the answer."""

    status = 408

    def __init__(self, message: str, *, limit: str, maximum: float) -> None:
        super().__init__(message, limit=limit, maximum=maximum)
        self.headers["Connection"] = "close"


class AnswerTooLarge(LimitExceeded):
    """An answer that must be read whole before it is sent (``strict=true``) is larger
    than the limit; the same request without ``strict=true`` streams."""

    status = 422


class Busy(LimitExceeded):
    """Too much work of one kind is under way; the same request may work a moment later."""

    status = 503

    def __init__(self, message: str, *, limit: str, maximum: float, retry_after_s: int) -> None:
        super().__init__(message, limit=limit, maximum=maximum)
        self.headers["Retry-After"] = str(retry_after_s)


class InfluxAPIError(APIError):
    """An error of the InfluxDB-compatible front door (``/ping``, ``/query``, ``/write``),
    rendered as InfluxDB 1.x renders it: ``{"error": "..."}`` with InfluxDB's status, so
    its clients (the influx CLI, Grafana, client libraries) read it as they would from
    InfluxDB itself."""

    status = 400
    code = "influx_error"

    def to_json(self) -> dict[str, Any]:
        return {"error": self.message}


class InfluxUnauthorized(InfluxAPIError):
    """Credentials missing or not a configured key; influxd's own words, whatever the
    reason, so an answer never tells a key that is close from one that is absent."""

    status = 401

    def __init__(self) -> None:
        super().__init__("authorization failed")


class InfluxForbidden(InfluxAPIError):
    status = 403


class InfluxNotFound(InfluxAPIError):
    status = 404


class InfluxUnavailable(InfluxAPIError):
    """Some lines could be neither stored by their shards nor spooled on disk: the
    client should send the batch again (points already stored are kept once)."""

    status = 503


class ShardError(FederationError):
    def __init__(self, shard: str, message: str) -> None:
        super().__init__(f"shard {shard}: {message}")
        self.shard = shard


class ShardUnavailable(ShardError):
    """The shard could not answer (down, timed out, 5xx); the same request may work later."""


class ShardRejected(ShardError):
    """The shard refused the request for a reason retrying will not fix (4xx)."""

    def __init__(self, shard: str, message: str, status: int) -> None:
        super().__init__(shard, message)
        self.status = status


class QueryError(ShardError):
    """InfluxDB reported an error inside a 200 answer (``results[i].error``)."""
