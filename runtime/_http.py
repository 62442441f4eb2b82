"""``Request``, ``Response`` and ``Headers`` as Python Workers code uses them.

The shapes follow the Python Workers SDK (``workers.Request``,
``workers.Response``): keyword options on ``Request``, ``Response(body,
status, status_text, headers, web_socket)``, ``Response.json(data)`` as a
constructor and ``await response.json()`` as a reader. The checks and their
messages follow workerd (``src/workerd/api/http.c++``, ``headers.c++``);
production's Python SDK turns a JS ``TypeError`` into a Python ``TypeError``
and a ``RangeError`` into a ``ValueError``, and so do our error classes.

Invariants:

* Bodies are ``bytes`` (or ``None``) inside; a ``str`` body is UTF-8 and, like
  production, sets ``content-type: text/plain;charset=UTF-8`` unless the
  caller set a content type.
* A body is read at most once: a second read, or a ``clone()`` after a read,
  raises :class:`BodyUsedError`. Reading a null body never marks it used.
* ``Headers`` keys are case-insensitive and stored lowercase; values are
  trimmed of HTTP whitespace and never contain NUL, CR or LF. Iteration is
  sorted by name, with ``set-cookie`` values kept apart and every other
  repeated header joined with ``", "``, as production's ``Headers`` shows them.
* A ``Request``'s URL is an absolute ``http:``/``https:`` URL, normalized
  (lowercase scheme and host, default port dropped, ``/`` for an empty path,
  unsafe characters percent-encoded). A ``Response``'s status is 200-599, or
  101 exactly when it carries a websocket.
* The readers are ``async def`` because production's are awaited; they never
  suspend.

Errors (all :class:`~shards.ShardsError`, drawn in the project's tree in ``shards/_errors.py``)::

    HttpError                        the fetch API surface refused a value or an operation
    ├── HttpTypeError(TypeError)     production's TypeError: header, URL, method, body, JSON
    │   └── BodyUsedError(OSError)   the body was read already (Python Workers raises OSError)
    └── HttpRangeError(ValueError)   production's RangeError: a status out of range
"""

from __future__ import annotations

import builtins
import json as _json
import re
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeAlias, final, overload
from urllib.parse import quote, urlsplit

from shards._errors import ShardsError

if TYPE_CHECKING:
    from runtime.sockets import WebSocket

__all__ = [
    "BODY_USED_MESSAGE",
    "BodyUsedError",
    "Headers",
    "HeadersInit",
    "HttpError",
    "HttpRangeError",
    "HttpTypeError",
    "Request",
    "Response",
]


class HttpError(ShardsError):
    """The Request / Response / Headers surface refused a value or an operation."""


class HttpTypeError(HttpError, TypeError):
    """Production's ``TypeError``: a bad header, URL, method, body or JSON value."""


class BodyUsedError(HttpTypeError, OSError):
    """The body was read already; it can be read once.

    A ``TypeError`` as in JS, and an ``OSError`` as the Python Workers SDK
    raises it, so either ``except`` clause written for production works.
    """


class HttpRangeError(HttpError, ValueError):
    """Production's ``RangeError`` (``ValueError`` in Python Workers): a status out of range."""


