"""Time the way Worker code reads it: ``time.time()``, ``datetime.now()``, ``Date.now()``.

In production all of them read the isolate's clock (Pyodide's ``time()`` is
JavaScript's ``Date.now()``). Here they follow the runtime clock while code
runs under a runtime, so a Worker tested on ``trio.testing.MockClock`` sees
virtual time wherever it looks, and a shardsim-only time function is never
needed. Outside a runtime they are the wall clock.

Invariants:

* Patched only while the Python Workers modules are installed
  (:func:`install` / :func:`uninstall`, driven by ``runtime.pyworkers``);
  uninstalling restores the originals exactly.
* ``datetime.datetime`` and ``datetime.date`` are replaced by subclasses
  whose ``now``/``today``/``utcnow`` read the runtime clock. They make only
  plain ``datetime``/``date`` objects, and ``isinstance``/``issubclass``
  against them accept plain ones (a metaclass says so), so every value is
  of the original type and passes the checks Worker code makes. Modules
  that imported the classes before the install keep the originals (and
  wall time); code of ours that checks a value's exact type captures the
  original class at import.
* ``time.monotonic`` and ``time.perf_counter`` are left alone: trio's own
  clock and the scheduler read them.
"""

from __future__ import annotations

import datetime as _dt
import time as _time
from typing import Any, ClassVar

from runtime._runtime import current_runtime

__all__ = ["install", "installed", "uninstall"]

_REAL_TIME = _time.time
_REAL_TIME_NS = _time.time_ns
_REAL_DATETIME = _dt.datetime
_REAL_DATE = _dt.date


def _now_seconds() -> float:
    rt = current_runtime()
    if rt is not None:
        return rt.clock.now_ms() / 1000.0
    return _REAL_TIME()


def _time_time() -> float:
    """``time.time()``: the runtime clock inside a runtime, else the wall clock."""
    return _now_seconds()


def _time_time_ns() -> int:
    """``time.time_ns()``: the runtime clock inside a runtime, else the wall clock."""
    rt = current_runtime()
    if rt is not None:
        return int(rt.clock.now_ms() * 1_000_000)
    return _REAL_TIME_NS()


class _ClassCheck(type):
    """Makes ``isinstance(original_value, Replacement)`` hold, as for the original class."""

    _original: ClassVar[type]

    def __instancecheck__(cls, instance: Any) -> bool:
        return isinstance(instance, cls._original)

    def __subclasscheck__(cls, subclass: Any) -> bool:
        return issubclass(subclass, cls._original)


class _DatetimeMeta(_ClassCheck):
    _original = _REAL_DATETIME


class _DateMeta(_ClassCheck):
    _original = _REAL_DATE


class RuntimeDatetime(_REAL_DATETIME, metaclass=_DatetimeMeta):
    """``datetime.datetime`` whose ``now()`` / ``utcnow()`` / ``today()`` read the runtime clock.

    It makes no instances of its own: constructing it, and every
    classmethod, gives plain ``datetime`` objects, so values are the same
    type whether the patch is in place or not.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> _dt.datetime:  # type: ignore[misc]
        return _REAL_DATETIME(*args, **kwargs)

    @classmethod
    def now(cls, tz: _dt.tzinfo | None = None) -> _dt.datetime:  # type: ignore[override]
        return _REAL_DATETIME.fromtimestamp(_now_seconds(), tz)

    @classmethod
    def utcnow(cls) -> _dt.datetime:  # type: ignore[override]
        return _REAL_DATETIME.fromtimestamp(_now_seconds(), _dt.UTC).replace(tzinfo=None)

    @classmethod
    def today(cls) -> _dt.datetime:  # type: ignore[override]
        return _REAL_DATETIME.fromtimestamp(_now_seconds())


class RuntimeDate(_REAL_DATE, metaclass=_DateMeta):
    """``datetime.date`` whose ``today()`` reads the runtime clock (plain ``date`` objects, as above)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _dt.date:  # type: ignore[misc]
        return _REAL_DATE(*args, **kwargs)

    @classmethod
    def today(cls) -> _dt.date:  # type: ignore[override]
        return _REAL_DATE.fromtimestamp(_now_seconds())


_installed = False
#: What install() replaced, in its order: time.time, time.time_ns, datetime.datetime, datetime.date.
_displaced: list[Any] = []


def install() -> None:
    """Patch ``time.time``/``time_ns`` and ``datetime.datetime``/``date`` (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    _displaced[:] = [_time.time, _time.time_ns, _dt.datetime, _dt.date]
    _time.time = _time_time
    _time.time_ns = _time_time_ns
    _dt.datetime = RuntimeDatetime  # type: ignore[misc]
    _dt.date = RuntimeDate  # type: ignore[misc]


def uninstall() -> None:
    """Put back what :func:`install` replaced (the originals, or another patch made before it)."""
    global _installed
    if not _installed:
        return
    _installed = False
    _time.time, _time.time_ns, _dt.datetime, _dt.date = _displaced  # type: ignore[misc]
    _displaced.clear()


def installed() -> bool:
    """Whether the patches are in place."""
    return _installed
