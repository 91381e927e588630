"""The API against its own description: schemathesis, with every check, runs every
operation /openapi.json describes, in-process over fake shards, with a fixed, small
number of examples each (so the run stays short and the same every time)."""

from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, assume, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.schemas import BaseSchema
from starlette.routing import Route

from alerts.settings import AlertSettings
from federation.core.apikeys import ApiKeys
from federation.core.durations import Duration
from federation.core.shardmap import ShardMap
from federation.router.app import create_app
from federation.router.settings import RouterSettings
from tests.fakeshard import connect_to
from tests.unit.test_router import SHARDS, fake_shards

EXAMPLES = 12
# A webhook must resolve to a public address and an email must pass email_validator's
# rules (no reserved domains): no schema can say either, so a generated address that
# fits the description may still be refused with 400; no schema can say what InfluxQL
# parses either, so /query may answer 400 to a generated q. Only those may answer it.
CONFIG = {
    "operations": [
        {
            "include-path": "/query",
            "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "400"]}},
        },
        {
            "include-path": "/alerts",
            "include-method": "POST",
            "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "400", "404"]}},
        },
    ],
}


KEY = "k" * 24
AUTH = {"Authorization": f"Bearer {KEY}"}


def api() -> BaseSchema:
    """The router over fake shards, its alerts in a database in memory, one API key."""
    alerts = AlertSettings(db_url="sqlite+aiosqlite://")
    keys = ApiKeys(keys={"tester": KEY})
    router_settings = RouterSettings(shard_timeout=0.3, rank_refresh_s=0, alerts=alerts, api=keys)
    app = create_app(ShardMap(SHARDS), router_settings, connect_to(fake_shards()))
    config = SchemathesisConfig.from_dict(CONFIG)
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=config)


schema = api()
TAKEN = {path for path in schema.raw_schema["paths"] if "{" not in path}


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_api_answers_as_its_description_says(case: schemathesis.Case) -> None:
    # A "pair" that is another route's path (a negative case of /{pair}'s "not" enum)
    # is a request to that route, checked against its own description.
    assume(f"/{(case.path_parameters or {}).get('pair')}" not in TAKEN)
    case.call_and_validate(headers=AUTH)


def test_description_covers_every_route() -> None:
    app = create_app(ShardMap(SHARDS), RouterSettings(rank_refresh_s=0), connect_to({}))
    routes = {r.path for r in app.routes if isinstance(r, Route)}
    assert set(app.state.openapi["paths"]) == routes


@pytest.mark.parametrize(
    ("duration", "described"),
    [("-7d", True), ("-168h", True), ("-169h", False), ("-2w", False)],
    ids=["days", "hours", "an-hour-over", "weeks-over"],
)
def test_duration_pattern_follows_max_duration(duration: str, described: bool) -> None:
    settings = RouterSettings(rank_refresh_s=0, max_duration=Duration(7, "d"))
    app = create_app(ShardMap(SHARDS), settings, connect_to({}))
    pattern = app.state.openapi["components"]["parameters"]["Duration"]["schema"]["pattern"]
    assert (re.match(pattern, duration) is not None) == described