# workerd src/workerd/api/http.c++ (Body::arrayBuffer / Body::text), verbatim.
BODY_USED_MESSAGE: Final = (
    "Body has already been used. It can only be used once. Use tee() first if you need to read it twice."
)
_TEXT_PLAIN: Final = "text/plain;charset=UTF-8"
_JSON_TYPE: Final = "application/json"
_HTTP_WHITESPACE: Final = "\t\n\r "
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_NULL_BODY_STATUSES: Final = frozenset({101, 204, 205, 304})
_REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
# The methods KJ's HTTP stack knows (kj/compat/http.h); others are refused.
_METHODS: Final = frozenset(
    {
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "DELETE",
        "PATCH",
        "PURGE",
        "OPTIONS",
        "TRACE",
        "COPY",
        "LOCK",
        "MKCOL",
        "MOVE",
        "PROPFIND",
        "PROPPATCH",
        "SEARCH",
        "UNLOCK",
        "ACL",
        "REPORT",
        "MKACTIVITY",
        "CHECKOUT",
        "MERGE",
        "MSEARCH",
        "NOTIFY",
        "SUBSCRIBE",
        "UNSUBSCRIBE",
    }
)
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_HOST = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=]+|\[[0-9A-Fa-f:.]+\]")
# Printable ASCII minus what the WHATWG percent-encode sets encode in each part.
_PRINTABLE: Final = "".join(chr(c) for c in range(0x21, 0x7F))
_PATH_SAFE: Final = "".join(c for c in _PRINTABLE if c not in '"#<>?`{}')
_QUERY_SAFE: Final = "".join(c for c in _PRINTABLE if c not in "\"#<>'")
_FRAGMENT_SAFE: Final = "".join(c for c in _PRINTABLE if c not in '"<>`')
_USERINFO_SAFE: Final = "".join(c for c in _PRINTABLE if c not in '"#<>?`{}/:;=@[\\]^|')


def _utf8(text: str) -> bytes:
    """Encode ``text`` as a JS engine would (lone surrogates become U+FFFD)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        utf16 = text.encode("utf-16-le", "surrogatepass")
        return utf16.decode("utf-16-le", "replace").encode("utf-8")


# --------------------------------------------------------------------------- Headers

HeadersInit: TypeAlias = "Headers | Mapping[str, str | int] | Iterable[tuple[str, str | int]]"


def _header_name(name: object) -> str:
    if not isinstance(name, str) or _TOKEN.fullmatch(name) is None:
        raise HttpTypeError("Invalid header name.")
    return name.lower()


def _header_value(value: object) -> str:
    # Production's Python SDK hands ints to JS, which stringifies them.
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise HttpTypeError(f"Header value must be a str, not {type(value).__name__}")
    value = value.strip(_HTTP_WHITESPACE)
    if "\x00" in value or "\r" in value or "\n" in value:
        raise HttpTypeError("Invalid header value.")
    return value


@final
class Headers:
    """A case-insensitive multi-map of HTTP headers, as production's ``Headers``.

    It also reads like the ``http.client.HTTPMessage`` that Python Workers
    hand out as ``request.headers``: ``headers["x"]`` (``None`` if absent),
    ``"x" in headers``, iteration over names, ``get_all``.

    Args:
        init: A mapping, an iterable of ``(name, value)`` pairs, or another
            ``Headers`` (copied).

    Raises:
        HttpTypeError: A name is not an HTTP token (``"Invalid header name."``),
            a value holds NUL, CR or LF (``"Invalid header value."``), a pair
            has not two elements, or ``init`` is of another type.
    """

    __slots__ = ("_map",)

    def __init__(self, init: HeadersInit | None = None) -> None:
        self._map: dict[str, list[str]] = {}
        if init is None:
            return
        if isinstance(init, Headers):
            self._map = {k: list(v) for k, v in init._map.items()}
            return
        candidate: object = init
        if isinstance(candidate, Mapping):
            pairs: Iterable[object] = candidate.items()
        elif isinstance(candidate, str | bytes) or not isinstance(candidate, Iterable):
            raise HttpTypeError("Received unexpected type for headers argument")
        else:
            pairs = candidate
        for pair in pairs:
            if isinstance(pair, str | bytes) or not isinstance(pair, Iterable):
                raise HttpTypeError("Received unexpected type for headers argument")
            items = list(pair)
            if len(items) != 2:
                raise HttpTypeError(
                    "To initialize a Headers object from a sequence, each inner sequence "
                    "must have exactly two elements."
                )
            self.append(items[0], items[1])

    def get(self, name: str) -> str | None:
        """Return the header's values joined with ``", "``, or ``None``."""
        values = self._map.get(_header_name(name))
        return None if values is None else ", ".join(values)

    def getSetCookie(self) -> list[str]:
        """Return each ``Set-Cookie`` value on its own."""
        return list(self._map.get("set-cookie", ()))

    def get_all(self, name: str) -> list[str] | None:
        """Return the values as Python Workers' ``HTTPMessage.get_all`` does.

        ``Set-Cookie`` values come back one by one; any other header is one
        joined value, because production joins them before Python sees them.
        """
        key = _header_name(name)
        values = self._map.get(key)
        if values is None:
            return None
        return list(values) if key == "set-cookie" else [", ".join(values)]

    def has(self, name: str) -> bool:
        """Return whether the header is present."""
        return _header_name(name) in self._map

    def set(self, name: str, value: str) -> None:
        """Replace every value of the header with ``value``."""
        self._map[_header_name(name)] = [_header_value(value)]

    def append(self, name: str, value: str) -> None:
        """Add ``value`` to the header's values."""
        key = _header_name(name)
        self._map.setdefault(key, []).append(_header_value(value))

    def delete(self, name: str) -> None:
        """Remove the header; removing an absent header does nothing."""
        self._map.pop(_header_name(name), None)

    def entries(self) -> list[tuple[str, str]]:
        """Return ``(name, value)`` pairs as production iterates them.

        Sorted by lowercase name; ``set-cookie`` values one pair each, every
        other header one pair with its values joined by ``", "``.
        """
        result: list[tuple[str, str]] = []
        for key in sorted(self._map):
            values = self._map[key]
            if key == "set-cookie":
                result.extend((key, v) for v in values)
            else:
                result.append((key, ", ".join(values)))
        return result

    def items(self) -> list[tuple[str, str]]:
        """Same as :meth:`entries`."""
        return self.entries()

    def keys(self) -> list[str]:
        """Return the names of :meth:`entries`, in order."""
        return [k for k, _ in self.entries()]

    def values(self) -> list[str]:
        """Return the values of :meth:`entries`, in order."""
        return [v for _, v in self.entries()]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.entries())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._map

    def __getitem__(self, name: str) -> str | None:
        return self.get(name)

    def __repr__(self) -> str:
        return f"Headers({self.entries()!r})"


