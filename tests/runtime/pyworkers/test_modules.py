"""The ``workers``, ``js`` and ``pyodide`` modules: how they are installed, and what Worker code gets from them.

Covers runtime/pyworkers/_modules.py (the import hook and the module
objects), _time.py and _asyncio.py (the patches installing puts in place),
the parts of the SDK reached through the ``workers`` module
(``env``, ``waitUntil``, ``import_from_javascript``, ``patch_env``,
``handler``, ``WorkflowEntrypoint``) and ``pyodide.ffi.JsException``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import sys
import time
import traceback
import types
from collections.abc import Iterator
from typing import Any

import pytest
import trio

from runtime import RuntimeConfig, open_runtime
from runtime.pyworkers import (
    MODULE_NAMES,
    PYODIDE_VERSION,
    JsProxy,
    install,
    installed,
    is_installed,
    shim_module,
    to_javascript,
    to_python,
    uninstall,
)
from runtime.pyworkers._ffi import JsException
from runtime.pyworkers._modules import _FINDER
from runtime.pyworkers._sdk import handler
from tests.runtime.conftest import EPOCH_MS, config

from .helpers import worker_module

#: Every asyncio function the install replaces (the trio-aware ones and the refused ones).
ASYNCIO_NAMES = (
    "sleep",
    "gather",
    "create_task",
    "ensure_future",
    "wait_for",
    "shield",
    "get_running_loop",
    "get_event_loop",
    "run",
    "wait",
    "as_completed",
    "to_thread",
)


def _patched_values() -> dict[str, Any]:
    """The process-wide values installing replaces, by a name for the assertion messages."""
    values: dict[str, Any] = {
        "time.time": time.time,
        "time.time_ns": time.time_ns,
        "datetime.datetime": dt.datetime,
        "datetime.date": dt.date,
    }
    values.update({f"asyncio.{name}": getattr(asyncio, name) for name in ASYNCIO_NAMES})
    return values


def _assert_same(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert after.keys() == before.keys()
    for name, value in before.items():
        assert after[name] is value, name


@pytest.fixture(autouse=True)
def no_shims_left() -> Iterator[None]:
    """Every test starts with the shims uninstalled and leaves them so, even when it fails midway."""
    assert not is_installed()
    try:
        yield
    finally:
        while is_installed():
            uninstall()


# -- install / uninstall -------------------------------------------------------------------------


def test_the_shims_are_exactly_workers_js_and_pyodide() -> None:
    assert MODULE_NAMES == ("workers", "js", "pyodide", "pyodide.ffi", "pyodide.http", "pyodide.code")
    for name in MODULE_NAMES:
        module = shim_module(name)
        assert isinstance(module, types.ModuleType)
        assert module.__name__ == name
    with pytest.raises(KeyError):
        shim_module("pyodide.console")


def test_while_installed_exactly_the_shims_import() -> None:
    with installed():
        assert is_installed()
        for name in MODULE_NAMES:
            assert importlib.import_module(name) is shim_module(name)
            assert sys.modules[name] is shim_module(name)
        pyodide = shim_module("pyodide")
        assert pyodide.ffi is shim_module("pyodide.ffi")
        assert pyodide.http is shim_module("pyodide.http")
        assert pyodide.code is shim_module("pyodide.code")
        # Nothing else under these names: Pyodide's other modules are not emulated.
        with pytest.raises(ModuleNotFoundError, match=r"^No module named 'pyodide\.console'$"):
            importlib.import_module("pyodide.console")
        with pytest.raises(ModuleNotFoundError, match=r"'workers' is not a package"):
            importlib.import_module("workers.asgi")


def test_the_import_hook_serves_a_shim_removed_from_sys_modules() -> None:
    with installed():
        assert sys.meta_path[0] is _FINDER
        del sys.modules["js"]
        assert importlib.import_module("js") is shim_module("js")
        assert sys.modules["js"] is shim_module("js")


def test_uninstall_removes_the_modules_and_restores_every_patch() -> None:
    before = _patched_values()
    with installed():
        during = _patched_values()
        for name, value in before.items():
            assert during[name] is not value, name
    _assert_same(before, _patched_values())
    assert not is_installed()
    assert _FINDER not in sys.meta_path
    for name in MODULE_NAMES:
        assert name not in sys.modules
    for name in ("workers", "js", "pyodide"):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(name)


def test_install_and_uninstall_nest() -> None:
    before = _patched_values()
    install()
    install()
    with installed():
        assert is_installed()
    uninstall()
    # One install is still outstanding: nothing was removed.
    assert is_installed()
    assert sys.modules["workers"] is shim_module("workers")
    assert time.time is not before["time.time"]
    assert asyncio.sleep is not before["asyncio.sleep"]
    uninstall()
    assert not is_installed()
    assert "workers" not in sys.modules
    _assert_same(before, _patched_values())


def test_an_unbalanced_uninstall_is_a_no_op() -> None:
    before = _patched_values()
    uninstall()
    uninstall()
    assert not is_installed()
    _assert_same(before, _patched_values())
    # The counter did not go below zero: one install is enough, and one uninstall undoes it.
    install()
    assert is_installed()
    assert sys.modules["js"] is shim_module("js")
    uninstall()
    assert not is_installed()
    assert "js" not in sys.modules
    _assert_same(before, _patched_values())


def test_installed_uninstalls_when_its_block_raises() -> None:
    before = _patched_values()
    with pytest.raises(ZeroDivisionError), installed():
        _ = 1 / 0
    assert not is_installed()
    assert "pyodide" not in sys.modules
    _assert_same(before, _patched_values())


def test_a_module_of_the_same_name_is_set_aside_and_put_back(monkeypatch: pytest.MonkeyPatch) -> None:
    other = types.ModuleType("js")
    monkeypatch.setitem(sys.modules, "js", other)
    with installed():
        assert importlib.import_module("js") is shim_module("js")
    assert sys.modules["js"] is other


def test_a_patch_made_before_install_is_put_back(monkeypatch: pytest.MonkeyPatch) -> None:
    # Another tool (a fake clock, a test's monkeypatch) patched these first: uninstalling restores its
    # versions, not the interpreter's.
    def fake_time() -> float:
        return 1.0

    def fake_time_ns() -> int:
        return 1

    class FakeDatetime(dt.datetime):
        pass

    async def fake_sleep(delay: float, result: Any = None) -> Any:
        return result

    monkeypatch.setattr(time, "time", fake_time)
    monkeypatch.setattr(time, "time_ns", fake_time_ns)
    monkeypatch.setattr(dt, "datetime", FakeDatetime)
    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    with installed():
        assert time.time is not fake_time
    assert time.time is fake_time
    assert time.time_ns is fake_time_ns
    assert dt.datetime is FakeDatetime
    assert asyncio.sleep is fake_sleep


# -- pyodide, js -------------------------------------------------------------------------------


def test_pyodide_is_the_version_python_workers_run() -> None:
    assert PYODIDE_VERSION == "0.28.2"
    assert shim_module("pyodide").__version__ == "0.28.2"
    assert shim_module("pyodide.ffi").IN_BROWSER is True


def test_the_js_module_has_no_dunder_globals() -> None:
    js = shim_module("js")
    with pytest.raises(AttributeError):
        _ = js.__wrapped__
    assert not hasattr(js, "__file__")


# -- one Worker module, several runtimes ---------------------------------------------------------

COUNTER = """
from js import Date
import workers
from workers import DurableObject


