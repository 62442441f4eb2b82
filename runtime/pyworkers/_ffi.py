"""Pyodide's foreign function interface, reproduced over shardsim's JavaScript stand-ins.

A deployed Python Worker runs on Pyodide: every value that crosses between
Python and JavaScript is translated by Pyodide's rules (Pyodide 0.28, the
"Type translations" chapter of its documentation). This module reproduces
those rules so that code which would break at a production boundary breaks
here too, with an error that says what production would do and how to fix
it, and code that works in production works here.

Two sides:

* **JavaScript values** are what the emulated JavaScript APIs (the runtime,
  and the ``js`` module's classes) take and return. They are plain Python
  objects of fixed types: ``None`` is ``undefined``, :data:`jsnull` is
  ``null``, ``int``/``float``/``str``/``bool`` are primitives, a ``dict`` is
  a plain ``Object``, a ``list`` an ``Array``, a :class:`JSMap` a ``Map``, a
  :class:`JSSet` a ``Set``, a :class:`JSUint8Array` / :class:`JSArrayBuffer`
  a buffer, an aware ``datetime`` a ``Date``, a :class:`JSFunction` a
  function, a :class:`JSPromise` a promise, a :class:`PyProxy` a proxy of a
  Python object, and any other object a *host object* whose JavaScript
  surface is a registered :class:`JsProxy` subclass (a ``WebSocket``, the
  ``DurableObjectState``, ...).
* **Python values** are what Worker code holds: implicit conversions
  (primitives) and :class:`JsProxy` objects for everything else.

Invariants:

* Crossing Python -> JavaScript implicitly (:func:`to_javascript`: arguments
  of a JavaScript call, values set on a JavaScript object) converts only
  ``int``, ``float``, ``str``, ``bool``, ``None`` and :data:`jsnull`; a
  :class:`JsProxy` gives back the value it proxies; anything else (``dict``,
  ``list``, ``bytes``, ``tuple``, a function, an object) becomes a
  :class:`PyProxy`, *borrowed* unless it came from :func:`create_proxy`.
* A borrowed PyProxy made for a call's arguments is destroyed when the call
  returns, or when the promise it returned settles (Pyodide's rule); a
  destroyed proxy refuses every use with Pyodide's message.
* Crossing JavaScript -> Python implicitly (:func:`to_python`: results,
  arguments of a Python callback, properties) converts primitives (a number
  that is integral and within ``Number.MAX_SAFE_INTEGER`` is an ``int``),
  ``undefined`` to ``None``, ``null`` to :data:`jsnull`, unwraps a PyProxy to
  its Python object, and proxies everything else.
* :func:`to_js` converts deeply (lists and tuples to arrays, dicts to maps or
  through ``dict_converter``, sets to sets, buffers to ``Uint8Array``);
  ``JsProxy.to_py`` converts back (arrays to lists, plain objects and maps
  to dicts, sets to sets, buffers to ``memoryview``), leaving other objects
  as proxies unless a ``default_converter`` says otherwise.
* An exception a JavaScript API throws reaches Python as a
  :class:`JsException` (``name`` and ``message``), as JavaScript errors reach
  Pyodide code, with the original chained as ``__cause__``; an exception a
  Python callback raised travels through JavaScript as a
  :class:`PythonError` and is the original exception again in Python.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import math
from collections.abc import (
    Awaitable,
    Callable,
    Generator,
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    MutableMapping,
    MutableSequence,
    ValuesView,
)
from typing import Any, ClassVar, Final, TypeVar, overload

from shards._errors import RemoteError

from ._errors import NotEmulatedError

__all__ = [
    "MAX_SAFE_INTEGER",
    "ConversionError",
    "JSArrayBuffer",
    "JSError",
    "JSFunction",
    "JSMap",
    "JSPromise",
    "JSSet",
    "JSUint8Array",
    "JsArray",
    "JsBuffer",
    "JsCallable",
    "JsDoubleProxy",
    "JsException",
    "JsMap",
    "JsMutableMap",
    "JsNull",
    "JsObjectMap",
    "JsOnceCallable",
    "JsPromise",
    "JsProxy",
    "PyProxy",
    "PythonError",
    "call_js",
    "create_once_callable",
    "create_proxy",
    "destroy_proxies",
    "from_js_exception",
    "js_error",
    "jsnull",
    "register_host",
    "to_javascript",
    "to_js",
    "to_python",
]

T = TypeVar("T")

#: JavaScript's Number.MAX_SAFE_INTEGER: the largest integer a number holds exactly.
MAX_SAFE_INTEGER: Final = 2**53 - 1

#: Pyodide's text for a use of a destroyed borrowed proxy.
BORROWED_DESTROYED: Final = (
    "This borrowed proxy was automatically destroyed at the end of a function call. "
    "Try using create_proxy or create_once_callable."
)
DESTROYED: Final = "Object has already been destroyed"


# ---------------------------------------------------------------------------------------------
# JavaScript values


class JsNull:
    """JavaScript's ``null`` as Python sees it (``pyodide.ffi.jsnull``): falsy, distinct from None."""

    _instance: ClassVar[JsNull | None] = None

    def __new__(cls) -> JsNull:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "jsnull"

    def __reduce__(self) -> str:
        return "jsnull"


jsnull: Final = JsNull()


class JSMap(dict[Any, Any]):
    """A JavaScript ``Map`` (keys are JavaScript primitives)."""


