from __future__ import annotations

from runtime import RuntimeConfig

#: A pinned epoch so alarm times and now_ms() are reproducible.
EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def config(**kwargs) -> RuntimeConfig:
    return RuntimeConfig(epoch_ms=EPOCH_MS, **kwargs)