# --------------------------------------------------------------------------- bodies

Body: TypeAlias = "str | bytes | None"


def _extract_body(body: object, headers: Headers, kind: str) -> bytes | None:
    """Turn a body init into bytes, setting a text content type for a ``str``."""
    if body is None:
        return None
    if isinstance(body, str):
        if not headers.has("content-type"):
            headers.set("content-type", _TEXT_PLAIN)
        return _utf8(body)
    if isinstance(body, bytes):
        return body
    raise HttpTypeError(f"Unsupported type in {kind}: {type(body).__name__}")


class _BodyReader:
    """The one-shot body both ``Request`` and ``Response`` carry."""

    __slots__ = ("_body", "_used")

    _body: builtins.bytes | None
    _used: bool

    def _consume(self) -> builtins.bytes:
        if self._body is None:
            return b""
        if self._used:
            raise BodyUsedError(BODY_USED_MESSAGE)
        self._used = True
        return self._body

    @property
    def body_used(self) -> bool:
        """Whether the body was read (a null body never is)."""
        return self._used

    async def bytes(self) -> bytes:
        """Read the whole body as bytes.

        Raises:
            BodyUsedError: The body was read already.
        """
        return self._consume()

    async def arrayBuffer(self) -> builtins.bytes:
        """Read the whole body as bytes (JS's name)."""
        return self._consume()

    async def buffer(self) -> builtins.bytes:
        """Read the whole body as bytes (Python Workers' name)."""
        return self._consume()

    async def text(self) -> str:
        """Read the body as UTF-8 text (invalid bytes become U+FFFD, a BOM is dropped)."""
        return self._consume().decode("utf-8-sig", "replace")

    async def _read_json(self) -> Any:
        return _json.loads(self._consume().decode("utf-8-sig", "replace"))


# --------------------------------------------------------------------------- Request


