"""Shard credentials: read once from the environment, sent by every client."""

from __future__ import annotations

import httpx2
import pytest

from federation.core.credentials import Credentials
from federation.core.influx import clients_for
from federation.core.shardmap import Shard, ShardMap


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, {}),
        ({"INFLUX_TOKEN": "t"}, {"Authorization": "Token t"}),
        ({"INFLUX_TOKEN": "t", "INFLUX_TOKEN_SHARD_A": "mine"}, {"Authorization": "Token mine"}),
        ({"INFLUX_USERNAME": "u", "INFLUX_PASSWORD": "p"}, {"Authorization": "Basic dTpw"}),
        ({"INFLUX_USERNAME_SHARD_A": "u", "INFLUX_PASSWORD": "p"}, {"Authorization": "Basic dTpw"}),
        ({"INFLUX_TOKEN_SHARD_B": "theirs"}, {}),
    ],
    ids=["none", "global-token", "per-shard-token-wins", "basic", "per-shard-user", "other-shard"],
)
def test_credentials_come_from_environment(env: dict[str, str], expected: dict[str, str]) -> None:
    assert Credentials.load(env).headers("shard-a") == expected


def test_credentials_of_a_shard_added_later_were_read_at_load() -> None:
    credentials = Credentials.load({"INFLUX_TOKEN_SHARD_NEW": "late"})
    assert credentials.headers("shard-new") == {"Authorization": "Token late"}


def test_credentials_are_not_in_the_repr() -> None:
    env = {"INFLUX_TOKEN": "s3cret", "INFLUX_PASSWORD_SHARD_A": "hunter2"}
    shown = repr(Credentials.load(env))
    assert "s3cret" not in shown
    assert "hunter2" not in shown


async def test_credentials_go_with_every_request_of_their_shard() -> None:
    seen: dict[str, str | None] = {}

    def shard(request: httpx2.Request) -> httpx2.Response:
        seen[request.url.host] = request.headers.get("Authorization")
        return httpx2.Response(204)

    shard_map = ShardMap((Shard("a", "http://a.test"), Shard("b", "http://b.test")))
    credentials = Credentials(token="all", per_shard={"INFLUX_TOKEN_B": "bee"})
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(shard)) as http:
        for client in clients_for(shard_map, http, credentials=credentials).values():
            await client.ping()
    assert seen == {"a.test": "Token all", "b.test": "Token bee"}