class Counter(DurableObject):
    async def bump(self):
        count = (await self.ctx.storage.get("count") or 0) + 1
        await self.ctx.storage.put("count", count)
        return [count, Date.now(), workers.env.WHO]
"""

EPOCH_A = EPOCH_MS
EPOCH_B = EPOCH_MS + 86_400_000  # a day later


async def test_one_worker_module_serves_runtimes_one_after_the_other(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, COUNTER) as mod:
        async with open_runtime(
            objects={"C": mod.Counter}, vars={"WHO": "a"}, config=RuntimeConfig(epoch_ms=EPOCH_A)
        ) as rt:
            stub = rt.env.C.getByName("x")
            assert await stub.bump() == [1, EPOCH_A, "a"]
            assert await stub.bump() == [2, EPOCH_A, "a"]
        async with open_runtime(
            objects={"C": mod.Counter}, vars={"WHO": "b"}, config=RuntimeConfig(epoch_ms=EPOCH_B)
        ) as rt:
            # A new runtime: its own storage, clock and env.
            assert await rt.env.C.getByName("x").bump() == [1, EPOCH_B, "b"]


async def test_one_worker_module_serves_two_runtimes_at_the_same_time(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, COUNTER) as mod:
        async with (
            open_runtime(
                objects={"C": mod.Counter}, vars={"WHO": "a"}, config=RuntimeConfig(epoch_ms=EPOCH_A)
            ) as rt_a,
            open_runtime(
                objects={"C": mod.Counter}, vars={"WHO": "b"}, config=RuntimeConfig(epoch_ms=EPOCH_B)
            ) as rt_b,
        ):
            a, b = rt_a.env.C.getByName("x"), rt_b.env.C.getByName("x")
            assert await a.bump() == [1, EPOCH_A, "a"]
            assert await a.bump() == [2, EPOCH_A, "a"]
            assert await b.bump() == [1, EPOCH_B, "b"]
            await trio.sleep(10)
            assert await a.bump() == [3, EPOCH_A + 10_000, "a"]
            assert await b.bump() == [2, EPOCH_B + 10_000, "b"]

            # Called concurrently, each call still finds its own runtime.
            results: dict[str, list[Any]] = {}

            async def call(key: str, stub: Any) -> None:
                results[key] = await stub.bump()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(call, "a", a)
                nursery.start_soon(call, "b", b)
            assert results == {"a": [4, EPOCH_A + 10_000, "a"], "b": [3, EPOCH_B + 10_000, "b"]}
            assert rt_a.dump_storage(a)["kv"] == {"count": 4}
            assert rt_b.dump_storage(b)["kv"] == {"count": 3}


async def test_a_worker_module_imported_once_runs_after_the_install_ends(tmp_path, autojump_clock) -> None:
    # The pattern runtime.pyworkers documents for tests: import under installed(), run afterwards.
    with worker_module(tmp_path, COUNTER) as mod:
        pass
    assert not is_installed()
    async with open_runtime(objects={"C": mod.Counter}, vars={"WHO": "a"}, config=config()) as rt:
        assert await rt.env.C.getByName("x").bump() == [1, EPOCH_MS, "a"]


# -- the workers module: env, waitUntil, import_from_javascript, patch_env --------------------------

ENV_WORKER = """
import asyncio