def _fail_url(url: object) -> HttpTypeError:
    return HttpTypeError(f"Fetch API cannot load: {url}")


def _normalize_url(url: str) -> str:
    """Return ``url`` as an absolute, normalized http(s) URL, or raise."""
    # WHATWG: strip leading/trailing C0 controls and spaces, drop tabs and newlines.
    text = url.strip("".join(chr(c) for c in range(0x21)))
    text = text.replace("\t", "").replace("\n", "").replace("\r", "")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise _fail_url(url) from exc
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host:
        raise _fail_url(url)
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError as exc:
        raise _fail_url(url) from exc
    if parts.netloc.rpartition("@")[2].startswith("["):
        host = f"[{host}]"
    if _HOST.fullmatch(host) is None:
        raise _fail_url(url)
    try:
        userinfo = ""
        if "@" in parts.netloc:
            raw_userinfo = parts.netloc.rpartition("@")[0]
            userinfo = quote(raw_userinfo, safe=_USERINFO_SAFE + ":") + "@"
        path = quote(parts.path, safe=_PATH_SAFE) or "/"
        before_fragment, has_fragment, _ = text.partition("#")
        query = "?" + quote(parts.query, safe=_QUERY_SAFE) if "?" in before_fragment else ""
        fragment = "#" + quote(parts.fragment, safe=_FRAGMENT_SAFE) if has_fragment else ""
    except UnicodeError as exc:
        raise _fail_url(url) from exc
    port_text = "" if port is None or port == _DEFAULT_PORTS[scheme] else f":{port}"
    return f"{scheme}://{userinfo}{host.lower()}{port_text}{path}{query}{fragment}"


def _normalize_method(method: object) -> str:
    if not isinstance(method, str):
        raise HttpTypeError(f"Invalid HTTP method string: {method}")
    upper = method.upper()
    if upper not in _METHODS:
        raise HttpTypeError(f"Invalid HTTP method string: {method}")
    return upper


@final
class Request(_BodyReader):
    """An HTTP request, as ``workers.Request`` in Python Workers.

    Args:
        input: An absolute ``http:``/``https:`` URL, or a ``Request`` to copy.
            Copying a request without giving a new ``body`` takes over its
            body, which counts as used on the original afterwards.
        method: The method, case-insensitive (stored upper case); by default
            the copied request's, else ``GET``.
        headers: Headers for the new request (by default a copy of the
            copied request's).
        body: ``str``, ``bytes`` or ``None``.

    Raises:
        HttpTypeError: The URL is not absolute http(s)
            (``"Fetch API cannot load: <url>"``), the method is unknown, a
            header is invalid, the body has an unsupported type, a ``GET`` or
            ``HEAD`` request was given a body, or the copied request's body was
            used already.
    """

    __slots__ = ("_headers", "_method", "_url")

    _headers: Headers
    _method: str
    _url: str

    def __init__(
        self,
        input: str | Request,
        *,
        method: str | None = None,
        headers: HeadersInit | None = None,
        body: Body = None,
    ) -> None:
        self._used = False
        new_headers = None if headers is None else Headers(headers)
        if isinstance(input, Request):
            self._url = input._url
            self._method = input._method if method is None else _normalize_method(method)
            self._headers = new_headers if new_headers is not None else Headers(input._headers)
            if body is None:
                if input._used:
                    raise HttpTypeError("Cannot reconstruct a Request with a used body.")
                self._body = input._body
                if input._body is not None:
                    input._used = True
            else:
                self._body = _extract_body(body, self._headers, "Request")
        elif isinstance(input, str):
            self._url = _normalize_url(input)
            self._method = "GET" if method is None else _normalize_method(method)
            self._headers = new_headers if new_headers is not None else Headers()
            self._body = _extract_body(body, self._headers, "Request")
        else:
            raise HttpTypeError(f"Request input must be a URL str or a Request, not {type(input).__name__}")
        if (
            (method is not None or body is not None)
            and self._body is not None
            and self._method in ("GET", "HEAD")
        ):
            raise HttpTypeError("Request with a GET or HEAD method cannot have a body.")

    @property
    def url(self) -> str:
        """The normalized absolute URL."""
        return self._url

    @property
    def method(self) -> str:
        """The method, upper case (equal to ``http.HTTPMethod`` members)."""
        return self._method

    @property
    def headers(self) -> Headers:
        """The request's headers (mutable, shared with the request)."""
        return self._headers

    async def json(self) -> Any:
        """Read the body and parse it as JSON (``json.JSONDecodeError`` if it is not)."""
        return await self._read_json()

    def clone(self) -> Request:
        """Return an independent copy whose body can be read separately.

        Raises:
            BodyUsedError: The body was read already.
        """
        if self._used:
            raise BodyUsedError(BODY_USED_MESSAGE)
        copy = Request(self._url, method=self._method, headers=self._headers)
        copy._body = self._body
        return copy

    def __repr__(self) -> str:
        return f"Request(method={self._method!r}, url={self._url!r})"


