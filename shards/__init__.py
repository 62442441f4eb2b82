"""shards: the pure shard model (no I/O, no clocks, no trio). See README.md.

Public API only; implementation lives in private modules.
"""

from __future__ import annotations

from ._aoi import (
    Box as Box,
    GridIndex as GridIndex,
    GridStatistics as GridStatistics,
    Point as Point,
    Sphere as Sphere,
    filter_box as filter_box,
    filter_sphere as filter_sphere,
)
from ._codec import EXT_CODES as EXT_CODES, copy as copy, decode as decode, encode as encode
from ._errors import (
    AreaOfInterestError as AreaOfInterestError,
    CodecError as CodecError,
    DuplicateSubscriber as DuplicateSubscriber,
    DurableObjectError as DurableObjectError,
    InputQueueFull as InputQueueFull,
    InputTooLarge as InputTooLarge,
    InvalidIdError as InvalidIdError,
    InvalidInput as InvalidInput,
    InvalidMatch as InvalidMatch,
    InvalidState as InvalidState,
    MatchmakingError as MatchmakingError,
    MatchQueueFull as MatchQueueFull,
    ObjectResetError as ObjectResetError,
    PlayerAlreadyQueued as PlayerAlreadyQueued,
    PlayerNotQueued as PlayerNotQueued,
    RemoteError as RemoteError,
    ShardFailed as ShardFailed,
    ShardFull as ShardFull,
    ShardsError as ShardsError,
    ShardStopped as ShardStopped,
    SnapshotCorrupt as SnapshotCorrupt,
    SnapshotError as SnapshotError,
    SnapshotVersionError as SnapshotVersionError,
    StorageError as StorageError,
    StorageLimitError as StorageLimitError,
    SubscriberError as SubscriberError,
    Unauthorized as Unauthorized,
    UnknownSubscriber as UnknownSubscriber,
)
from ._matchmaker import (
    MatchAssignment as MatchAssignment,
    MatchEntry as MatchEntry,
    MatchFunction as MatchFunction,
    Matchmaker as Matchmaker,
    MatchmakerStatistics as MatchmakerStatistics,
    MatchPollResult as MatchPollResult,
    MatchState as MatchState,
    MatchStatus as MatchStatus,
    fixed_size as fixed_size,
)
from ._prediction import (
    MAX_SEQ as MAX_SEQ,
    AckTracker as AckTracker,
    InputAck as InputAck,
    PendingInput as PendingInput,
    Reconciler as Reconciler,
    ReconcilerStatistics as ReconcilerStatistics,
)
from ._simulation import ShardAuth as ShardAuth, SimState as SimState

__all__ = [
    # codec
    "EXT_CODES",
    "copy",
    "decode",
    "encode",
    # simulation contract
    "ShardAuth",
    "SimState",
    # area of interest
    "Box",
    "GridIndex",
    "GridStatistics",
    "Point",
    "Sphere",
    "filter_box",
    "filter_sphere",
    # client prediction
    "MAX_SEQ",
    "AckTracker",
    "InputAck",
    "PendingInput",
    "Reconciler",
    "ReconcilerStatistics",
    # matchmaking
    "MatchAssignment",
    "MatchEntry",
    "MatchFunction",
    "Matchmaker",
    "MatchmakerStatistics",
    "MatchPollResult",
    "MatchState",
    "MatchStatus",
    "fixed_size",
    # errors
    "AreaOfInterestError",
    "CodecError",
    "DuplicateSubscriber",
    "DurableObjectError",
    "InputQueueFull",
    "InputTooLarge",
    "InvalidIdError",
    "InvalidInput",
    "InvalidMatch",
    "InvalidState",
    "MatchmakingError",
    "MatchQueueFull",
    "ObjectResetError",
    "PlayerAlreadyQueued",
    "PlayerNotQueued",
    "RemoteError",
    "ShardFailed",
    "ShardFull",
    "ShardStopped",
    "ShardsError",
    "SnapshotCorrupt",
    "SnapshotError",
    "SnapshotVersionError",
    "StorageError",
    "StorageLimitError",
    "SubscriberError",
    "Unauthorized",
    "UnknownSubscriber",
]
