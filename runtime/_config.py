"""RuntimeConfig: every timing and limit of the emulator, with production's defaults.

Each default is production's, as Cloudflare documents it or as workerd was
seen to behave; the field's comment says which. Times are seconds unless
the name says ``_ms``.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

__all__ = ["RuntimeConfig"]

# Compatibility dates from which production changed behaviour (Cloudflare's compatibility flags).
_DELETE_ALL_DELETES_ALARM = "2026-02-24"
_WEB_SOCKET_AUTO_REPLY_TO_CLOSE = "2026-04-07"


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeConfig:
    """Timings, limits, compatibility settings and the clock's epoch for one runtime."""

    #: Idle seconds before an object that nothing pins hibernates (1.40; workerd: 10 s).
    hibernate_after: float = 10.0
    #: Idle seconds before a pinned (non-hibernatable) object is evicted: uniform in this range (1.41).
    evict_after: tuple[float, float] = (70.0, 140.0)
    #: blockConcurrencyWhile() callback limit (1.31).
    block_concurrency_timeout: float = 30.0
    #: How long ctx.waitUntil() may keep an object alive (1.33).
    wait_until_limit: float = 900.0
    #: Wall-clock limit of one alarm() invocation (3.14).
    alarm_time_limit: float = 900.0
    #: Retries of a failing alarm (3.8: ALARM_RETRY_MAX_TRIES).
    alarm_max_retries: int = 6
    #: First retry delay; each retry doubles it (3.8: 2, 4, 8, 16, 32, 64 s).
    alarm_retry_base: float = 2.0
    #: Jitter added to a retry delay, as a fraction of it (3.8: up to 25 %).
    alarm_retry_jitter: float = 0.25
    #: Events waiting at one object's input gate before callers get an overload error (1.53, 9.40).
    max_queued_events: int = 1000
    #: Serialized RPC argument/result limit in bytes (1.19).
    rpc_max_bytes: int = 32 * 1024 * 1024
    #: Compatibility date of the Worker (YYYY-MM-DD). Changes behaviour, e.g. deleteAll and the alarm.
    compatibility_date: str = "2026-11-01"
    #: Compatibility flags; ``delete_all_deletes_alarm`` etc. force the new behaviour.
    compatibility_flags: frozenset[str] = field(default_factory=frozenset)
    #: Binding names whose classes were declared with ``new_classes`` (legacy KV backend limits).
    legacy_kv_bindings: frozenset[str] = field(default_factory=frozenset)
    #: Runtime clock epoch in ms since 1970; None = wall time when the runtime opens. Tests pin it.
    epoch_ms: int | None = None
    #: Bound on open SQLite connections; None = derived from the file-descriptor limit.
    max_open_databases: int | None = None

    def __post_init__(self) -> None:
        try:
            _dt.date.fromisoformat(self.compatibility_date)
        except ValueError:
            raise ValueError(
                f"compatibility_date must be YYYY-MM-DD, got {self.compatibility_date!r}"
            ) from None
        lo, hi = self.evict_after
        if not 0 <= lo <= hi:
            raise ValueError(
                f"evict_after must be (low, high) with 0 <= low <= high, got {self.evict_after!r}"
            )
        for name in ("hibernate_after", "block_concurrency_timeout", "wait_until_limit"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.max_queued_events < 1:
            raise ValueError(f"max_queued_events must be >= 1, got {self.max_queued_events!r}")
        if isinstance(self.compatibility_flags, str):  # type: ignore[unreachable]  # a common mistake
            raise TypeError("compatibility_flags must be a set of strings, not one string")
        object.__setattr__(self, "compatibility_flags", frozenset(self.compatibility_flags))
        object.__setattr__(self, "legacy_kv_bindings", frozenset(self.legacy_kv_bindings))

    def _flag(self, name: str, since: str) -> bool:
        if f"no_{name}" in self.compatibility_flags:
            return False
        return name in self.compatibility_flags or self.compatibility_date >= since

    @property
    def delete_all_deletes_alarm(self) -> bool:
        """Whether ``deleteAll()`` also deletes the alarm (compat date >= 2026-02-24 or the flag)."""
        return self._flag("delete_all_deletes_alarm", _DELETE_ALL_DELETES_ALARM)

    @property
    def web_socket_auto_reply_to_close(self) -> bool:
        """Whether a client close is answered automatically (compat date >= 2026-04-07 or the flag)."""
        return self._flag("web_socket_auto_reply_to_close", _WEB_SOCKET_AUTO_REPLY_TO_CLOSE)