# --------------------------------------------------------------------------- Response


class _FromJson(Protocol):
    def __call__(
        self,
        data: object,
        status: int | None = ...,
        status_text: str = ...,
        headers: HeadersInit | None = ...,
    ) -> Response: ...


class _JsonMethod:
    """``Response.json(data)`` builds a response; ``await response.json()`` reads one.

    Python Workers give ``Response.json`` both meanings, told apart by whether
    it is looked up on the class or on an instance.
    """

    @overload
    def __get__(self, obj: None, owner: type[Response]) -> _FromJson: ...

    @overload
    def __get__(self, obj: Response, owner: type[Response]) -> Callable[[], Coroutine[Any, Any, Any]]: ...

    def __get__(
        self, obj: Response | None, owner: type[Response]
    ) -> _FromJson | Callable[[], Coroutine[Any, Any, Any]]:
        if obj is None:
            return owner.from_json
        return obj._read_json


def _status_text(status_text: object) -> str:
    if not isinstance(status_text, str):
        raise HttpTypeError(f"Response status_text must be a str, not {type(status_text).__name__}")
    if any(ord(c) < 0x20 for c in status_text):
        raise HttpTypeError("Invalid statusText")
    return status_text


@final
class Response(_BodyReader):
    """An HTTP response, as ``workers.Response`` in Python Workers.

    Args:
        body: ``str``, ``bytes`` or ``None``.
        status: 200-599 (default 200), or 101 with ``web_socket``.
        status_text: The reason phrase; empty means the standard one.
        headers: A mapping, ``(name, value)`` pairs or a ``Headers``.
        web_socket: The client end of a ``WebSocketPair``, completing an
            upgrade (``status=101``).

    Raises:
        HttpRangeError: The status is out of range, or is not 101 for a
            websocket response.
        HttpTypeError: The body has an unsupported type, a null-body status
            (101, 204, 205, 304) was given a non-empty body, the status text
            holds control characters, or a header is invalid.
    """

    __slots__ = ("_headers", "_status", "_status_text", "_url", "_web_socket")

    _headers: Headers
    _status: int
    _status_text: str
    #: Set by whatever fetched the response (``fetch()`` from Worker code); ``""`` when constructed.
    _url: str
    _web_socket: WebSocket | None

    json = _JsonMethod()

    def __init__(
        self,
        body: Body = None,
        status: int | None = None,
        status_text: str = "",
        headers: HeadersInit | None = None,
        web_socket: WebSocket | None = None,
    ) -> None:
        if status is None:
            status = 200
        if not isinstance(status, int) or isinstance(status, bool):
            raise HttpTypeError(f"Response status must be an int, not {type(status).__name__}")
        if web_socket is None:
            if not 200 <= status <= 599:
                raise HttpRangeError(
                    "Responses may only be constructed with status codes in the range 200 to 599, inclusive."
                )
        elif status != 101:
            raise HttpRangeError("Responses with a WebSocket must have status code 101.")
        self._status = int(status)
        self._status_text = _status_text(status_text)
        self._web_socket = web_socket
        self._url = ""
        self._used = False
        if status in _NULL_BODY_STATUSES and isinstance(body, str | bytes) and len(body) == 0:
            body = None  # production tolerates an empty body here and drops it
        self._headers = Headers(headers)
        self._body = _extract_body(body, self._headers, "Response")
        if status in _NULL_BODY_STATUSES and self._body is not None:
            raise HttpTypeError("Response with null body status (101, 204, 205, or 304) cannot have a body.")

    @classmethod
    def from_json(
        cls,
        data: object,
        status: int | None = None,
        status_text: str = "",
        headers: HeadersInit | None = None,
    ) -> Response:
        """Build a JSON response (also reachable as ``Response.json(data)``).

        The body is ``json.dumps(data)`` as in Python Workers, but strict: NaN
        and infinities are refused, not written as invalid JSON.
        ``content-type`` is ``application/json`` unless ``headers`` set one.

        Raises:
            HttpTypeError: ``data`` cannot be written as strict JSON.
        """
        try:
            text = _json.dumps(data, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise HttpTypeError(f"Response.json(): {exc}") from exc
        merged = Headers(headers)
        if not merged.has("content-type"):
            merged.set("content-type", _JSON_TYPE)
        return cls(text, status, status_text, merged)

    @classmethod
    def redirect(cls, url: str, status: int = 302) -> Response:
        """Build a redirect to ``url`` (an absolute URL) with a ``location`` header.

        Raises:
            HttpRangeError: ``status`` is not 301, 302, 303, 307 or 308.
            HttpTypeError: ``url`` is not an absolute http(s) URL.
        """
        if status not in _REDIRECT_STATUSES:
            raise HttpRangeError(
                f"{status} is not a redirect status code. It must be one of: 301, 302, 303, 307, or 308."
            )
        if not isinstance(url, str):
            raise HttpTypeError(f"Unable to parse URL: {url}")
        try:
            location = _normalize_url(url)
        except HttpTypeError as exc:
            raise HttpTypeError(f"Unable to parse URL: {url}") from exc
        return cls(None, status, headers={"location": location})

    @property
    def status(self) -> int:
        """The status code."""
        return self._status

    @property
    def status_text(self) -> str:
        """The reason phrase (the standard one unless another was given)."""
        if self._status_text:
            return self._status_text
        try:
            return str(HTTPStatus(self._status).phrase)
        except ValueError:
            return ""

    @property
    def ok(self) -> bool:
        """Whether the status is 200-299."""
        return 200 <= self._status <= 299

    @property
    def url(self) -> str:
        """The URL the response was fetched from; ``""`` for a constructed response, as in production."""
        return self._url

    @property
    def headers(self) -> Headers:
        """The response's headers (mutable, shared with the response)."""
        return self._headers

    @property
    def webSocket(self) -> WebSocket | None:
        """The websocket this response upgrades to, if any."""
        return self._web_socket

    @property
    def web_socket(self) -> WebSocket | None:
        """Same as :attr:`webSocket` (the constructor's keyword)."""
        return self._web_socket

    def clone(self) -> Response:
        """Return an independent copy whose body can be read separately.

        Raises:
            HttpTypeError: The response carries a websocket.
            BodyUsedError: The body was read already.
        """
        if self._web_socket is not None:
            raise HttpTypeError("Cannot clone a response to a WebSocket handshake.")
        if self._used:
            raise BodyUsedError(BODY_USED_MESSAGE)
        copy = Response(None, self._status, self._status_text, self._headers)
        copy._body = self._body
        copy._url = self._url
        return copy

    def __repr__(self) -> str:
        parts = [f"status={self._status}"]
        if self._status_text:
            parts.append(f"status_text={self._status_text!r}")
        content_type = self._headers.get("content-type")
        if content_type is not None:
            parts.append(f"content_type={content_type!r}")
        return f"Response({', '.join(parts)})"
