"""runtime._trio_compat: each reach into trio's internals, pinned, and what each function answers.

The pins fail first, naming the attribute, when a trio release changes
the shape we read (checked against trio 0.35); the behaviour tests say
what the runtime relies on, and compare with trio's public API where
there is an equivalent.
"""

from __future__ import annotations

import collections
import socket
import types

import pytest
import trio
import trio.testing

from runtime import _trio_compat
from runtime._trio_compat import _checkpoint_needed_public, checkpoint_needed, raw_socket


def pinned(obj: object, name: str, kind: type | tuple[type, ...]) -> object:
    """``obj.name``, failing with what changed if it is missing or of another type."""
    where = f"trio {trio.__version__}: {type(obj).__module__}.{type(obj).__qualname__}"
    assert hasattr(obj, name), f"{where} has no {name!r} any more; runtime/_trio_compat.py reads it"
    value = getattr(obj, name)
    assert isinstance(value, kind), (
        f"{where}.{name} is a {type(value).__qualname__}, not {kind}; runtime/_trio_compat.py reads it"
    )
    return value


# --------------------------------------------------------------------------- pins


def test_the_run_context_is_where_checkpoint_needed_reads_it() -> None:
    assert _trio_compat._HAVE_RUN_CONTEXT, (
        "trio._core._run.GLOBAL_RUN_CONTEXT is gone: checkpoint_needed() answers from the slow public API"
    )


async def test_the_task_and_runner_have_the_shape_checkpoint_needed_reads() -> None:
    from trio._core._run import GLOBAL_RUN_CONTEXT

    task = pinned(GLOBAL_RUN_CONTEXT, "task", trio.lowlevel.Task)
    assert task is trio.lowlevel.current_task(), "GLOBAL_RUN_CONTEXT.task is not the current task"
    runner = pinned(task, "_runner", object)
    pinned(runner, "runq", collections.deque)
    pinned(runner, "ki_pending", bool)
    cancel_status = pinned(task, "_cancel_status", object)
    pinned(cancel_status, "effectively_cancelled", bool)


def test_a_trio_socket_wraps_the_stdlib_socket_as_sock() -> None:
    a, b = socket.socketpair()
    with a, b:
        trio_socket = trio.socket.from_stdlib_socket(a)
        assert isinstance(trio_socket, trio.socket.SocketType)
        assert pinned(trio_socket, "_sock", socket.socket) is a, (
            "a trio socket's _sock is not the socket it wraps"
        )


# --------------------------------------------------------------------------- checkpoint_needed


def decide() -> tuple[bool, bool]:
    """checkpoint_needed() from trio's internals, and from the public API."""
    return checkpoint_needed(), _checkpoint_needed_public()


async def test_nothing_runnable_and_not_cancelled_needs_no_checkpoint() -> None:
    assert trio.lowlevel.current_statistics().tasks_runnable == 0
    assert decide() == (False, False)


async def test_runnable_tasks_need_a_checkpoint() -> None:
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(trio.lowlevel.checkpoint)
        assert trio.lowlevel.current_statistics().tasks_runnable == 3
        assert decide() == (True, True)
    assert decide() == (False, False)


async def test_a_cancelled_task_needs_a_checkpoint_and_it_raises() -> None:
    with trio.CancelScope() as scope:
        scope.cancel()
        assert decide() == (True, True)
        with trio.CancelScope(shield=True):
            assert decide() == (False, False)  # shielded: not effectively cancelled
            await trio.lowlevel.checkpoint()
        await trio.lowlevel.checkpoint()
        raise AssertionError("a checkpoint in a cancelled scope did not raise")
    assert scope.cancelled_caught
    assert decide() == (False, False)


async def test_a_pending_keyboard_interrupt_needs_a_checkpoint() -> None:
    """Only the internals see it; the public API waits for the next full checkpoint."""
    from trio._core._run import GLOBAL_RUN_CONTEXT

    runner = GLOBAL_RUN_CONTEXT.task._runner
    runner.ki_pending = True
    try:
        assert decide() == (True, False)
    finally:
        runner.ki_pending = False  # before any checkpoint, which would deliver it


async def test_checkpoint_needed_is_no_checkpoint_and_writes_nothing() -> None:
    """trio's testing helpers see no checkpoint: nothing counts one behind trio's back."""
    with trio.testing.assert_no_checkpoints():
        assert not checkpoint_needed()
    with trio.CancelScope() as scope:
        scope.cancel()
        with trio.testing.assert_no_checkpoints():
            assert checkpoint_needed()
        await trio.lowlevel.checkpoint()
    assert scope.cancelled_caught


async def test_without_the_run_context_the_public_api_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_trio_compat, "_HAVE_RUN_CONTEXT", False)
    assert not checkpoint_needed()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.lowlevel.checkpoint)
        assert checkpoint_needed()
    with trio.CancelScope() as scope:
        scope.cancel()
        assert checkpoint_needed()
        await trio.lowlevel.checkpoint()
    assert scope.cancelled_caught


async def test_a_task_of_another_shape_falls_back_to_the_public_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_trio_compat, "_RUN_CONTEXT", types.SimpleNamespace(task=object()))
    assert not checkpoint_needed()
    with trio.CancelScope() as scope:
        scope.cancel()
        assert checkpoint_needed()
        await trio.lowlevel.checkpoint()
    assert scope.cancelled_caught


def test_checkpoint_needed_outside_trio_raises_as_trio_does() -> None:
    with pytest.raises(RuntimeError):
        checkpoint_needed()


# --------------------------------------------------------------------------- raw_socket


def test_raw_socket_is_the_stdlib_socket_under_a_socket_stream() -> None:
    a, b = socket.socketpair()
    with a, b:
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(a))
        assert raw_socket(stream) is a
        # A wrapper that exposes the trio socket as .socket, as SocketStream does.
        assert raw_socket(types.SimpleNamespace(socket=stream.socket)) is a
        # A stdlib socket is no trio socket: nothing to unwrap.
        assert raw_socket(types.SimpleNamespace(socket=a)) is None


def test_streams_without_a_trio_socket_have_no_raw_socket() -> None:
    send, receive = trio.testing.memory_stream_pair()
    assert raw_socket(send) is None
    assert raw_socket(receive) is None
    assert raw_socket(object()) is None
