"""The Python Workers SDK's typing names, and the SDK classes shardsim does not emulate.

The typing names (``Context``, ``FetchKwargs``, ``RequestInitCfProperties``,
``JSBody``, ...) are what the SDK defines, so annotations written against the
SDK import here unchanged. ``Blob``, ``File`` and ``FormData`` import (so a
module that merely mentions them loads) but refuse to be made, with a
:class:`NotEmulatedError` naming the class.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable
from typing import Any, NoReturn, Protocol, TypedDict

from ._errors import NotEmulatedError

__all__ = [
    "BLOB_VALUE",
    "FORM_DATA_VALUE",
    "JS_BODY",
    "Blob",
    "BlobEnding",
    "Context",
    "FetchKwargs",
    "File",
    "FormData",
    "RequestInitCfProperties",
]

# In the SDK these are string type aliases; so they are here.
JS_BODY = "js.Blob | JsBuffer | js.FormData | js.ReadableStream | js.URLSearchParams"
BLOB_VALUE = "str | bytes | JsBuffer | Blob | js.Blob"
FORM_DATA_VALUE = "str | js.Blob | Blob"


class Context(Protocol):
    """What a handler's ``ctx`` offers (``waitUntil``)."""

    def waitUntil(self, other: Awaitable[Any]) -> None: ...


class RequestInitCfProperties(TypedDict, total=False):
    """The ``cf`` options of an outbound request (accepted; shardsim's fetch ignores them)."""

    apps: bool | None
    cacheEverything: bool | None
    cacheKey: str | None
    cacheTags: list[str] | None
    cacheTtl: int
    cacheTtlByStatus: dict[str, int]
    image: Any | None
    mirage: bool | None
    polish: str | None
    resolveOverride: str | None
    scrapeShield: bool | None
    webp: bool | None


class FetchKwargs(TypedDict, total=False):
    """The keyword arguments of ``workers.fetch`` and ``workers.Request``."""

    headers: Any
    body: Any
    method: str | None
    redirect: str | None
    cf: RequestInitCfProperties | None
    fetcher: Any


class BlobEnding(enum.StrEnum):
    """How a ``Blob`` writes line endings (the SDK's enum)."""

    TRANSPARENT = "transparent"
    NATIVE = "native"


class _NotEmulated:
    """An SDK class that imports but cannot be made here."""

    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> NoReturn:
        name = type(self).__name__
        raise NotEmulatedError(
            f"workers.{name} is not emulated by shardsim (request and response bodies are str, bytes "
            f"or JSON here); test code that builds a {name} with wrangler dev"
        )


class Blob(_NotEmulated):
    """``workers.Blob``: not emulated."""

    __slots__ = ()


class File(Blob):
    """``workers.File``: not emulated."""

    __slots__ = ()


class FormData(_NotEmulated):
    """``workers.FormData``: not emulated."""

    __slots__ = ()
