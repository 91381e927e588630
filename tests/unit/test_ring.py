from __future__ import annotations

from collections import Counter

import pytest

from federation.core.placement import Ring

PAIRS = [f"pair{i}" for i in range(10_000)]
THREE = ["shard-a", "shard-b", "shard-c"]


def test_owner_is_deterministic_across_instances() -> None:
    assert [Ring(THREE).owner(p) for p in PAIRS[:500]] == [
        Ring(list(reversed(THREE))).owner(p) for p in PAIRS[:500]
    ]


def test_balance_within_five_percent_over_10k_pairs() -> None:
    counts = Counter(Ring(THREE).owner(p) for p in PAIRS)
    expected = len(PAIRS) / 3
    assert all(abs(n - expected) / expected < 0.05 for n in counts.values()), counts


def test_adding_fourth_shard_moves_about_a_quarter_only_to_it() -> None:
    old, new = Ring(THREE), Ring([*THREE, "shard-d"])
    moved = [p for p in PAIRS if old.owner(p) != new.owner(p)]
    assert 0.22 < len(moved) / len(PAIRS) < 0.28
    assert {new.owner(p) for p in moved} == {"shard-d"}


def test_removing_shard_moves_only_its_pairs() -> None:
    old, new = Ring(THREE), Ring(["shard-a", "shard-c"])
    moved = {p for p in PAIRS if old.owner(p) != new.owner(p)}
    assert moved == {p for p in PAIRS if old.owner(p) == "shard-b"}


@pytest.mark.parametrize("replication", [1, 2, 3], ids=["r1", "r2", "r3"])
def test_owners_are_distinct_and_first_is_owner(replication: int) -> None:
    ring = Ring(THREE)
    for pair in PAIRS[:200]:
        owners = ring.owners(pair, replication)
        assert len(set(owners)) == replication
        assert owners[0] == ring.owner(pair)