import workers
from workers import DurableObject, import_from_javascript, patch_env

FINISHED = []


class Env(DurableObject):
    async def read(self):
        env = workers.env
        raw = import_from_javascript("cloudflare:workers").env
        return [type(env).__name__, env.GREETING, sorted(dir(env)), raw.GREETING, raw.constructor.name]

    async def rpc_through_module_env(self):
        # workers.env wraps its bindings as the SDK does: RPC converts its values.
        return await workers.env.ENV.getByName("other").echo({"a": [1, None]})

    async def echo(self, value):
        return [type(value).__name__, value.a]

    async def later(self):
        async def work(tag):
            await asyncio.sleep(1)
            FINISHED.append(tag)

        workers.waitUntil(work("waitUntil"))
        workers.wait_until(work("wait_until"))
        import_from_javascript("cloudflare:workers").waitUntil(work("import_from_javascript"))
        return list(FINISHED)

    async def patched(self):
        with patch_env({"EXTRA": "x"}, GREETING="patched", COUNT=3):
            inside = [workers.env.EXTRA, workers.env.GREETING, workers.env.COUNT]
        try:
            workers.env.EXTRA
        except AttributeError as exc:
            gone = str(exc)
        return [inside, workers.env.GREETING, gone]

    async def unknown_module(self):
        try:
            import_from_javascript("cloudflare:sockets")
        except ImportError as exc:
            return str(exc)
