"""RuntimeConfig defaults and validation."""

from __future__ import annotations

import pytest

from runtime import RuntimeConfig


def test_production_defaults() -> None:
    cfg = RuntimeConfig()
    assert cfg.hibernate_after == 10.0
    assert cfg.evict_after == (70.0, 140.0)
    assert cfg.block_concurrency_timeout == 30.0


@pytest.mark.parametrize(
    ("date", "flags", "expected"),
    [
        ("2026-02-23", set(), False),
        ("2026-02-24", set(), True),
        ("2025-01-01", {"delete_all_deletes_alarm"}, True),
        ("2026-11-01", {"no_delete_all_deletes_alarm"}, False),
    ],
)
def test_delete_all_deletes_alarm_follows_the_compatibility_date(date, flags, expected) -> None:
    cfg = RuntimeConfig(compatibility_date=date, compatibility_flags=frozenset(flags))
    assert cfg.delete_all_deletes_alarm is expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"compatibility_date": "yesterday"}, r"^compatibility_date must be YYYY-MM-DD, got 'yesterday'$"),
        ({"evict_after": (10.0, 5.0)}, r"^evict_after must be \(low, high\)"),
        ({"hibernate_after": -1}, r"^hibernate_after must be >= 0, got -1$"),
        ({"max_queued_events": 0}, r"^max_queued_events must be >= 1, got 0$"),
    ],
)
def test_bad_values_are_refused(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        RuntimeConfig(**kwargs)
