"""runtime: Cloudflare Durable Objects emulated on trio. See README.md.

Names follow production's Python Workers API (camelCase where Cloudflare
uses it); there are no snake_case aliases.
"""

from __future__ import annotations

from shards._errors import (
    CodecError as CodecError,
    DurableObjectError as DurableObjectError,
    InvalidIdError as InvalidIdError,
    ObjectResetError as ObjectResetError,
    RemoteError as RemoteError,
    ShardsError as ShardsError,
    StorageError as StorageError,
    StorageLimitError as StorageLimitError,
)

from ._clock import now_ms as now_ms
from ._config import RuntimeConfig as RuntimeConfig
from ._http import Headers as Headers, Request as Request, Response as Response
from ._ids import DurableObjectId as DurableObjectId
from ._object import (
    DurableObject as DurableObject,
    DurableObjectAbort as DurableObjectAbort,
    DurableObjectState as DurableObjectState,
    WorkerEntrypoint as WorkerEntrypoint,
)
from ._runtime import (
    Env as Env,
    ObjectStatistics as ObjectStatistics,
    Runtime as Runtime,
    RuntimeStatistics as RuntimeStatistics,
    open_runtime as open_runtime,
)
from ._stub import DurableObjectNamespace as DurableObjectNamespace, DurableObjectStub as DurableObjectStub
from .sockets import (
    WebSocket as WebSocket,
    WebSocketPair as WebSocketPair,
    WebSocketRequestResponsePair as WebSocketRequestResponsePair,
)

__all__ = [
    "CodecError",
    "DurableObject",
    "DurableObjectAbort",
    "DurableObjectError",
    "DurableObjectId",
    "DurableObjectNamespace",
    "DurableObjectState",
    "DurableObjectStub",
    "Env",
    "Headers",
    "InvalidIdError",
    "ObjectResetError",
    "ObjectStatistics",
    "RemoteError",
    "Request",
    "Response",
    "Runtime",
    "RuntimeConfig",
    "RuntimeStatistics",
    "ShardsError",
    "StorageError",
    "StorageLimitError",
    "WebSocket",
    "WebSocketPair",
    "WebSocketRequestResponsePair",
    "WorkerEntrypoint",
    "now_ms",
    "open_runtime",
]
