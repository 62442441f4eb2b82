"""runtime: Cloudflare Durable Objects emulated on trio. See README.md."""

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

__all__ = [
    "CodecError",
    "DurableObjectError",
    "InvalidIdError",
    "ObjectResetError",
    "RemoteError",
    "ShardsError",
    "StorageError",
    "StorageLimitError",
]
