"""asyncio in Worker code: the common calls, run on trio inside the runtime.

Production runs a Python Worker's handlers on Pyodide's asyncio event loop,
so Worker code writes ``await asyncio.sleep(1)``, ``asyncio.gather(...)``,
``asyncio.create_task(...)``, ``asyncio.wait_for(..., timeout)``. shardsim
runs handlers on trio, where asyncio's own implementations cannot work (an
asyncio future awaited in a trio task is refused by trio). While the Python
Workers modules are installed, these functions are replaced by versions
that run on trio whenever no asyncio event loop is running in the calling
thread, and call the originals otherwise (an asyncio program in the same
process is unaffected).

Invariants:

* :data:`SUPPORTED` lists what works in handlers; any other asyncio
  primitive awaited in a handler fails with an error naming that list
  (:func:`explain`), never hangs.
* ``sleep`` follows the runtime clock (virtual under ``MockClock``) and
  opens the object's input gate, as any non-storage await does.
* ``create_task`` inside an object runs the coroutine as the object's
  background work: it pins the object while it runs and is cancelled if the
  object is reset, hibernated or evicted. Outside objects it runs as a task
  of the runtime.
* ``gather`` runs its awaitables concurrently and returns their results in
  order; with ``return_exceptions=False`` it raises the first exception
  once all of them have ended (asyncio raises at once and lets the others
  run on: here they run to their end before it raises).
* ``wait_for`` cancels the awaitable at the timeout and raises
  ``TimeoutError`` (``asyncio.TimeoutError``), as asyncio does.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Generator
from pathlib import Path
from typing import Any, Final

import trio

from runtime._core import current_activation
from runtime._runtime import current_runtime

__all__ = ["SUPPORTED", "explain", "install", "uninstall"]

#: What Worker code may use from asyncio inside handlers here.
SUPPORTED: Final = ("sleep", "gather", "create_task", "ensure_future", "wait_for", "shield")

_ORIGINALS: dict[str, Any] = {}
#: asyncio's own, captured before any replacement: is a loop running in this thread?
_GET_RUNNING_LOOP: Final = asyncio.get_running_loop

_UNSUPPORTED: Final = (
    "{what} is not supported in Worker code under shardsim, which runs handlers on trio "
    "(production runs them on Pyodide's asyncio loop). Supported: asyncio.{supported}"
)


def _in_trio() -> bool:
    """True when the caller runs under trio with no asyncio loop of its own."""
    try:
        _GET_RUNNING_LOOP()
        return False
    except RuntimeError:
        pass
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


_ASYNCIO_DIR: Final = str(Path(asyncio.__file__).resolve().parent) + os.sep


def explain(exc: BaseException) -> BaseException:
    """Turn a failure of an unsupported asyncio primitive into an error naming what is supported.

    trio refuses an asyncio future awaited in its tasks; other asyncio
    primitives fail inside asyncio itself for want of a running loop. Either
    way the handler's caller learns what happened and what works instead.
    """
    supported = ", asyncio.".join(SUPPORTED)
    if isinstance(exc, TypeError) and "trio.run received unrecognized yield message" in str(exc):
        detail = str(exc).split(".", 1)[0].removeprefix("trio.run received unrecognized yield message ")
        return RuntimeError(_UNSUPPORTED.format(what=f"awaiting {detail}", supported=supported))
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    if last is not None and last.tb_frame.f_code.co_filename.startswith(_ASYNCIO_DIR):
        what = f"asyncio ({type(exc).__name__}: {exc}, in {last.tb_frame.f_code.co_name}())"
        return RuntimeError(_UNSUPPORTED.format(what=what, supported=supported))
    return exc


async def _sleep(delay: float, result: Any = None) -> Any:
    await trio.sleep(max(float(delay), 0.0))
    return result


def sleep(delay: float, result: Any = None) -> Any:
    """``asyncio.sleep``: on trio (the runtime clock) inside the runtime."""
    if not _in_trio():
        return _ORIGINALS["sleep"](delay, result)
    return _sleep(delay, result)


class _Task:
    """What ``create_task`` returns under trio: awaitable, with asyncio's ``Task`` queries."""

    def __init__(self, coro: Awaitable[Any], name: str | None) -> None:
        self._coro = coro
        self._name = name or "Task"
        self._done = trio.Event()
        self._result: Any = None
        self._error: BaseException | None = None
        self._cancelled = False
        self._scope: trio.CancelScope | None = None
        self._callbacks: list[Callable[[Any], Any]] = []

    async def run(self) -> None:
        try:
            with trio.CancelScope() as scope:
                self._scope = scope
                if self._cancelled:
                    scope.cancel()
                try:
                    self._result = await self._coro
                except Exception as exc:
                    self._error = explain(exc)
            if scope.cancelled_caught:
                self._cancelled = True
        finally:
            if inspect_closeable(self._coro) and self._cancelled:
                self._coro.close()  # type: ignore[attr-defined]
            self._done.set()
            for callback in self._callbacks:
                callback(self)

    def __await__(self) -> Generator[Any, None, Any]:
        return self._wait().__await__()

    async def _wait(self) -> Any:
        await self._done.wait()
        return self.result()

    def done(self) -> bool:
        return self._done.is_set()

    def cancelled(self) -> bool:
        return self._cancelled and self._done.is_set()

    def cancel(self, msg: Any = None) -> bool:
        if self._done.is_set():
            return False
        self._cancelled = True
        if self._scope is not None:
            self._scope.cancel()
        return True

    def result(self) -> Any:
        if not self._done.is_set():
            raise asyncio.InvalidStateError("Result is not set.")
        if self._cancelled:
            raise asyncio.CancelledError()
        if self._error is not None:
            raise self._error
        return self._result

    def exception(self) -> BaseException | None:
        if not self._done.is_set():
            raise asyncio.InvalidStateError("Exception is not set.")
        if self._cancelled:
            raise asyncio.CancelledError()
        return self._error

    def add_done_callback(self, fn: Callable[[Any], Any], *, context: Any = None) -> None:
        if self._done.is_set():
            fn(self)
        else:
            self._callbacks.append(fn)

    def get_name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        state = "done" if self.done() else "pending"
        return f"<Task {state} name={self._name!r} (shardsim, on trio)>"


