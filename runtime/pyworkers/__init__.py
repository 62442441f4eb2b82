"""The Python Workers platform as Worker code sees it: ``workers``, ``js``, ``pyodide``.

Worker code for shardsim is Worker code for Cloudflare: it imports
``workers`` (the Python Workers SDK), ``js`` (JavaScript's globals) and
``pyodide`` (``pyodide.ffi.to_js``, ``create_proxy``, ...), and every value
it hands to JavaScript crosses Pyodide's boundary. This package provides
those modules over the runtime, converting values by Pyodide's rules and the
SDK's, so that what works here works deployed and what would break deployed
breaks here, with an error that says why and how to fix it.

The dev server installs the modules for the Worker it serves. Tests,
benchmarks and scripts install them with :func:`installed`::

    with runtime.pyworkers.installed():
        import my_worker                     # imports workers / js / pyodide
    async with open_runtime(objects={"LISTS": my_worker.List}) as rt:
        ...

A module imported once keeps working with any number of runtimes: the
shims find the runtime of the code that calls them (``current_runtime()``).

For the layers above (the dev server): :func:`to_python` / :func:`to_javascript`
cross a value over Pyodide's boundary, and :func:`register_host` gives a
runtime object type its JavaScript surface (a :class:`JsProxy` subclass).
"""

from __future__ import annotations

from ._errors import NotEmulatedError as NotEmulatedError
from ._ffi import (
    JsProxy as JsProxy,
    register_host as register_host,
    to_javascript as to_javascript,
    to_python as to_python,
)
from ._hosts import ExecutionContext as ExecutionContext, ScheduledController as ScheduledController
from ._modules import (
    MODULE_NAMES as MODULE_NAMES,
    PYODIDE_VERSION as PYODIDE_VERSION,
    install as install,
    installed as installed,
    is_installed as is_installed,
    shim_module as shim_module,
    uninstall as uninstall,
)
from ._sdk import (
    DurableObject as DurableObject,
    WorkerEntrypoint as WorkerEntrypoint,
    relaxed_call as relaxed_call,
)

__all__ = [
    "MODULE_NAMES",
    "PYODIDE_VERSION",
    "DurableObject",
    "ExecutionContext",
    "JsProxy",
    "NotEmulatedError",
    "ScheduledController",
    "WorkerEntrypoint",
    "install",
    "installed",
    "is_installed",
    "register_host",
    "relaxed_call",
    "shim_module",
    "to_javascript",
    "to_python",
    "uninstall",
]
