"""The alerts API's contract, declared once: the request body of ``POST /alerts``, the
answers' shapes and the ``id`` path parameter. :mod:`alerts.api` validates with these
declarations (the body's model, the id's pattern); the router publishes them in
/openapi.json (:data:`COMPONENTS`), so what is described is what is accepted.

A field's published pattern or bounds sit beside the field (``json_schema_extra``) and
are enforced by the field's parser in :mod:`alerts.api`, which says what is wrong in
words rather than quoting a pattern.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from federation.core.durations import length_pattern
from federation.core.ids import API_ID_PATTERN

MAX_URL = 2048
FACTOR_MAX = 1000.0
WINDOW_MIN_S, WINDOW_MAX_S = 60, 86400
EVENTS_LIMIT_MAX = 500
ID_PATTERN = r"^[0-9a-f]{32}$"
ID_RE = re.compile(ID_PATTERN)
WINDOW_PATTERN = length_pattern(WINDOW_MAX_S, step_s=WINDOW_MIN_S)
_ID: JsonDict = {"pattern": f"^{API_ID_PATTERN}$"}


def _string(extra: JsonDict) -> Callable[[JsonDict], None]:
    """The schema of a field that is a string when given and absent otherwise (never
    null): ``extra`` added, the default of None left out."""

    def amend(schema: JsonDict) -> None:
        schema.pop("default", None)
        schema.update(extra)

    return amend


class NewAlert(BaseModel):
    """``POST /alerts``: exactly one of webhook and email; the rest optional."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        title="NewAlert",
        json_schema_extra={"oneOf": [{"required": ["webhook"]}, {"required": ["email"]}]},
    )

    webhook: str = Field(
        None,  # type: ignore[assignment]  # absent, not null: the schema says a string
        description="http(s) URL with a public host (or one in ALERTS_ALLOW_NETWORKS)",
        json_schema_extra=_string({"maxLength": MAX_URL, "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://"}),
    )
    email: str = Field(
        None,  # type: ignore[assignment]
        description="an email address",
        json_schema_extra=_string({"format": "email"}),
    )
    pair: str | None = Field(None, json_schema_extra=_ID)
    exchange: str | None = Field(None, json_schema_extra=_ID)
    metric: Literal["price", "volume"] | None = None
    factor: float = Field(
        3.0,
        description="times the window's mean",
        json_schema_extra={"exclusiveMinimum": 1, "maximum": FACTOR_MAX},
    )
    window: str = Field(
        "1h",
        description="a length in whole minutes from 1m to 24h (30m, 1h, 90m, 1d)",
        json_schema_extra={"pattern": WINDOW_PATTERN},
    )


class Subscription(BaseModel):
    id: str = Field(json_schema_extra={"pattern": ID_PATTERN})
    webhook: str | None
    email: str | None
    pair: str | None
    exchange: str | None
    metric: Literal["price", "volume"] | None
    factor: float
    window: str
    window_seconds: int
    created_ms: int
    secret: str | None = Field(None, description="only in the answer to POST /alerts")


class Subscriptions(BaseModel):
    subscriptions: list[Subscription]


class Event(BaseModel):
    event_id: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    created_ms: int
    next_attempt_ms: int | None
    delivered_ms: int | None
    last_error: str | None
    alert: dict[str, Any]


class Events(BaseModel):
    subscription_id: str
    events: list[Event]


MODELS: tuple[type[BaseModel], ...] = (NewAlert, Subscription, Subscriptions, Events)
PARAMETERS: dict[str, dict[str, Any]] = {
    "AlertId": {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "a subscription's id, as POST /alerts gave it",
        "schema": {"type": "string", "pattern": ID_PATTERN},
    },
    "EventsLimit": {
        "name": "limit",
        "in": "query",
        "description": "how many of the most recent alerts",
        "schema": {"type": "integer", "minimum": 1, "maximum": EVENTS_LIMIT_MAX, "default": 50},
    },
}
