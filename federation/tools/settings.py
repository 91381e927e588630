"""The settings of the processes the operator tools run, one model each, built once at
start from the environment and the command line: the ingester (``python -m ingest``),
the local shards (``cluster``), the whole local stack (``stack``) and ``rebalance``.
The router's are :class:`federation.router.settings.RouterSettings`."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from alerts.settings import AlertSettings, database_beside_map
from federation.core.credentials import Credentials
from federation.core.durations import Duration
from federation.core.settings import Length, ProcessSettings, setting
from federation.router.settings import RouterSettings
from ingest.settings import IngestSettings


class IngesterSettings(ProcessSettings):
    """The ingester runs ingest and alerts together: its settings hold both."""

    ingest: IngestSettings = Field(default_factory=IngestSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    credentials: Credentials = Field(default_factory=Credentials)

    @model_validator(mode="before")
    @classmethod
    def _alerts_beside_map(cls, data: Any) -> Any:
        return database_beside_map(data)


class ClusterSettings(ProcessSettings):
    data_dir: str = setting(
        ".cluster", flag="--data-dir", help="where local shards keep their files"
    )
    influxd: str | None = setting(
        env="INFLUXD", default_text="influxd on PATH", help="the influxd binary to run"
    )


# The flags `stack` takes: the local shards' and those it passes on to the router and ingester.
STACK_FLAGS = ("--data-dir", "--host", "--port", "--series", "--interval")


class StackSettings(ClusterSettings):
    """The local shards, and the settings of the two processes the stack starts: they are
    checked before anything starts, and passed on through the children's command lines
    (``--host``, ``--port``, ``--series``, ``--interval``) and environment."""

    router: RouterSettings = Field(default_factory=RouterSettings)
    ingester: IngesterSettings = Field(default_factory=IngesterSettings)


class RebalanceSettings(ProcessSettings):
    plan: bool = setting(
        False, flag="--plan", help="print which pairs move where, with point counts; change nothing"
    )
    window: Length = setting(
        Duration(6, "h"),
        flag="--window",
        help="copy each pair in time windows this long: a length like 30m or 6h",
    )
    credentials: Credentials = Field(default_factory=Credentials)
