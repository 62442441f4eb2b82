"""Load a Worker's Python module the way Python Workers run it, and find its entry point.

The module imports ``workers``, ``js`` and ``pyodide`` as production code
does; :mod:`runtime.pyworkers` provides them (the dev server keeps them
installed while it runs). Modules loaded from the project directory are
remembered and dropped on unload, so ``--watch`` reloads re-execute them.
The entry point is called the way production's Pyodide entry point calls
it: a ``WorkerEntrypoint`` through the SDK's conversions (its ``fetch`` gets
a ``workers.Request``), a module-level ``on_fetch`` with JavaScript values.

Invariants:

* Every failure to load is a :class:`WorkerLoadError` whose text is
  ``<file>:<line>: <problem>`` pointing into the user's code, not a traceback.
* The entry point is, in order: a ``WorkerEntrypoint`` subclass named
  ``Default``; the module's only ``WorkerEntrypoint`` subclass; the
  module-level ``on_fetch`` / ``on_scheduled`` functions. Handlers are
  called relaxed (arguments they do not take are dropped), and an event
  the Worker has no handler for fails with production's message
  (``Handler does not export a fetch() function.``).
* Each binding the runtime does not emulate is a :class:`NotEmulated` stub
  whose every use raises :class:`NotEmulatedError`.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import traceback
import types
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime import pyworkers
from runtime._core import handler_of
from runtime._http import Request
from runtime._object import DurableObject, WorkerEntrypoint
from runtime.pyworkers import (
    ExecutionContext,
    JsProxy,
    NotEmulatedError,
    ScheduledController,
    register_host,
    relaxed_call,
    to_javascript,
    to_python,
)
from shards._errors import ShardsError

from ._wrangler import WranglerConfig

__all__ = ["LoadedWorker", "NotEmulated", "NotEmulatedError", "WorkerLoadError", "load_worker"]


class WorkerLoadError(ShardsError):
    """The Worker module failed to import or lacks what the config names; ``str()`` is ``file:line: problem``."""


class NotEmulated:
    """``env.<name>`` for a binding kind the runtime does not emulate: every use raises."""

    __slots__ = ("_kind", "_name")

    def __init__(self, name: str, kind: str) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_kind", kind)

    def _refuse(self, what: str) -> NotEmulatedError:
        return NotEmulatedError(
            f"env.{self._name}{what}: {self._kind} bindings are not emulated by shardsim "
            "(it emulates Durable Objects, D1, vars and secrets); test this code against wrangler dev"
        )

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)  # copy, pickle and inspect probe dunders
        raise self._refuse(f".{attr}")

    def __setattr__(self, attr: str, value: Any) -> None:
        raise self._refuse(f".{attr}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise self._refuse("()")

    def __getitem__(self, key: Any) -> Any:
        raise self._refuse(f"[{key!r}]")

    def __repr__(self) -> str:
        return f"<{self._kind} binding {self._name}: not emulated by shardsim>"


_KIND_CLASS = {
    "kv_namespaces": "KvNamespace",
    "r2_buckets": "R2Bucket",
    "queues": "WorkerQueue",
    "ai": "Ai",
    "vectorize": "VectorizeIndexImpl",
    "analytics_engine_datasets": "AnalyticsEngineDataset",
}


class _JsNotEmulated(JsProxy):
    """A binding shardsim does not emulate, as Worker code sees it: every use raises."""

    __slots__ = ()

    def _js_type_name(self) -> str:
        return _KIND_CLASS.get(self._js._kind, "Object")

    def _js_get(self, name: str) -> Any:
        getattr(self._js, name)  # raises NotEmulatedError
        raise AttributeError(name)  # pragma: no cover - the line above always raises


register_host(NotEmulated, _JsNotEmulated)


FetchHandler = Callable[[Request, Any, Any], Awaitable[Any]]


@dataclass(slots=True)
class LoadedWorker:
    """The imported Worker: its module, its Durable Object classes and its fetch handler."""

    module: types.ModuleType
    #: binding -> DurableObject subclass (bindings served by this Worker only).
    objects: dict[str, type[DurableObject]]
    #: The entry point's description, for the banner ("Default (WorkerEntrypoint)", "on_fetch").
    entry_name: str
    _entry: type[WorkerEntrypoint] | types.ModuleType
    #: Names of the modules imported from the project directory (dropped by unload()).
    owned_modules: tuple[str, ...]

    async def fetch(self, request: Request, env: Any, ctx: ExecutionContext) -> Any:
        """Call the entry point's fetch with ``request``; returns what it returns (a runtime value).

        Raises:
            TypeError: The Worker has no fetch handler (production's message).
        """
        if isinstance(self._entry, type):
            instance = self._entry(ctx, env)
            fetch = handler_of(instance, "fetch")
            if fetch is None:
                raise TypeError(NO_FETCH)
            result = fetch(request)
        else:
            on_fetch = getattr(self.module, "on_fetch", None)
            if not callable(on_fetch):
                raise TypeError(NO_FETCH)
            # Production calls a module-level handler relaxed, with JavaScript values.
            result = relaxed_call(on_fetch, to_python(request), to_python(env), to_python(ctx))
        if inspect.isawaitable(result):
            result = await result
        if isinstance(self._entry, type):
            return result
        # What production does with a handler's result: a FetchResponse gives its JavaScript response.
        js_response = getattr(result, "js_response", None)
        return to_javascript(js_response if js_response is not None else result, borrowed=False)

    @property
    def has_scheduled(self) -> bool:
        """Whether the Worker has a ``scheduled`` handler (a Cron Trigger has something to call)."""
        if isinstance(self._entry, type):
            return callable(getattr(self._entry, "scheduled", None))
        return callable(getattr(self.module, "on_scheduled", None))

    async def scheduled(self, controller: ScheduledController, env: Any, ctx: ExecutionContext) -> None:
        """Run the Worker's ``scheduled`` handler as a Cron Trigger would.

        Production calls it relaxed: ``scheduled(self, controller, env, ctx)``
        or any shorter form, with JavaScript values.

        Raises:
            TypeError: The Worker has no scheduled handler (production's message).
        """
        if isinstance(self._entry, type):
            instance = self._entry(ctx, env)
            handler = handler_of(instance, "scheduled")
            if handler is None:
                raise TypeError(NO_SCHEDULED)
            result = handler(controller, env, ctx)
        else:
            on_scheduled = getattr(self.module, "on_scheduled", None)
            if not callable(on_scheduled):
                raise TypeError(NO_SCHEDULED)
            result = relaxed_call(on_scheduled, to_python(controller), to_python(env), to_python(ctx))
        if inspect.isawaitable(result):
            await result

    def unload(self) -> None:
        """Drop the Worker's modules so the next load re-executes them."""
        for name in self.owned_modules:
            sys.modules.pop(name, None)


def _user_location(exc: BaseException, root: Path) -> str:
    """``file:line`` of the innermost traceback frame inside the project (else the outermost)."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    frames = traceback.extract_tb(exc.__traceback__)
    inside = [f for f in frames if Path(f.filename).resolve().is_relative_to(root)]
    chosen = inside[-1] if inside else (frames[-1] if frames else None)
    return f"{chosen.filename}:{chosen.lineno}" if chosen else "<unknown>"


def load_worker(config: WranglerConfig) -> LoadedWorker:
    """Import ``config.main`` with the shims installed; resolve its classes and entry point.

    Raises:
        WorkerLoadError: The module fails to import, a bound class is
            missing or is not a DurableObject, or there is no fetch handler.
    """
    main = config.main
    root = config.root.resolve()
    src_dir = str(main.parent)
    module_name = main.stem
    before = set(sys.modules)
    saved = {module_name: sys.modules.get(module_name)}
    pyworkers.install()  # the loader's own hold; the dev server holds another while it runs
    sys.modules.pop(module_name, None)
    sys.path.insert(0, src_dir)
    try:
        spec = importlib.util.spec_from_file_location(module_name, main)
        if spec is None or spec.loader is None:  # pragma: no cover - a .py path always has a spec
            raise WorkerLoadError(f"{main}: cannot be imported")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            if isinstance(exc, SyntaxError):
                problem = f"SyntaxError: {exc.msg}"
            else:
                problem = f"{type(exc).__name__}: {exc}"
            raise WorkerLoadError(f"{_user_location(exc, root)}: {problem}") from None
    except BaseException:
        _drop_new_modules(before, root)
        sys.modules.pop(module_name, None)
        raise
    finally:
        sys.path.remove(src_dir)
        pyworkers.uninstall()
        del saved
    owned = tuple(sorted(_new_project_modules(before, root) | {module_name}))
    try:
        objects = _bound_classes(config, module)
        entry, entry_name = _find_entry(module, main)
    except BaseException:
        for name in owned:
            sys.modules.pop(name, None)
        raise
    return LoadedWorker(
        module=module,
        objects=objects,
        entry_name=entry_name,
        _entry=entry,
        owned_modules=owned,
    )


#: The arguments production passes each handler (it drops the ones a handler does not take).
_HANDLER_ARGS: dict[str, tuple[str, ...]] = {
    "fetch": ("request",),
    "alarm": ("alarmInfo",),
    "webSocketMessage": ("ws", "message"),
    "webSocketClose": ("ws", "code", "reason", "wasClean"),
    "webSocketError": ("ws", "error"),
    "scheduled": ("controller", "env", "ctx"),
}


def _check_handlers(cls: type) -> None:
    """Refuse a handler that needs an argument production never passes (it would fail on every call)."""
    for name, passed in _HANDLER_ARGS.items():
        fn = getattr(cls, name, None)
        if not inspect.isfunction(fn):
            continue
        try:
            params = list(inspect.signature(fn).parameters.values())[1:]  # without self
        except (TypeError, ValueError):  # pragma: no cover - plain functions have signatures
            continue
        if any(p.kind is p.VAR_POSITIONAL for p in params):
            continue
        required = [
            p.name
            for p in params
            if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        keyword_only = [p.name for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
        if len(required) > len(passed) or keyword_only:
            extra = (required[len(passed) :] or keyword_only)[0]
            code = fn.__code__
            raise WorkerLoadError(
                f"{code.co_filename}:{code.co_firstlineno}: {cls.__name__}.{name}{inspect.signature(fn)} "
                f"needs {extra!r}, which production never passes: it calls {name}({', '.join(passed)})"
            )


def _bound_classes(config: WranglerConfig, module: types.ModuleType) -> dict[str, type[DurableObject]]:
    main = config.main
    objects: dict[str, type[DurableObject]] = {}
    for b in config.durable_objects:
        if b.script_name is not None:
            continue
        cls = getattr(module, b.class_name, None)
        if cls is None:
            raise WorkerLoadError(
                f"{main}: durable object class {b.class_name!r} (binding {b.name}) is not defined "
                "in this module"
            )
        if not (isinstance(cls, type) and issubclass(cls, DurableObject)):
            raise WorkerLoadError(
                f"{main}: {b.class_name} (binding {b.name}) must subclass workers.DurableObject"
            )
        _check_handlers(cls)
        objects[b.name] = cls
    return objects


#: Production's errors for an event the Worker exports no handler for.
NO_FETCH = "Handler does not export a fetch() function."
NO_SCHEDULED = "Handler does not export a scheduled() function."

#: The module-level handlers production calls (the legacy ``on_`` names).
_MODULE_HANDLERS = ("on_fetch", "on_scheduled")


def _find_entry(
    module: types.ModuleType, main: Path
) -> tuple[type[WorkerEntrypoint] | types.ModuleType, str]:
    """The Worker's default entry point: a ``Default`` (or only) WorkerEntrypoint, else the module's handlers."""
    default = getattr(module, "Default", None)
    if isinstance(default, type) and issubclass(default, WorkerEntrypoint):
        _check_entry_class(default, main, "Default")
        return default, "Default (WorkerEntrypoint)"
    entries = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, WorkerEntrypoint) and v.__module__ == module.__name__
    ]
    if len(entries) > 1:
        names = ", ".join(sorted(c.__name__ for c in entries))
        raise WorkerLoadError(
            f"{main}: several WorkerEntrypoint classes ({names}); name the one that serves HTTP Default"
        )
    if entries:
        _check_entry_class(entries[0], main, entries[0].__name__)
        return entries[0], f"{entries[0].__name__} (WorkerEntrypoint)"
    found = [name for name in _MODULE_HANDLERS if callable(getattr(module, name, None))]
    if not found:
        raise WorkerLoadError(
            f"{main}: no fetch handler: define class Default(WorkerEntrypoint) with "
            "async def fetch(self, request), or async def on_fetch(request, env)"
        )
    return module, ", ".join(found)


def _check_entry_class(cls: type, main: Path, name: str) -> None:
    if not callable(getattr(cls, "fetch", None)) and not callable(getattr(cls, "scheduled", None)):
        raise WorkerLoadError(f"{main}: {name} has no fetch(self, request) method")
    _check_handlers(cls)


def _new_project_modules(before: set[str], root: Path) -> set[str]:
    names: set[str] = set()
    for name in set(sys.modules) - before:
        mod = sys.modules.get(name)
        file = getattr(mod, "__file__", None)
        if file and Path(file).resolve().is_relative_to(root):
            names.add(name)
    return names


def _drop_new_modules(before: set[str], root: Path) -> None:
    for name in _new_project_modules(before, root):
        sys.modules.pop(name, None)
