"""docs/operations.md's settings tables against the settings models: every setting
documented with its default, nothing documented that does not exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.settings import AlertSettings
from federation.core.apikeys import ApiKeys
from federation.core.credentials import Credentials
from federation.core.settings import ProcessSettings, SettingsModel, Spec, settings_of
from federation.router.settings import RouterSettings
from federation.tools.settings import (
    ClusterSettings,
    IngesterSettings,
    RebalanceSettings,
    StackSettings,
)
from ingest.settings import IngestSettings

OPERATIONS = Path(__file__).parents[2] / "docs" / "operations.md"
# Each table's heading (up to its colon) and the model whose own settings it lists.
TABLES: dict[str, type[SettingsModel]] = {
    "Every process": ProcessSettings,
    "Router": RouterSettings,
    "API keys": ApiKeys,
    "Alerts": AlertSettings,
    "Shard credentials": Credentials,
    "Ingester": IngestSettings,
    "Local shards": ClusterSettings,
    "Rebalance": RebalanceSettings,
}
PROCESSES = (RouterSettings, IngesterSettings, ClusterSettings, StackSettings, RebalanceSettings)


def documented() -> dict[str, dict[str, str]]:
    """The tables of the Settings section: heading -> {names: default}."""
    text = OPERATIONS.read_text().split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    tables: dict[str, dict[str, str]] = {}
    rows: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("### "):
            rows = tables[line[4:].split(":")[0]] = {}
        elif line.startswith("| `"):
            names, default = (cell.strip().replace("`", "") for cell in line.split("|")[1:3])
            rows[names] = default
    return tables


def names(spec: Spec) -> str:
    return ", ".join(name for name in (spec.flag, spec.env) if name)


def own_settings(model: type[SettingsModel]) -> dict[str, str]:
    """The settings ``model`` declares itself (not its bases', not its sections'), by
    names, with their defaults."""
    inherited = {name for base in model.__mro__[1:] for name in getattr(base, "model_fields", {})}
    return {
        names(spec): spec.default_text
        for spec in settings_of(model, sections=False)
        if spec.name not in inherited
    }


def settings_models(model: type[SettingsModel]) -> set[type[SettingsModel]]:
    """``model``, its settings bases and its sections, all the way down."""
    found = {base for base in model.__mro__ if issubclass(base, SettingsModel)}
    for field in model.model_fields.values():
        if isinstance(field.annotation, type) and issubclass(field.annotation, SettingsModel):
            found |= settings_models(field.annotation)
    return found


@pytest.mark.parametrize(("heading", "model"), TABLES.items(), ids=list(TABLES))
def test_docs_table_lists_the_model_settings_with_their_defaults(
    heading: str, model: type[SettingsModel]
) -> None:
    assert documented()[heading] == own_settings(model)


def test_docs_tables_are_the_documented_models() -> None:
    assert set(documented()) == set(TABLES)


def test_docs_cover_every_setting_of_every_process() -> None:
    models = set().union(*(settings_models(process) for process in PROCESSES))
    undocumented = {m.__name__ for m in models if own_settings(m) and m not in TABLES.values()}
    assert undocumented == set()
