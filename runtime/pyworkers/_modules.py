"""The ``workers``, ``js`` and ``pyodide`` modules, and how Worker code imports them.

Worker code imports ``workers``, ``js`` and ``pyodide`` (``pyodide.ffi``,
``pyodide.http``, ``pyodide.code``) as production code does. While the
shims are installed, an import hook at the front of ``sys.meta_path``
serves exactly those names from the modules built here; nothing else is
shadowed, and uninstalling removes the hook and the modules it created.

Invariants:

* One set of module objects per process: a Worker module imported once
  keeps working with any number of runtimes, because every shim finds its
  runtime through :func:`runtime.current_runtime` (a context variable), never
  through a module global.
* Installing also puts the runtime clock behind ``time.time()`` and
  ``datetime.now()`` and the trio-aware asyncio calls in place
  (:mod:`._time`, :mod:`._asyncio`); uninstalling undoes all of it.
* Install and uninstall nest: only the outermost uninstall removes anything.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

from ._asyncio import install as _install_asyncio, uninstall as _uninstall_asyncio
from ._ffi import (
    ConversionError,
    JsArray,
    JsBuffer,
    JsCallable,
    JsDoubleProxy,
    JsException,
    JsMap,
    JsMutableMap,
    JsNull,
    JsOnceCallable,
    JsPromise,
    JsProxy,
    create_once_callable,
    create_proxy,
    destroy_proxies,
    jsnull,
    to_js,
)
from ._js import to_global
from ._sdk import (
    AbortError,
    BodyUsedError,
    DurableObject,
    FetchResponse,
    HttpStatusError,
    PyodideFetchResponse,
    Request,
    Response,
    WorkerEntrypoint,
    WorkflowEntrypoint,
    _EnvWrapper,
    fetch,
    handler,
    import_from_javascript,
    patch_env,
    pyfetch,
    python_from_rpc,
    python_to_rpc,
    relaxed_call,
)
from ._sdktypes import (
    BLOB_VALUE,
    FORM_DATA_VALUE,
    JS_BODY,
    Blob,
    BlobEnding,
    Context,
    FetchKwargs,
    File,
    FormData,
    RequestInitCfProperties,
)
from ._time import install as _install_time, uninstall as _uninstall_time

__all__ = ["MODULE_NAMES", "install", "installed", "is_installed", "shim_module", "uninstall"]

#: The version of Pyodide whose rules the shims follow (what Python Workers run).
PYODIDE_VERSION: Final = "0.28.2"


def _module(name: str, doc: str, values: dict[str, Any], *, package: bool = False) -> types.ModuleType:
    module = types.ModuleType(name, doc)
    module.__dict__.update(values)
    module.__all__ = sorted(k for k in values if not k.startswith("_"))  # type: ignore[attr-defined]
    if package:
        module.__path__ = []
    module.__shardsim_shim__ = True  # type: ignore[attr-defined]
    return module


def _workers_getattr(name: str) -> Any:
    if name == "env":
        # As the SDK's workers.__getattr__: env with its bindings wrapped (RPC through the SDK's conversions).
        return _EnvWrapper(import_from_javascript("cloudflare:workers").env)
    if name in ("wait_until", "waitUntil"):
        return import_from_javascript("cloudflare:workers").waitUntil
    raise AttributeError(f"module 'workers' has no attribute {name!r}")


def _js_getattr(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    return to_global(name)


_TYPING_HEADERS = "dict[str, str] | list[tuple[str, str]] | js.Headers"


def _build() -> dict[str, types.ModuleType]:
    workers = _module(
        "workers",
        "The Python Workers SDK, as shardsim emulates it (see runtime.pyworkers).",
        {
            "DurableObject": DurableObject,
            "WorkerEntrypoint": WorkerEntrypoint,
            "WorkflowEntrypoint": WorkflowEntrypoint,
            "Request": Request,
            "Response": Response,
            "FetchResponse": FetchResponse,
            # In production these are type aliases, not classes (construct js.Headers instead).
            "Headers": _TYPING_HEADERS,
            "Body": "str | FormData | JSBody",
            "JSBody": JS_BODY,
            "BlobValue": BLOB_VALUE,
            "FormDataValue": FORM_DATA_VALUE,
            "BlobEnding": BlobEnding,
            "Blob": Blob,
            "File": File,
            "FormData": FormData,
            "Context": Context,
            "FetchKwargs": FetchKwargs,
            "RequestInitCfProperties": RequestInitCfProperties,
            "fetch": fetch,
            "handler": handler,
            "import_from_javascript": import_from_javascript,
            "patch_env": patch_env,
            "python_from_rpc": python_from_rpc,
            "python_to_rpc": python_to_rpc,
        },
    )
    workers.__getattr__ = _workers_getattr  # type: ignore[method-assign]
    workers.__all__ = sorted([*workers.__all__, "env", "waitUntil", "wait_until"])  # type: ignore[attr-defined]
    js = _module("js", "The JavaScript global scope, as shardsim emulates it.", {})
    js.__getattr__ = _js_getattr  # type: ignore[method-assign]
    ffi = _module(
        "pyodide.ffi",
        "Pyodide's foreign function interface, as shardsim emulates it.",
        {
            "ConversionError": ConversionError,
            "JsArray": JsArray,
            "JsBuffer": JsBuffer,
            "JsCallable": JsCallable,
            "JsDoubleProxy": JsDoubleProxy,
            "JsException": JsException,
            "JsMap": JsMap,
            "JsMutableMap": JsMutableMap,
            "JsNull": JsNull,
            "JsOnceCallable": JsOnceCallable,
            "JsPromise": JsPromise,
            "JsProxy": JsProxy,
            "IN_BROWSER": True,
            "create_once_callable": create_once_callable,
            "create_proxy": create_proxy,
            "destroy_proxies": destroy_proxies,
            "jsnull": jsnull,
            "to_js": to_js,
        },
    )
    http = _module(
        "pyodide.http",
        "pyodide.http, as shardsim emulates it (fetch reaches loopback addresses only).",
        {
            "FetchResponse": PyodideFetchResponse,
            "HttpStatusError": HttpStatusError,
            "BodyUsedError": BodyUsedError,
            "AbortError": AbortError,
            "pyfetch": pyfetch,
        },
    )
    code = _module("pyodide.code", "pyodide.code, as shardsim emulates it.", {"relaxed_call": relaxed_call})
    pyodide = _module(
        "pyodide",
        "Pyodide, as shardsim emulates the parts Python Workers use.",
        {"__version__": PYODIDE_VERSION, "ffi": ffi, "http": http, "code": code},
        package=True,
    )
    return {
        "workers": workers,
        "js": js,
        "pyodide": pyodide,
        "pyodide.ffi": ffi,
        "pyodide.http": http,
        "pyodide.code": code,
    }


_MODULES: Final = _build()
#: The module names the shims provide.
MODULE_NAMES: Final = tuple(_MODULES)


def shim_module(name: str) -> types.ModuleType:
    """The shim module ``name`` (one of :data:`MODULE_NAMES`), installed or not."""
    return _MODULES[name]


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the shim modules to ``import`` while installed."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _MODULES:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=fullname == "pyodide")

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _MODULES[spec.name]

    def exec_module(self, module: types.ModuleType) -> None:
        """The modules are built already."""


_FINDER: Final = _Finder()
_depth = 0
_displaced: dict[str, types.ModuleType | None] = {}


def install() -> None:
    """Make ``import workers`` / ``js`` / ``pyodide`` give the shims, and the clock and asyncio follow the runtime.

    Nests with :func:`uninstall` (a counter). A module of the same name
    already imported from elsewhere is set aside and put back on the last
    uninstall.
    """
    global _depth
    _depth += 1
    if _depth > 1:
        return
    for name, module in _MODULES.items():
        existing = sys.modules.get(name)
        if existing is not module:
            _displaced[name] = existing
        sys.modules[name] = module
    sys.meta_path.insert(0, _FINDER)
    _install_time()
    _install_asyncio()


def uninstall() -> None:
    """Undo one :func:`install`; the last one restores everything."""
    global _depth
    if _depth == 0:
        return
    _depth -= 1
    if _depth:
        return
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
    for name in _MODULES:
        previous = _displaced.pop(name, None)
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
    _uninstall_time()
    _uninstall_asyncio()


def is_installed() -> bool:
    """Whether the shims are installed."""
    return _depth > 0


@contextmanager
def installed() -> Iterator[None]:
    """Install the shims for the ``with`` block (the way tests import a Worker module)."""
    install()
    try:
        yield
    finally:
        uninstall()