"""


async def test_workers_env_is_the_runtimes_env_wrapped_by_the_sdk(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, ENV_WORKER) as mod:
        async with open_runtime(objects={"ENV": mod.Env}, vars={"GREETING": "hi"}, config=config()) as rt:
            stub = rt.env.ENV.getByName("e")
            assert await stub.read() == ["_EnvWrapper", "hi", ["ENV", "GREETING"], "hi", "Object"]
            assert await stub.rpc_through_module_env() == ["JsDict", [1, None]]


async def test_wait_until_runs_the_work_after_the_handler_returns(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, ENV_WORKER) as mod:
        async with open_runtime(objects={"ENV": mod.Env}, config=config()) as rt:
            assert await rt.env.ENV.getByName("e").later() == []
            assert mod.FINISHED == []
            await trio.sleep(1.5)
            assert sorted(mod.FINISHED) == ["import_from_javascript", "waitUntil", "wait_until"]


async def test_patch_env_sets_env_for_the_block_only(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, ENV_WORKER) as mod:
        async with open_runtime(objects={"ENV": mod.Env}, vars={"GREETING": "hi"}, config=config()) as rt:
            assert await rt.env.ENV.getByName("e").patched() == [["x", "patched", 3], "hi", "EXTRA"]


async def test_import_from_javascript_refuses_modules_it_does_not_emulate(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, ENV_WORKER) as mod:
        async with open_runtime(objects={"ENV": mod.Env}, config=config()) as rt:
            assert await rt.env.ENV.getByName("e").unknown_module() == (
                "Failed to import 'cloudflare:sockets': shardsim emulates only 'cloudflare:workers' "
                "(env, waitUntil)"
            )


def test_env_wait_until_and_patch_env_need_a_running_runtime() -> None:
    workers = shim_module("workers")
    with pytest.raises(
        RuntimeError, match=r"^cloudflare:workers env is only available inside a running shardsim runtime$"
    ):
        _ = workers.env
    with pytest.raises(RuntimeError, match=r"^waitUntil\(\) needs a running shardsim runtime$"):
        workers.waitUntil(object())
    with pytest.raises(RuntimeError, match=r"^waitUntil\(\) needs a running shardsim runtime$"):
        workers.import_from_javascript("cloudflare:workers").waitUntil(object())
    with (
        pytest.raises(RuntimeError, match=r"^patch_env\(\) needs a running shardsim runtime$"),
        workers.patch_env(X="1"),
    ):
        pass  # pragma: no cover - entering the block raises
    with pytest.raises(AttributeError, match=r"^module 'workers' has no attribute 'nope'$"):
        _ = workers.nope


def test_the_handler_decorator_wraps_the_request_and_env() -> None:
    workers = shim_module("workers")
    js = shim_module("js")
    seen: list[Any] = []

    assert workers.handler is handler

    def on_fetch_unwrapped(request: Any, env: Any, ctx: Any = None) -> str:
        """The handler's docstring."""
        seen.append((request, env, ctx))
        return "done"

    on_fetch = handler(on_fetch_unwrapped)  # @handler, as Worker code writes it

    assert on_fetch.__name__ == "on_fetch_unwrapped"
    assert on_fetch.__doc__ == "The handler's docstring."
    js_request = js.Request.new("http://worker.test/path")
    js_env = to_python({"GREETING": "hi"})
    assert on_fetch(js_request, js_env, "ctx") == "done"
    request, env, ctx = seen[-1]
    assert isinstance(request, workers.Request)
    assert request.url == "http://worker.test/path"
    assert request.js_object == js_request
    assert type(env).__name__ == "_EnvWrapper"
    assert env.GREETING == "hi"
    assert ctx == "ctx"
    # A first argument that is not a Request (a scheduled event, say) is passed as it is.
    event = to_python({"cron": "* * * * *"})
    on_fetch(event, js_env)
    assert seen[-1][0] is event


async def test_workflow_entrypoint_is_importable_but_not_run(tmp_path, autojump_clock) -> None:
    source = """
from workers import WorkflowEntrypoint


class Flow(WorkflowEntrypoint):
    async def run(self, event, step):
        return event
"""
    with worker_module(tmp_path, source) as mod:
        flow = mod.Flow("ctx", "env")
        assert (flow.ctx, flow.env) == ("ctx", "env")
        with pytest.raises(TypeError, match=r"^binding 'F': <class 'worker_under_test\.Flow'> is not a "):
            async with open_runtime(objects={"F": mod.Flow}, config=config()):
                pass  # pragma: no cover - opening refuses


