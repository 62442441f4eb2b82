"""What awaiting a handler's result involves, found without running trio.

The actor runs a handler in its caller's task and wants to know, before it
pays for a cancel scope, whether awaiting the handler's result can suspend
at all. This module answers from the code itself (bytecode inspection) and
drives awaitables that cannot suspend to their end outside any ``await``.

Invariants:

* :func:`await_kind` says :data:`INSTANT` only for an awaitable that never
  yields to trio: a coroutine whose code has no yield instruction (it can
  only suspend at an ``await``, ``async with`` or ``async for``, which
  compile to yields), or a storage result (storage calls act at once).
* :func:`settle` runs an :data:`INSTANT` awaitable to its end; what it
  raises propagates.
* :func:`await_watched` passes whatever trio sends or throws in on to the
  awaitable unchanged, as ``await`` does; it only adds a call before the
  first real suspension.
"""

from __future__ import annotations

import dis
import inspect
import types
from collections.abc import Callable, Generator
from types import CodeType, CoroutineType
from typing import Any, Final

from runtime.storage import StorageResult

__all__ = ["INSTANT", "MAY_SUSPEND", "PLAIN", "Mapped", "await_kind", "await_watched", "settle"]

#: Not awaitable: the value itself.
PLAIN: Final = 0
#: Awaitable, and never yields to trio.
INSTANT: Final = 1
#: Awaitable, and may suspend.
MAY_SUSPEND: Final = 2

#: Yield instructions, by opcode (YIELD_FROM is gone from 3.12 on).
_YIELD_OPCODES: Final = frozenset(
    dis.opmap[name] for name in ("YIELD_VALUE", "YIELD_FROM") if name in dis.opmap
)
#: id(code) -> (code, has no yield). The code object is kept so its id is never reused.
_NO_YIELD: dict[int, tuple[CodeType, bool]] = {}
_NO_YIELD_MAX: Final = 4096


class Mapped:
    """An awaitable whose value is ``fn(value of inner)``: a result converted once it is there.

    ``on_error`` (if given) maps an exception the inner awaitable raises to
    the one that propagates. Classified as its inner awaitable is, so
    converting a handler's result (the Python Workers layer does) never
    costs the handler its fast path.
    """

    __slots__ = ("fn", "inner", "on_error")

    def __init__(
        self,
        inner: Any,
        fn: Callable[[Any], Any],
        on_error: Callable[[Exception], BaseException] | None = None,
    ) -> None:
        self.inner = inner
        self.fn = fn
        self.on_error = on_error

    def __await__(self) -> Generator[Any, Any, Any]:
        steps = self.inner.__await__()
        if self.on_error is None:
            return self.fn((yield from steps))
        try:
            value = yield from steps
        except Exception as exc:
            mapped = self.on_error(exc)
            if mapped is exc:
                raise
            raise mapped from exc
        return self.fn(value)


def await_kind(value: object) -> int:
    """Classify a handler's return value: :data:`PLAIN`, :data:`INSTANT` or :data:`MAY_SUSPEND`."""
    t = type(value)
    if t is Mapped:
        return await_kind(value.inner)  # type: ignore[attr-defined]
    if t is CoroutineType:
        code = value.cr_code  # type: ignore[attr-defined]
        entry = _NO_YIELD.get(id(code))
        if entry is None or entry[0] is not code:
            if len(_NO_YIELD) >= _NO_YIELD_MAX:
                _NO_YIELD.clear()  # only code made at run time (exec, reloads) gets here often
            entry = _NO_YIELD[id(code)] = (
                code,
                not any(ins.opcode in _YIELD_OPCODES for ins in dis.get_instructions(code)),
            )
        return INSTANT if entry[1] else MAY_SUSPEND
    if value is None:
        return PLAIN
    if t is StorageResult:
        return INSTANT
    return MAY_SUSPEND if inspect.isawaitable(value) else PLAIN


@types.coroutine
def await_watched(awaitable: Any, on_suspend: Callable[[], None]) -> Generator[Any, Any, Any]:
    """Await ``awaitable`` here, calling ``on_suspend()`` before it first yields to trio.

    Awaits that finish at once (storage results) never reach trio, so a
    coroutine made only of those runs to its end without ``on_suspend``.
    """
    steps = awaitable if type(awaitable) is CoroutineType else awaitable.__await__()
    try:
        trap = steps.send(None)
    except StopIteration as stop:
        return stop.value
    on_suspend()
    while True:
        try:
            sent = yield trap
        except GeneratorExit:
            steps.close()
            raise
        except BaseException as exc:  # thrown in by trio: pass it on, as await does
            throw = getattr(steps, "throw", None)
            if throw is None:
                raise
            try:
                trap = throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                trap = steps.send(sent)
            except StopIteration as stop:
                return stop.value


def settle(awaitable: Any) -> Any:
    """Run an :data:`INSTANT` awaitable to its end, outside any await; returns its value."""
    steps = awaitable if type(awaitable) is CoroutineType else awaitable.__await__()
    try:
        steps.send(None)
    except StopIteration as stop:
        return stop.value
    # await_kind found no yield in its code: this cannot happen.
    steps.close()
    raise RuntimeError(f"{awaitable!r} suspended, though it has no await; please file a bug")
