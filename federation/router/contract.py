"""The router's API description (/openapi.json), built once per app from one declaration
of each thing it describes:

- each route's summary and responses from its docstring (Starlette's schema generator),
  which refers to the components below by ``$ref``;
- the parameters from the grammars the handlers parse with (:mod:`federation.core.ids`,
  :mod:`federation.core.durations`, bounded by the settings in force), so a value the
  description allows is one the handler takes, and the reverse;
- the request and response bodies from pydantic models (these and
  :mod:`alerts.contract`'s);
- the error answers every operation can give: a 400 naming the parameter, and for a
  request with a body the limits' 408 and 413, all in the one error shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute
from starlette.schemas import SchemaGenerator

from alerts import contract as alerts_contract
from federation import __version__
from federation.core.durations import length_pattern
from federation.core.ids import API_ID_PATTERN
from federation.router.auth import needs_key
from federation.router.settings import RouterSettings

_OPEN = ConfigDict(extra="allow")  # later fields may join an answer without breaking it


class Error(BaseModel):
    """Every error answer: what is wrong, a code, and what it concerns."""

    model_config = _OPEN
    error: str
    code: str
    parameter: str | None = Field(None, description="the parameter or field at fault")
    limit: str | None = Field(None, description="the setting of the limit that was hit")
    max: float | None = Field(None, description="that limit's value")
    missing_shards: list[str] | None = None


class InfluxError(BaseModel):
    """An error of the InfluxDB-compatible front door, in InfluxDB 1.x's own shape."""

    model_config = _OPEN
    error: str


class Price(BaseModel):
    price: float
    time: str
    exchange: str


class PairAnswer(BaseModel):
    model_config = _OPEN
    pair: str
    rank: str | None = Field(json_schema_extra={"pattern": r"^[0-9]+/[0-9]+$"})
    duration: str
    rank_as_of: str | None = Field(None, description="absent when the rank is per request")
    prices: list[Price]
    partial: bool
    missing_shards: list[str]


class Health(BaseModel):
    status: Literal["ok"]
    version: str


class Ready(BaseModel):
    ready: bool
    missing_shards: list[str]


class ShardState(BaseModel):
    model_config = _OPEN
    name: str
    url: str
    drain: bool
    up: bool


class ShardsStatus(BaseModel):
    model_config = _OPEN
    map_version: str
    database: str
    replication: int
    shards: list[ShardState]


class PairExchanges(BaseModel):
    pair: str
    exchanges: list[str]


class Pairs(BaseModel):
    count: int
    pairs: list[PairExchanges]
    partial: bool
    missing_shards: list[str]


MODELS: tuple[type[BaseModel], ...] = (
    Error,
    InfluxError,
    PairAnswer,
    Health,
    Ready,
    ShardsStatus,
    Pairs,
    *alerts_contract.MODELS,
)
_ID_SCHEMA = {"type": "string", "pattern": f"^{API_ID_PATTERN}$"}


def parameters(settings: RouterSettings, taken: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """The router's parameters, bounded as the settings in force bound them; ``taken``
    are the paths of other routes, which ``/{pair}`` never sees as pairs."""
    look_back = "^-" + length_pattern(settings.max_duration.seconds)[1:]
    return {
        "Pair": {
            "name": "pair",
            "in": "path",
            "required": True,
            "description": "a pair id, any case",
            "schema": {**_ID_SCHEMA, "not": {"enum": sorted(taken)}} if taken else _ID_SCHEMA,
            "example": "btcusd",
        },
        "Exchange": {
            "name": "exchange",
            "in": "query",
            "description": "only this exchange's series",
            "schema": _ID_SCHEMA,
            "example": "binance-us",
        },
        "Duration": {
            "name": "duration",
            "in": "query",
            "description": f"how far back the window starts, at most {settings.max_duration}",
            "schema": {"type": "string", "pattern": look_back, "default": "-24h"},
            "example": "-1h",
        },
        "Strict": {
            "name": "strict",
            "in": "query",
            "description": "true: an answer lacking shards is a 503, not a partial 200",
            "schema": {"type": "boolean", "default": False},
        },
        **alerts_contract.PARAMETERS,
    }


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def document(routes: Sequence[BaseRoute], settings: RouterSettings) -> dict[str, Any]:
    """The OpenAPI 3.1 description of ``routes`` under ``settings``."""
    base = {
        "openapi": "3.1.0",
        "info": {"title": "Crypto price federation", "version": __version__},
    }
    doc = SchemaGenerator(base).get_schema(routes=list(routes))
    _, defs = models_json_schema(
        [(m, "validation") for m in MODELS], ref_template="#/components/schemas/{model}"
    )
    taken = [path[1:] for path in doc["paths"] if path.count("/") == 1 and "{" not in path]
    doc["components"] = {
        "schemas": defs["$defs"],
        "parameters": parameters(settings, taken),
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    }
    for path, operations in doc["paths"].items():
        for operation in operations.values():
            responses = {str(k): v for k, v in operation.get("responses", {}).items()}
            responses.setdefault(
                "400", {"description": "A malformed, unknown or repeated parameter."}
            )
            if needs_key(path, settings.api):
                operation["security"] = [{"bearer": []}]
                responses.setdefault("401", {"description": "A missing or wrong API key."})
                responses.setdefault(
                    "403", {"description": "No key is configured and the client is not local."}
                )
            if "requestBody" in operation:
                responses.setdefault("408", {"description": "The body did not arrive in time."})
                responses.setdefault("413", {"description": "The body is too large."})
            for status, response in responses.items():
                if int(status) >= 400 and "content" not in response:
                    responses[status] = _error(response["description"])
            operation["responses"] = responses
    return doc
