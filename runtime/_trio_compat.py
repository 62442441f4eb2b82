"""Every reach into trio's internals, in one place.

Owns the runtime's uses of names trio does not publish. Business modules
call the small functions here and never touch a private name of trio
themselves; each function says which internal it reads, why the public API
will not do, and what answers when the internal is gone.
``tests/runtime/test_trio_compat.py`` pins each internal's shape (checked
against trio 0.35) and fails, naming the attribute, when trio changes it.

Invariants:

* Read-only: nothing here writes trio's state (no counters bumped behind
  trio's back, no task or runner fields set).
* Every function answers as its public-API equivalent does (the tests
  compare the two; only the internals see a pending KeyboardInterrupt),
  or, where there is none, returns the "not available" value its caller
  already handles (``None``).
* Bottom of the runtime's layering: imports trio and the standard library
  only, nothing from ``runtime`` or ``shards``.

This is also where a future fault kit will seed trio's scheduling order
(the random batch order of trio's run loop), so that a failing
interleaving can be replayed; nothing here does that yet.
"""

from __future__ import annotations

import math
import socket

import trio

try:
    # The thread-local that holds the current task and trio's runner; trio
    # reads it on every call of its own (current_task(), checkpoint_if_cancelled()).
    from trio._core._run import GLOBAL_RUN_CONTEXT as _RUN_CONTEXT

    _HAVE_RUN_CONTEXT = True
except ImportError:  # pragma: no cover - a trio that moved it; the public API answers instead
    _HAVE_RUN_CONTEXT = False

__all__ = ["checkpoint_needed", "raw_socket"]


def checkpoint_needed() -> bool:
    """Whether a checkpoint now would do anything: run another task, or raise into this one.

    True when another task is queued to run, when the current task is
    cancelled (the checkpoint would raise ``Cancelled``), or when a
    KeyboardInterrupt waits for delivery; False when a checkpoint would
    only poll for I/O and come straight back. Must be called inside
    ``trio.run`` (else ``RuntimeError``, as trio's own calls raise).

    Reads ``GLOBAL_RUN_CONTEXT.task``, the task's ``_runner`` and
    ``_cancel_status.effectively_cancelled``, and the runner's ``runq`` and
    ``ki_pending``: ~1,300 instructions for the whole answer (callgrind,
    trio 0.35). The public equivalent (:func:`_checkpoint_needed_public`)
    asks ``current_statistics()``, which counts every registered socket
    (~31,000 instructions in a bare run, more than a point query in
    SQLite), and cannot see a pending KeyboardInterrupt at all. If the
    internals are gone or changed shape, the public calls answer.
    """
    if _HAVE_RUN_CONTEXT:
        try:
            task = _RUN_CONTEXT.task
            runner = task._runner
            return bool(runner.runq) or task._cancel_status.effectively_cancelled or runner.ki_pending
        except AttributeError:  # not in trio.run, or a trio whose task or runner changed shape
            pass
    return _checkpoint_needed_public()


def _checkpoint_needed_public() -> bool:
    """:func:`checkpoint_needed` from trio's public API (slower, and blind to a pending KeyboardInterrupt).

    ``current_effective_deadline()`` is ``-inf`` exactly when the task is
    cancelled (trio documents ``checkpoint_if_cancelled()`` as that test).
    A KeyboardInterrupt then waits for the caller's next full checkpoint.
    """
    if trio.lowlevel.current_statistics().tasks_runnable:
        return True
    return trio.current_effective_deadline() == -math.inf


def raw_socket(stream: object) -> socket.socket | None:
    """The stdlib socket under a trio ``SocketStream``, for synchronous non-blocking sends; else None.

    ``stream`` is a ``trio.SocketStream``, or any stream that exposes a trio
    socket as ``.socket`` the same way (a wrapper around one). Other streams
    (in-memory ones, TLS) give None and their callers take the async path.

    Reads the trio socket's ``_sock``: the stdlib socket it wraps (set
    non-blocking by trio). trio's public socket API only sends from a
    coroutine with checkpoints around the send; a caller that must send
    without yielding needs the socket itself. Use it only for calls that
    never block (``send`` of what the kernel takes now), never close it.
    """
    trio_socket = getattr(stream, "socket", None)
    if not isinstance(trio_socket, trio.socket.SocketType):
        return None
    raw = getattr(trio_socket, "_sock", None)
    return raw if isinstance(raw, socket.socket) else None
