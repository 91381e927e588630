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
    │   ├── LimitReached         409, names the setting whose limit was reached
    │   └── ShardsUnavailable    503, strict mode with shards missing
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
    headers: dict[str, str] = {}  # noqa: RUF012 (read-only, sent with the answer)

    def __init__(self, message: str, *, parameter: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.parameter = parameter
        self.extra = extra

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


class LimitReached(APIError):
    """A limit of the service was reached; ``limit`` names its setting, ``max`` its value."""

    status = 409
    code = "limit_reached"


class NotFound(APIError):
    status = 404
    code = "not_found"


class ShardsUnavailable(APIError):
    status = 503
    code = "shards_unavailable"


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