class JSSet(list[Any]):
    """A JavaScript ``Set`` (insertion order, no repeats)."""


class JSArrayBuffer(bytearray):
    """A JavaScript ``ArrayBuffer``."""


class JSUint8Array(bytearray):
    """A JavaScript ``Uint8Array`` (with its own buffer)."""


class JSError(Exception):
    """A JavaScript ``Error`` object: ``name``, ``message`` and any further properties.

    ``props`` holds the extra properties runtime errors carry (``remote``,
    ``retryable``, ``overloaded``, ``durableObjectReset``).
    """

    def __init__(self, name: str, message: str, props: dict[str, Any] | None = None) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message
        self.props = props or {}


class JSFunction:
    """A JavaScript function implemented by shardsim: ``fn(*js_args)`` takes and returns JavaScript values.

    ``construct`` (if any) is what ``new`` does. ``name`` is the function's
    JavaScript name (``fn.name``), used in error messages.
    """

    __slots__ = ("__weakref__", "construct", "fn", "name", "props")

    def __init__(
        self,
        name: str,
        fn: Callable[..., Any] | None,
        construct: Callable[..., Any] | None = None,
        props: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.fn = fn
        self.construct = construct
        #: Static properties (``Response.json``, ``Object.fromEntries``), as JavaScript values.
        self.props = props or {}

    def __repr__(self) -> str:
        return f"function {self.name}() {{ [native code] }}"


class JSPromise:
    """A JavaScript promise: ``awaitable`` resolves to a JavaScript value (or raises).

    ``convert``, if given, maps what ``awaitable`` returns to the promise's
    JavaScript value (one function call instead of a wrapping coroutine:
    every storage call makes a promise).
    """

    __slots__ = ("_awaitable", "_borrowed", "_convert", "_done", "_error", "_value")

    def __init__(
        self,
        awaitable: Awaitable[Any],
        borrowed: list[PyProxy] | None = None,
        convert: Callable[[Any], Any] | None = None,
    ) -> None:
        self._awaitable: Awaitable[Any] | None = awaitable
        self._borrowed = borrowed
        self._convert = convert
        self._done = False
        self._value: Any = None
        self._error: BaseException | None = None

    async def settle(self) -> Any:
        """Await the promise (once; later awaits see the same outcome) and return its JavaScript value."""
        if not self._done:
            awaitable = self._awaitable
            self._awaitable = None
            if awaitable is None:  # pragma: no cover - settle is not re-entered
                raise RuntimeError("promise awaited twice concurrently; please file a bug")
            try:
                value = await awaitable
                self._value = value if self._convert is None else self._convert(value)
            except Exception as exc:
                self._error = exc
            finally:
                self._done = True
                if self._borrowed:
                    for proxy in self._borrowed:
                        proxy.release()
        if self._error is not None:
            raise self._error
        return self._value

    def close(self) -> None:
        """Drop an awaitable nobody will await (avoids "never awaited" warnings)."""
        awaitable, self._awaitable = self._awaitable, None
        if awaitable is not None and inspect.iscoroutine(awaitable):
            awaitable.close()


class PyProxy:
    """A Python object as JavaScript holds it (Pyodide's ``PyProxy``).

    ``borrowed`` proxies are the ones Pyodide makes implicitly for a call's
    arguments: they are destroyed when the call returns (or its promise
    settles). :func:`create_proxy` makes persistent ones.
    """

    __slots__ = ("borrowed", "destroyed", "obj", "once")

    def __init__(self, obj: Any, *, borrowed: bool, once: bool = False) -> None:
        self.obj = obj
        self.borrowed = borrowed
        self.destroyed = False
        self.once = once

    def release(self) -> None:
        """The call that borrowed this proxy is over."""
        if self.borrowed:
            self.destroyed = True

    def get(self) -> Any:
        """The Python object, if the proxy is still alive."""
        if self.destroyed:
            raise JsException("Error", BORROWED_DESTROYED if self.borrowed else DESTROYED)
        return self.obj

    def call(self, *js_args: Any) -> Any:
        """JavaScript calls the proxy: the Python callable gets Python values, its result goes back.

        What the callable raises reaches JavaScript as a :class:`PythonError`.
        """
        fn = self.get()
        if self.once:
            self.destroyed = True
        try:
            result = fn(*[to_python(a) for a in js_args])
        except Exception as exc:
            raise PythonError(exc) from exc
        return to_javascript(result, borrowed=False)

    def __repr__(self) -> str:
        return f"[object PyProxy of {type(self.obj).__name__}]"


class PythonError(Exception):
    """A Python exception while it travels through JavaScript (Pyodide's ``PythonError``).

    Crossing back into Python it becomes the original exception again.
    """

    def __init__(self, original: Exception) -> None:
        super().__init__(f"PythonError: {type(original).__name__}: {original}")
        self.original = original


def from_js_exception(exc: Exception) -> BaseException:
    """What Python code sees for an exception a JavaScript API threw."""
    if isinstance(exc, PythonError):
        return exc.original
    if isinstance(exc, NotEmulatedError):
        return exc  # shardsim's own refusal, not something production's JavaScript would throw
    return js_error(exc)


def js_error(exc: BaseException) -> JsException:
    """The :class:`JsException` Python code sees for an error thrown by a JavaScript API."""
    if isinstance(exc, JsException):
        return exc
    if isinstance(exc, JSError):
        return JsException(exc)
    if isinstance(exc, RemoteError):
        name = exc.name  # an object's error, rebuilt for its caller: production keeps the name
    elif isinstance(exc, TypeError):
        name = "TypeError"
    elif isinstance(exc, ValueError):
        name = "RangeError"
    else:
        name = "Error"
    props = {
        flag: getattr(exc, flag)
        for flag in ("remote", "retryable", "overloaded", "durableObjectReset")
        if hasattr(exc, flag)
    }
    return JsException(JSError(name, str(exc), props))


class ConversionError(Exception):
    """A value cannot be converted as asked (``pyodide.ffi.ConversionError``)."""


# ---------------------------------------------------------------------------------------------
# Implicit conversions


def _number(value: float) -> int | float:
    """A JavaScript number as Python sees it: an int when integral and exact."""
    if math.isfinite(value) and value.is_integer() and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return int(value)
    return value


#: Host object types (runtime objects) -> their JsProxy class.
_HOSTS: dict[type, type[JsProxy]] = {}


def register_host(host_type: type, proxy_class: type[JsProxy]) -> None:
    """Show instances of ``host_type`` (a JavaScript host object) to Python as ``proxy_class``."""
    _HOSTS[host_type] = proxy_class
    _PROXY_CLASSES[host_type] = proxy_class  # exact type: to_python's first lookup


def _host_class(value: object) -> type[JsProxy] | None:
    cls = _HOSTS.get(type(value))
    if cls is None:
        for klass in type(value).__mro__[1:]:
            cls = _HOSTS.get(klass)
            if cls is not None:
                break
    return cls


def to_python(value: Any) -> Any:
    """A JavaScript value crossing into Python implicitly (Pyodide's JavaScript-to-Python table)."""
    if value is None or value is jsnull:
        return value
    t = type(value)
    if t is str or t is bool or t is int:
        return value
    if t is float:
        return _number(value)
    if t is PyProxy:
        return value.get()
    proxy_class = _PROXY_CLASSES.get(t)  # the common case first: a known JavaScript or host type
    if proxy_class is not None:
        return proxy_class(value)
    if isinstance(value, JsProxy):  # a Python object JavaScript got from to_js's default_converter
        return value
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return _number(value)
    if proxy_class is None:
        proxy_class = _host_class(value)
        if proxy_class is None:
            proxy_class = _generic_class(value)
    return proxy_class(value)


def to_javascript(value: Any, *, borrowed: bool = True) -> Any:
    """A Python value crossing into JavaScript implicitly (Pyodide's Python-to-JavaScript table).

    ``borrowed`` says whether a PyProxy made here is a call's borrowed
    proxy (destroyed after the call) or a persistent one.
    """
    if value is None or value is jsnull:
        return value
    t = type(value)
    if t is str or t is bool or t is int or t is float:
        return value
    if isinstance(value, JsProxy):
        return value._js
    if isinstance(value, bool | int | float | str):
        return value
    return PyProxy(value, borrowed=borrowed)


def call_js(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call a JavaScript function from Python, the way Pyodide does.

    Arguments cross implicitly; keyword arguments become one trailing plain
    object. Borrowed proxies made for the arguments are destroyed when the
    call returns, or when the promise it returns settles. The result crosses
    back implicitly; an error thrown by the JavaScript side is a
    :class:`JsException`.
    """
    if not kwargs:
        # The common call (ws.send(text), storage calls with primitives): nothing to convert or release.
        for arg in args:
            t = type(arg)
            if not (t is str or t is int or t is float or t is bool or arg is None):
                break
        else:
            try:
                result = fn(*args)
            except JsException:
                raise
            except Exception as exc:
                raise from_js_exception(exc) from exc
            return to_python(result)
    borrowed: list[PyProxy] = []
    js_args: list[Any] = []
    for arg in args:
        js = to_javascript(arg)
        if type(js) is PyProxy and js.borrowed:
            borrowed.append(js)
        js_args.append(js)
    if kwargs:
        options: dict[str, Any] = {}
        for key, arg in kwargs.items():
            js = to_javascript(arg)
            if type(js) is PyProxy and js.borrowed:
                borrowed.append(js)
            options[key] = js
        js_args.append(options)
    try:
        result = fn(*js_args)
    except JsException:
        _release(borrowed)
        raise
    except Exception as exc:
        _release(borrowed)
        raise from_js_exception(exc) from exc
    except BaseException:
        _release(borrowed)
        raise
    if type(result) is JSPromise:
        if borrowed:
            result._borrowed = (result._borrowed or []) + borrowed
        return to_python(result)
    _release(borrowed)
    return to_python(result)


def _release(proxies: list[PyProxy]) -> None:
    for proxy in proxies:
        proxy.release()


# ---------------------------------------------------------------------------------------------
# Proxies


class JsProxy:
    """A JavaScript value seen from Python (``pyodide.ffi.JsProxy``).

    Attribute access reads and writes the JavaScript object's properties;
    subclasses add the container, buffer, callable and promise protocols.
    (No ``__slots__`` here: :class:`JsException` is a proxy and an exception,
    and exceptions cannot share a slotted base.)
    """

    _typeof: ClassVar[str] = "object"

    def __init__(self, js: Any) -> None:
        object.__setattr__(self, "_js", js)

    # -- JavaScript's view of the object ---------------------------------------------------

    def _js_get(self, name: str) -> Any:
        """The property ``name`` as a JavaScript value; AttributeError when it is absent."""
        raise AttributeError(name)

    def _js_set(self, name: str, value: Any) -> None:
        raise TypeError(f"Cannot set property {name} of {self._js_type_name()}")

    def _js_delete(self, name: str) -> None:
        raise TypeError(f"Cannot delete property {name} of {self._js_type_name()}")

    def _js_keys(self) -> list[str]:
        return []

    def _js_type_name(self) -> str:
        return type(self._js).__name__

    def _js_to_string(self) -> str:
        return f"[object {self._js_type_name()}]"

    # -- Python protocol ----------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        # Python keywords are spelled with a trailing underscore (finally_, from_).
        js_name = name[:-1] if name.endswith("_") and name[:-1] in _KEYWORDS else name
        return to_python(self._js_get(js_name))

    def __setattr__(self, name: str, value: Any) -> None:
        self._js_set(name, to_javascript(value, borrowed=False))

    def __delattr__(self, name: str) -> None:
        self._js_delete(name)

    def __dir__(self) -> list[str]:
        return sorted(set(self._js_keys()))

    def __repr__(self) -> str:
        return self._js_to_string()

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JsProxy) and other._js is self._js

    def __hash__(self) -> int:
        return id(self._js)

    def __bool__(self) -> bool:
        return True

    @property
    def typeof(self) -> str:
        """JavaScript's ``typeof``."""
        return self._typeof

    @property
    def js_id(self) -> int:
        """An id of the JavaScript object (equal ids: the same object)."""
        return id(self._js)

    @property
    def constructor(self) -> Any:
        """The JavaScript constructor (``x.constructor``, with its ``name``)."""
        return to_python(JSFunction(self._js_type_name(), None))

    def object_keys(self) -> JsArray:
        """``Object.keys(x)``."""
        return JsArray(list(self._js_keys()))

    def object_values(self) -> JsArray:
        """``Object.values(x)``."""
        return JsArray([self._js_get(k) for k in self._js_keys()])

    def object_entries(self) -> JsArray:
        """``Object.entries(x)``."""
        return JsArray([[k, self._js_get(k)] for k in self._js_keys()])

    def as_object_map(self, *, hereditary: bool = False) -> JsObjectMap:
        """A view of the object's properties as a mutable mapping (``x["key"]``)."""
        return JsObjectMap(self._js, hereditary=hereditary)

    def new(self, *args: Any, **kwargs: Any) -> Any:
        """``new X(...)``."""
        raise TypeError(f"{self._js_to_string()} is not a constructor")

    def to_py(
        self,
        *,
        depth: int = -1,
        default_converter: Callable[[JsProxy, Callable[[Any], Any], Callable[[Any, Any], None]], Any]
        | None = None,
    ) -> Any:
        """Convert deeply to Python: arrays to lists, plain objects and maps to dicts, sets to sets, buffers to memoryviews."""
        return _Converter(depth, default_converter).convert(self._js)


_KEYWORDS: Final = frozenset(
    {
        "finally",
        "from",
        "return",
        "import",
        "class",
        "def",
        "del",
        "global",
        "in",
        "is",
        "lambda",
        "not",
        "or",
        "and",
        "pass",
        "raise",
        "try",
        "while",
        "with",
        "yield",
        "as",
        "assert",
        "break",
        "continue",
        "elif",
        "else",
        "except",
        "for",
        "if",
        "nonlocal",
        "None",
        "True",
        "False",
        "async",
        "await",
    }
)


class _JsObject(JsProxy):
    """A plain JavaScript ``Object``: properties are its keys."""

    __slots__ = ()

    def _js_get(self, name: str) -> Any:
        js: dict[str, Any] = self._js
        if name in js:
            return js[name]
        raise AttributeError(name)

    def _js_set(self, name: str, value: Any) -> None:
        self._js[name] = value

    def _js_delete(self, name: str) -> None:
        try:
            del self._js[name]
        except KeyError:
            raise AttributeError(name) from None

    def _js_keys(self) -> list[str]:
        return [str(k) for k in self._js]

    def _js_type_name(self) -> str:
        return "Object"


class JsObjectMap(MutableMapping[str, Any]):
    """``JsProxy.as_object_map()``: a plain object's properties as ``x["key"]``."""

    def __init__(self, js: Any, *, hereditary: bool) -> None:
        self._js = js
        self._hereditary = hereditary

    def _convert(self, value: Any) -> Any:
        if self._hereditary and type(value) is dict:
            return JsObjectMap(value, hereditary=True)
        return to_python(value)

    def __getitem__(self, key: str) -> Any:
        if type(self._js) is not dict or key not in self._js:
            raise KeyError(key)
        return self._convert(self._js[key])

    def __setitem__(self, key: str, value: Any) -> None:
        self._js[key] = to_javascript(value, borrowed=False)

    def __delitem__(self, key: str) -> None:
        del self._js[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._js))

    def __len__(self) -> int:
        return len(self._js)


class JsArray(JsProxy, MutableSequence[Any]):
    """A JavaScript ``Array`` (``pyodide.ffi.JsArray``)."""

    __slots__ = ()

    def _js_get(self, name: str) -> Any:
        if name == "length":
            return len(self._js)
        raise AttributeError(name)

    def _js_type_name(self) -> str:
        return "Array"

    def _js_to_string(self) -> str:
        return ",".join(_js_string(v) for v in self._js)

    @overload
    def __getitem__(self, idx: int) -> Any: ...

    @overload
    def __getitem__(self, idx: slice) -> JsArray: ...

    def __getitem__(self, idx: int | slice) -> Any:
        if isinstance(idx, slice):
            return JsArray(self._js[idx])
        if not isinstance(idx, int):
            raise TypeError("Expected index to be an integer")
        return to_python(self._js[idx])

    @overload
    def __setitem__(self, idx: int, value: Any) -> None: ...

    @overload
    def __setitem__(self, idx: slice, value: Iterable[Any]) -> None: ...

    def __setitem__(self, idx: int | slice, value: Any) -> None:
        if isinstance(idx, slice):
            self._js[idx] = [to_javascript(v, borrowed=False) for v in value]
        else:
            self._js[idx] = to_javascript(value, borrowed=False)

    def __delitem__(self, idx: int | slice) -> None:
        del self._js[idx]

    def __len__(self) -> int:
        return len(self._js)

    def __iter__(self) -> Iterator[Any]:
        for value in list(self._js):
            yield to_python(value)

    def __bool__(self) -> bool:
        return bool(self._js)

    def __contains__(self, value: object) -> bool:
        js = to_javascript(value, borrowed=False) if not isinstance(value, JsProxy) else value._js
        return any(v is js or (type(v) is type(js) and v == js) for v in self._js)

    def insert(self, index: int, value: Any) -> None:
        self._js.insert(index, to_javascript(value, borrowed=False))

    def push(self, value: Any) -> None:
        """``array.push(value)``."""
        self._js.append(to_javascript(value, borrowed=False))


class JsMap(JsProxy):
    """A JavaScript ``Map`` read as a Python mapping (``pyodide.ffi.JsMap``)."""

    __slots__ = ()

    def _js_get(self, name: str) -> Any:
        if name == "size":
            return len(self._js)
        if name in ("get", "has", "set", "delete", "keys", "values", "entries"):
            return JSFunction(name, getattr(self, f"_map_{name}"))
        raise AttributeError(name)

    def _map_get(self, key: Any) -> Any:
        return self._js.get(key)

    def _map_has(self, key: Any) -> bool:
        return key in self._js

    def _map_set(self, key: Any, value: Any) -> Any:
        self._js[key] = value
        return self._js

    def _map_delete(self, key: Any) -> bool:
        return self._js.pop(key, _MISSING) is not _MISSING

    def _map_keys(self) -> list[Any]:
        return list(self._js)

    def _map_values(self) -> list[Any]:
        return list(self._js.values())

    def _map_entries(self) -> list[Any]:
        return [[k, v] for k, v in self._js.items()]

    def _js_type_name(self) -> str:
        return "Map"

    def __getitem__(self, key: Any) -> Any:
        js_key = to_javascript(key, borrowed=False)
        try:
            return to_python(self._js[js_key])
        except (KeyError, TypeError):
            raise KeyError(key) from None

    def __contains__(self, key: object) -> bool:
        try:
            return to_javascript(key, borrowed=False) in self._js
        except TypeError:
            return False

    def __len__(self) -> int:
        return len(self._js)

    def __bool__(self) -> bool:
        return bool(self._js)

    def __iter__(self) -> Iterator[Any]:
        for key in list(self._js):
            yield to_python(key)

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def keys(self) -> KeysView[Any]:
        return {to_python(k): None for k in self._js}.keys()

    def values(self) -> ValuesView[Any]:
        return {i: to_python(v) for i, v in enumerate(self._js.values())}.values()

    def items(self) -> ItemsView[Any, Any]:
        return {to_python(k): to_python(v) for k, v in self._js.items()}.items()


class JsMutableMap(JsMap):
    """A JavaScript ``Map`` that Python may change (``map[key] = value``)."""

    __slots__ = ()

    def __setitem__(self, key: Any, value: Any) -> None:
        self._js[to_javascript(key, borrowed=False)] = to_javascript(value, borrowed=False)

    def __delitem__(self, key: Any) -> None:
        try:
            del self._js[to_javascript(key, borrowed=False)]
        except KeyError:
            raise KeyError(key) from None


class _JsSet(JsProxy):
    """A JavaScript ``Set``."""

    __slots__ = ()

    def _js_get(self, name: str) -> Any:
        if name == "size":
            return len(self._js)
        raise AttributeError(name)

    def _js_type_name(self) -> str:
        return "Set"

    def __len__(self) -> int:
        return len(self._js)

    def __iter__(self) -> Iterator[Any]:
        for value in list(self._js):
            yield to_python(value)

    def __contains__(self, value: object) -> bool:
        return to_javascript(value, borrowed=False) in self._js


class JsBuffer(JsProxy):
    """A JavaScript ``ArrayBuffer`` or ``Uint8Array`` (``pyodide.ffi.JsBuffer``)."""

    __slots__ = ()

    def _js_get(self, name: str) -> Any:
        if name == "byteLength":
            return len(self._js)
        if name == "length" and type(self._js) is JSUint8Array:
            return len(self._js)
        if name == "buffer" and type(self._js) is JSUint8Array:
            return JSArrayBuffer(self._js)
        raise AttributeError(name)

    def _js_type_name(self) -> str:
        return "ArrayBuffer" if type(self._js) is JSArrayBuffer else "Uint8Array"

    def _js_to_string(self) -> str:
        if type(self._js) is JSArrayBuffer:
            return "[object ArrayBuffer]"
        return ",".join(str(b) for b in self._js)

    def to_bytes(self) -> bytes:
        """A copy of the bytes."""
        return bytes(self._js)

    def to_memoryview(self) -> memoryview:
        """A copy of the bytes, as a memoryview."""
        return memoryview(bytes(self._js))

    def to_string(self, encoding: str | None = None) -> str:
        """Decode the bytes (UTF-8 unless ``encoding`` says otherwise), as a ``TextDecoder`` would."""
        return bytes(self._js).decode(encoding or "utf-8", errors="replace")

    def assign(self, rhs: Any, /) -> None:
        """Copy a Python buffer of the same size into this buffer."""
        data = memoryview(rhs).cast("B")
        if len(data) != len(self._js):
            raise ValueError("cannot assign from a buffer of a different size")
        self._js[:] = data

    def assign_to(self, to: Any, /) -> None:
        """Copy this buffer into a writable Python buffer of the same size."""
        target = memoryview(to).cast("B")
        if len(target) != len(self._js):
            raise ValueError("cannot assign to a buffer of a different size")
        target[:] = self._js

    def to_file(self, file: Any, /) -> None:
        """Write the bytes to a file opened for writing."""
        file.write(bytes(self._js))

    def from_file(self, file: Any, /) -> None:
        """Read as many bytes as the buffer holds from a file."""
        chunk = file.read(len(self._js))
        if isinstance(chunk, str):
            chunk = chunk.encode()
        self._js[: len(chunk)] = chunk

    def __len__(self) -> int:
        if type(self._js) is JSArrayBuffer:
            raise TypeError("object of type 'ArrayBuffer' has no len()")
        return len(self._js)

    def __getitem__(self, idx: int) -> int:
        if type(self._js) is JSArrayBuffer:
            raise TypeError("'ArrayBuffer' object is not subscriptable")
        byte: int = self._js[idx]
        return byte

    def __iter__(self) -> Iterator[int]:
        if type(self._js) is JSArrayBuffer:
            raise TypeError("'ArrayBuffer' object is not iterable")
        return iter(bytes(self._js))


class JsCallable(JsProxy):
    """A JavaScript function (``pyodide.ffi.JsCallable``)."""

    __slots__ = ()
    _typeof = "function"

    def _js_get(self, name: str) -> Any:
        fn: JSFunction = self._js
        if name == "name":
            return fn.name
        if name in fn.props:
            return fn.props[name]
        raise AttributeError(name)

    def _js_keys(self) -> list[str]:
        return list(self._js.props)

    def _js_type_name(self) -> str:
        return "Function"

    def _js_to_string(self) -> str:
        return repr(self._js)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        fn: JSFunction = self._js
        if fn.fn is None:
            raise JsException("TypeError", f"Class constructor {fn.name} cannot be invoked without 'new'")
        return call_js(fn.fn, args, kwargs)

    def new(self, *args: Any, **kwargs: Any) -> Any:
        fn: JSFunction = self._js
        if fn.construct is None:
            raise JsException("TypeError", f"{fn.name} is not a constructor")
        return call_js(fn.construct, args, kwargs)


class JsPromise(JsProxy):
    """A JavaScript promise, awaitable from Python (``pyodide.ffi.JsPromise``)."""

    __slots__ = ()

    def _js_type_name(self) -> str:
        return "Promise"

    def __await__(self) -> Generator[Any, None, Any]:
        return self._resolve().__await__()

    async def _resolve(self) -> Any:
        promise: JSPromise = self._js
        try:
            value = await promise.settle()
        except JsException:
            raise
        except Exception as exc:
            raise from_js_exception(exc) from exc
        return to_python(value)

    def then(
        self,
        onfulfilled: Callable[[Any], Any] | None,
        onrejected: Callable[[BaseException], Any] | None = None,
    ) -> JsPromise:
        """``promise.then(...)``: a new promise of the callback's result."""

        async def chained() -> Any:
            try:
                value = await self
            except Exception as exc:
                if onrejected is None:
                    raise
                result = onrejected(exc)
            else:
                result = value if onfulfilled is None else onfulfilled(value)
            if inspect.isawaitable(result):
                result = await result
            return to_javascript(result, borrowed=False)

        return JsPromise(JSPromise(chained()))

    def catch(self, onrejected: Callable[[BaseException], Any], /) -> JsPromise:
        """``promise.catch(...)``."""
        return self.then(None, onrejected)

    def finally_(self, onfinally: Callable[[], None], /) -> JsPromise:
        """``promise.finally(...)``."""

        async def chained() -> Any:
            try:
                return to_javascript(await self, borrowed=False)
            finally:
                onfinally()

        return JsPromise(JSPromise(chained()))


class JsDoubleProxy(JsProxy):
    """What :func:`create_proxy` returns: a JavaScript proxy of a Python object (``pyodide.ffi.JsDoubleProxy``)."""

    __slots__ = ()
    _typeof = "function"

    def _js_type_name(self) -> str:
        return "PyProxy"

    def _js_to_string(self) -> str:
        return repr(self._js)

    def destroy(self) -> None:
        """Destroy the proxy: JavaScript can no longer use it."""
        self._js.destroyed = True

    def unwrap(self) -> Any:
        """The Python object."""
        return self._js.get()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._js.get()(*args, **kwargs)


class JsOnceCallable(JsDoubleProxy):
    """What :func:`create_once_callable` returns: usable once from JavaScript."""

    __slots__ = ()


class _JsDate(JsProxy):
    """A JavaScript ``Date``."""

    __slots__ = ()

    def _js_get(self, name: str) -> Any:
        when: _dt.datetime = self._js
        ms = when.timestamp() * 1000.0
        methods = {
            "getTime": lambda: ms,
            "valueOf": lambda: ms,
            "toISOString": lambda: (
                when.astimezone(_dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            ),
            "toString": lambda: self._js_to_string(),
        }
        if name in methods:
            return JSFunction(name, methods[name])
        raise AttributeError(name)

    def _js_type_name(self) -> str:
        return "Date"

    def _js_to_string(self) -> str:
        when: _dt.datetime = self._js
        return when.astimezone(_dt.UTC).strftime("%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)")


class JsException(JsProxy, Exception):
    """A JavaScript ``Error`` seen from Python (``pyodide.ffi.JsException``).

    As in Pyodide it is both a :class:`JsProxy` of the error object and an
    exception: ``except JsException as e`` catches what a JavaScript API threw,
    and ``e.name``/``e.message``/``e.stack`` read the error's properties.
    ``JsException(name, message)`` makes a new error, as Pyodide's does;
    shardsim itself also passes an existing :class:`JSError` to wrap it.
    """

    def __init__(self, name: str | JSError = "Error", message: str = "", stack: str = "") -> None:
        err = name if isinstance(name, JSError) else JSError(name, message)
        if stack:
            err.props["stack"] = stack  # as Pyodide's: the new error's stack is the one given
        Exception.__init__(self, f"{err.name}: {err.message}")
        object.__setattr__(self, "_js", err)

    def __setattr__(self, name: str, value: Any) -> None:
        # The interpreter keeps exception state in dunder attributes (__notes__, __traceback__).
        if name.startswith("__"):
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def _js_get(self, name: str) -> Any:
        err: JSError = self._js
        if name == "name":
            return err.name
        if name == "message":
            return err.message
        if name == "stack":
            return err.props.get("stack", f"{err.name}: {err.message}")
        if name in err.props:
            return err.props[name]
        raise AttributeError(name)

    def _js_set(self, name: str, value: Any) -> None:
        err: JSError = self._js
        if name == "name":
            err.name = str(value)
        elif name == "message":
            err.message = str(value)
        else:
            err.props[name] = value

    def _js_keys(self) -> list[str]:
        return [k for k in self._js.props if k != "stack"]  # an error's stack is not enumerable

    def _js_type_name(self) -> str:
        name: str = self._js.name
        return name if name in ("TypeError", "RangeError", "SyntaxError") else "Error"

    def _js_to_string(self) -> str:
        return f"{self._js.name}: {self._js.message}"

    def __str__(self) -> str:
        return self._js_to_string()

    def __repr__(self) -> str:
        return f"JsException({self._js_to_string()!r})"

    __hash__ = JsProxy.__hash__


def _generic_class(value: object) -> type[JsProxy]:
    if isinstance(value, JSError):
        return JsException
    if isinstance(value, _dt.datetime):
        return _JsDate
    if isinstance(value, dict):
        return _JsObject
    if isinstance(value, list):
        return JsArray
    raise TypeError(f"{type(value).__name__} is not a JavaScript value shardsim knows; please file a bug")


_PROXY_CLASSES: dict[type, type[JsProxy]] = {
    dict: _JsObject,
    list: JsArray,
    JSMap: JsMutableMap,
    JSSet: _JsSet,
    JSArrayBuffer: JsBuffer,
    JSUint8Array: JsBuffer,
    JSFunction: JsCallable,
    JSPromise: JsPromise,
    _dt.datetime: _JsDate,
    JSError: JsException,
}

_MISSING: Final = object()


def _js_string(value: Any) -> str:
    if value is None:
        return ""
    if value is jsnull:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(_number(value))
    if isinstance(value, str | int):
        return str(value)
    return repr(to_python(value))


# ---------------------------------------------------------------------------------------------
# Explicit conversions


class _Converter:
    """JsProxy.to_py: a deep JavaScript -> Python conversion with a cycle cache."""

    def __init__(
        self,
        depth: int,
        default_converter: Callable[[JsProxy, Callable[[Any], Any], Callable[[Any, Any], None]], Any] | None,
    ) -> None:
        self.depth = depth
        self.default_converter = default_converter
        self.cache: dict[int, Any] = {}

    def _cache(self, js: Any, result: Any) -> None:
        self.cache[id(js)] = result

    def convert(self, js: Any, level: int = 0) -> Any:
        if js is None or js is jsnull or isinstance(js, bool | int | str):
            return js
        if isinstance(js, float):
            return _number(js)
        if type(js) is PyProxy:
            return js.get()
        key = id(js)
        if key in self.cache:
            return self.cache[key]
        if self.depth >= 0 and level >= self.depth:
            return to_python(js)
        t = type(js)
        if t is list:
            out: list[Any] = []
            self._cache(js, out)
            out.extend(self.convert(v, level + 1) for v in js)
            return out
        if t is dict or t is JSMap:
            mapping: dict[Any, Any] = {}
            self._cache(js, mapping)
            for k, v in js.items():
                mapping[self.convert(k, level + 1)] = self.convert(v, level + 1)
            return mapping
        if t is JSSet:
            result = {self.convert(v, level + 1) for v in js}
            self._cache(js, result)
            return result
        if t is JSArrayBuffer or t is JSUint8Array:
            return memoryview(bytes(js))
        proxy = to_python(js)
        if self.default_converter is None:
            return proxy
        return self.default_converter(
            proxy,
            lambda value: self.convert(value._js if isinstance(value, JsProxy) else value, level + 1),
            lambda value, result: self._cache(value._js if isinstance(value, JsProxy) else value, result),
        )


_JS_PRIMITIVE_KEYS: Final = (str, int, float, bool)


def to_js(
    obj: Any,
    /,
    *,
    depth: int = -1,
    pyproxies: Any = None,
    create_pyproxies: bool = True,
    dict_converter: Callable[[Any], Any] | None = None,
    default_converter: Callable[[Any, Callable[[Any], Any], Callable[[Any, Any], None]], Any] | None = None,
    eager_converter: Callable[[Any, Callable[[Any], Any], Callable[[Any, Any], None]], Any] | None = None,
) -> Any:
    """Convert a Python object to JavaScript deeply (``pyodide.ffi.to_js``); returns Python's view of the result.

    Lists and tuples become arrays, dicts maps (or what ``dict_converter``
    makes of their entries: ``js.Object.fromEntries`` for a plain object),
    sets sets, buffers (``bytes``, ``bytearray``, ``memoryview``)
    ``Uint8Array``\\ s. Primitives convert as usual and a JsProxy gives its
    JavaScript value. Anything else becomes a persistent PyProxy (appended
    to ``pyproxies`` when given), or raises :class:`ConversionError` when
    ``create_pyproxies`` is false, unless ``default_converter`` converts it.
    """
    cache: dict[int, Any] = {}
    made: list[Any] = []

    def remember(value: Any, result: Any) -> None:
        cache[id(value)] = result

    def convert(value: Any, level: int = 0) -> Any:
        if isinstance(value, JsProxy):
            return value._js
        if value is None or value is jsnull or isinstance(value, bool | int | float | str):
            return to_javascript(value, borrowed=False)
        key = id(value)
        if key in cache:
            return cache[key]
        if eager_converter is not None:
            result = eager_converter(value, lambda v: to_python(convert(v, level + 1)), remember)
            return to_javascript(result, borrowed=False)
        if depth >= 0 and level >= depth:
            return _opaque(value)
        if isinstance(value, list | tuple):
            out: list[Any] = []
            remember(value, out)
            out.extend(convert(v, level + 1) for v in value)
            return out
        if isinstance(value, dict):
            entries: list[list[Any]] = []
            for k, v in value.items():
                if not isinstance(k, _JS_PRIMITIVE_KEYS) and k is not None:
                    raise ConversionError(
                        f"Cannot use {k!r} as a key for a JavaScript Map: JavaScript would compare it by "
                        "identity, Python by value"
                    )
                entries.append([k, convert(v, level + 1)])
            if dict_converter is None:
                result_map = JSMap()
                for k, v in entries:
                    result_map[k] = v
                remember(value, result_map)
                return result_map
            converted = to_javascript(dict_converter(JsArray(entries)), borrowed=False)
            remember(value, converted)
            return converted
        if isinstance(value, set | frozenset):
            out_set = JSSet()
            remember(value, out_set)
            for v in value:
                js = convert(v, level + 1)
                if js not in out_set:
                    out_set.append(js)
            return out_set
        if isinstance(value, bytes | bytearray | memoryview):
            return JSUint8Array(memoryview(value).cast("B"))
        if default_converter is not None:
            result = default_converter(value, lambda v: to_python(convert(v, level + 1)), remember)
            return to_javascript(result, borrowed=False)
        return _opaque(value)

    def _opaque(value: Any) -> Any:
        if not create_pyproxies:
            raise ConversionError(
                f"No conversion known for {type(value).__name__} (create_pyproxies is False)"
            )
        proxy = PyProxy(value, borrowed=False)
        made.append(proxy)
        return proxy

    js = convert(obj)
    # A PyProxy at the top is handed back as a JsProxy of it, as if by create_proxy (Pyodide's to_js).
    result = JsDoubleProxy(js) if type(js) is PyProxy else to_python(js)
    if pyproxies is not None:
        for proxy in made:
            pyproxies.append(JsDoubleProxy(proxy))
    return result


def create_proxy(obj: Any, /, *, capture_this: bool = False, roundtrip: bool = True) -> JsDoubleProxy:
    """A persistent JavaScript proxy of ``obj`` (``pyodide.ffi.create_proxy``): pass it where JavaScript keeps a callback."""
    if capture_this:
        raise NotImplementedError("create_proxy(capture_this=True) is not emulated by shardsim")
    return JsDoubleProxy(PyProxy(obj, borrowed=False))


def create_once_callable(obj: Callable[..., Any], /, *, _may_syncify: bool = False) -> JsOnceCallable:
    """A JavaScript proxy of ``obj`` that may be called once, then destroys itself."""
    if not callable(obj):
        raise TypeError("create_once_callable() expects a callable")
    return JsOnceCallable(PyProxy(obj, borrowed=False, once=True))


def destroy_proxies(proxies: Any, /) -> None:
    """Destroy every proxy in ``proxies`` (as collected by ``to_js(..., pyproxies=...)``)."""
    for proxy in list(proxies):
        if isinstance(proxy, JsDoubleProxy):
            proxy.destroy()