# -- JsException ---------------------------------------------------------------------------------

ERRORS_WORKER = """
from js import JSON, WebSocketPair
from pyodide.ffi import JsException, JsProxy
from workers import DurableObject


class Errors(DurableObject):
    async def caught(self):
        out = []
        try:
            JSON.parse("{")
        except JsException as e:
            out.append([e.name, isinstance(e, JsProxy), isinstance(e, Exception)])
        try:
            WebSocketPair()
        except JsException as e:
            out.append([e.name, e.message, e.stack, str(e)])
        try:
            await self.env.ERRORS.getByName("other").missing()
        except JsException as e:
            out.append([e.name, e.message])
        return out
"""


async def test_except_jsexception_catches_what_javascript_apis_throw(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, ERRORS_WORKER) as mod:
        async with open_runtime(objects={"ERRORS": mod.Errors}, config=config()) as rt:
            parse, constructor, rpc = await rt.env.ERRORS.getByName("e").caught()
    assert parse == ["SyntaxError", True, True]  # JSON.parse throws a SyntaxError, as in JavaScript
    message = "Class constructor WebSocketPair cannot be invoked without 'new'"
    assert constructor == ["TypeError", message, f"TypeError: {message}", f"TypeError: {message}"]
    assert rpc == ["TypeError", 'The RPC receiver does not implement the method "missing".']


def test_jsexception_constructs_a_new_javascript_error() -> None:
    assert shim_module("pyodide.ffi").JsException is JsException
    e = JsException("TypeError", "x")
    assert isinstance(e, JsProxy)
    assert isinstance(e, Exception)
    assert e.name == "TypeError"
    assert e.message == "x"
    assert e.stack == "TypeError: x"
    assert str(e) == "TypeError: x"
    assert repr(e) == "JsException('TypeError: x')"
    assert e.constructor.name == "TypeError"
    assert e.typeof == "object"
    assert dir(e) == []
    # As Pyodide's: a given stack is the error's stack; an unknown name makes a plain Error so named.
    assert (
        JsException("Error", "m", "Error: m\n    at f (worker.py:1)").stack
        == "Error: m\n    at f (worker.py:1)"
    )
    custom = JsException("QuotaError", "full")
    assert (custom.name, custom.constructor.name, str(custom)) == ("QuotaError", "Error", "QuotaError: full")


def test_a_jsexception_passed_back_to_javascript_is_the_same_error_object() -> None:
    js = shim_module("js")
    e = JsException("RangeError", "out of range")
    back = js.Object(e)  # Object(value) returns value itself
    assert isinstance(back, JsException)
    assert back == e
    assert back.js_id == e.js_id
    assert to_javascript(back) is to_javascript(e)
    assert js.Array.new(e)[0] == e
    # A property set on one is seen on the other: one JavaScript object.
    e.code = 7
    assert back.code == 7
    assert dir(back) == ["code"]


def test_a_jsexception_chains_and_takes_notes() -> None:
    js = shim_module("js")

    def parse() -> None:
        try:
            js.JSON.parse("{")
        except JsException as e:
            raise ValueError("wrapped") from e

    with pytest.raises(ValueError, match=r"^wrapped$") as wrapped:
        parse()
    cause = wrapped.value.__cause__
    assert isinstance(cause, JsException)
    assert cause.name == "SyntaxError"

    with pytest.raises(JsException, match=r"^TypeError: x$") as raised:
        raise JsException("TypeError", "x") from KeyError("k")
    assert isinstance(raised.value.__cause__, KeyError)

    e = JsException("Error", "m")
    e.add_note("while handling request 1")
    assert e.__notes__ == ["while handling request 1"]
    assert dir(e) == []  # a note is Python's, not a property of the JavaScript error
    *_, error_line, note_line = traceback.format_exception(e)
    assert error_line.endswith("JsException: Error: m\n")
    assert note_line == "while handling request 1\n"