def inspect_closeable(obj: Any) -> bool:
    return callable(getattr(obj, "close", None))


def _start(coro: Any, name: str | None) -> _Task:
    if isinstance(coro, _Task):
        return coro
    task = _Task(coro, name)
    act = current_activation()
    if act is not None and not act.dead:
        act.start_background(task.run, (), None)
        return task
    rt = current_runtime()
    if rt is None:
        if inspect_closeable(coro):
            coro.close()
        raise RuntimeError(
            "asyncio.create_task() needs a running shardsim runtime (call it from Worker code)"
        )
    rt.spawn(task.run)
    return task


def create_task(coro: Any, *, name: str | None = None, context: Any = None) -> Any:
    """``asyncio.create_task``: the object's background work (or a runtime task) under trio."""
    if not _in_trio():
        return _ORIGINALS["create_task"](coro, name=name, context=context)
    return _start(coro, name)


def ensure_future(coro_or_future: Any, *, loop: Any = None) -> Any:
    """``asyncio.ensure_future``: as :func:`create_task` under trio."""
    if not _in_trio():
        return _ORIGINALS["ensure_future"](coro_or_future, loop=loop)
    return _start(coro_or_future, None)


async def _gather(aws: tuple[Any, ...], return_exceptions: bool) -> list[Any]:
    results: list[Any] = [None] * len(aws)
    errors: list[tuple[int, BaseException]] = []

    async def run(index: int, aw: Any) -> None:
        try:
            results[index] = await aw
        except Exception as exc:
            failure = explain(exc)
            results[index] = failure
            errors.append((index, failure))

    async with trio.open_nursery() as nursery:
        for index, aw in enumerate(aws):
            nursery.start_soon(run, index, aw)
    if errors and not return_exceptions:
        raise errors[0][1]
    return results


def gather(*aws: Any, return_exceptions: bool = False) -> Any:
    """``asyncio.gather``: the awaitables run concurrently on trio; results in order."""
    if not _in_trio():
        return _ORIGINALS["gather"](*aws, return_exceptions=return_exceptions)
    return _gather(aws, return_exceptions)


async def _wait_for(aw: Any, timeout: float | None) -> Any:  # noqa: ASYNC109 - asyncio.wait_for's signature
    if timeout is None:
        return await aw
    with trio.move_on_after(max(float(timeout), 0.0)) as scope:
        return await aw
    if scope.cancelled_caught:
        raise TimeoutError()
    return None  # pragma: no cover - only the deadline cancels this scope


def wait_for(aw: Any, timeout: float | None) -> Any:
    """``asyncio.wait_for``: cancel at the timeout and raise ``TimeoutError``."""
    if not _in_trio():
        return _ORIGINALS["wait_for"](aw, timeout)
    return _wait_for(aw, timeout)


async def _shielded(aw: Any) -> Any:
    with trio.CancelScope(shield=True):
        return await aw


def shield(arg: Any) -> Any:
    """``asyncio.shield``: the awaitable is not cancelled with its awaiter."""
    if not _in_trio():
        return _ORIGINALS["shield"](arg)
    return _shielded(arg)


def _refusing(name: str) -> Callable[..., Any]:
    original = getattr(asyncio, name)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        if _in_trio():
            raise RuntimeError(
                _UNSUPPORTED.format(what=f"asyncio.{name}()", supported=", asyncio.".join(SUPPORTED))
            )
        return original(*args, **kwargs)

    refuse.__name__ = name
    refuse.__doc__ = f"asyncio.{name}, refused with a clear error inside the runtime."
    return refuse


_REPLACEMENTS: Final[dict[str, Callable[..., Any]]] = {
    "sleep": sleep,
    "create_task": create_task,
    "ensure_future": ensure_future,
    "gather": gather,
    "wait_for": wait_for,
    "shield": shield,
}
_REFUSED: Final = ("get_running_loop", "get_event_loop", "run", "wait", "as_completed", "to_thread")


def install() -> None:
    """Put the trio-aware versions in the asyncio module (idempotent)."""
    if _ORIGINALS:
        return
    for name, replacement in _REPLACEMENTS.items():
        _ORIGINALS[name] = getattr(asyncio, name)
        setattr(asyncio, name, replacement)
    for name in _REFUSED:
        _ORIGINALS[name] = getattr(asyncio, name)
        setattr(asyncio, name, _refusing(name))


def uninstall() -> None:
    """Put asyncio's own functions back."""
    for name, original in _ORIGINALS.items():
        setattr(asyncio, name, original)
    _ORIGINALS.clear()
