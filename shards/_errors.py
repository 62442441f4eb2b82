"""The exception tree for the whole project (``shards`` and ``runtime``).

Every error shardsim raises on purpose derives from :class:`ShardsError`, so
``except ShardsError`` catches exactly what we raise and nothing foreign.
Errors that production reports as a JavaScript ``TypeError`` or ``RangeError``
also derive from Python's ``TypeError`` / ``ValueError``, so code written
against either family keeps working.

Foreign exceptions (``sqlite3``, ``msgpack``, ``websockets``, ``trio``) are
converted at the boundary with ``raise ... from``; ``trio.Cancelled`` is never
caught.

::

    ShardsError(Exception)
    ├── CodecError(TypeError)         a value cannot cross a boundary (RPC, storage, attachment)
    ├── InvalidInput                  an input was refused; the shard is unchanged
    │   ├── InputTooLarge
    │   └── InputQueueFull
    ├── SubscriberError
    │   ├── UnknownSubscriber
    │   ├── DuplicateSubscriber
    │   ├── ShardFull
    │   └── Unauthorized
    ├── InvalidState                  not allowed in the current lifecycle state
    │   └── ShardStopped              the shard was stopped or has finished
    ├── ShardFailed                   the simulation raised; __cause__ is its exception
    ├── SnapshotError                 a snapshot or frame could not be built or read
    │   ├── SnapshotVersionError
    │   └── SnapshotCorrupt
    ├── AreaOfInterestError(ValueError)  bad geometry (negative radius, zero cell size, wrong
    │                                  dimensions), or an unknown / duplicate entity id in a grid
    ├── MatchmakingError                 a matchmaker refused a call; its queue is unchanged
    │   ├── PlayerAlreadyQueued          enqueue of a player who is already waiting
    │   ├── PlayerNotQueued              cancel of a player who is not waiting
    │   ├── MatchQueueFull               enqueue while max_queued players are waiting
    │   └── InvalidMatch                 a match function returned an unknown, altered or repeated entry
    └── DurableObjectError            raised by the Durable Objects emulator; carries
        │                             production's remote / retryable / overloaded /
        │                             durableObjectReset flags
        ├── RemoteError               an object's error whose type could not be rebuilt
        ├── InvalidIdError(TypeError) a malformed id, or one from another namespace
        ├── StorageError
        │   ├── StorageLimitError(ValueError)   production's RangeError family
        │   └── StorageTypeError(TypeError)     a malformed storage call (production's TypeError)
        └── ObjectResetError          the object was reset (crash, abort, failed write)
"""

from __future__ import annotations

__all__ = [
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
    "MatchQueueFull",
    "MatchmakingError",
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
    "StorageTypeError",
    "SubscriberError",
    "Unauthorized",
    "UnknownSubscriber",
]


class ShardsError(Exception):
    """Root of every error shardsim raises on purpose."""


class CodecError(ShardsError, TypeError):
    """A value cannot be encoded so that it reads back exactly.

    Raised at encode time (``put``, RPC call, ``serializeAttachment``), before
    anything is written or sent. ``path`` names where in the value the problem
    is, e.g. ``value['players'][3]``.
    """

    def __init__(self, message: str, *, path: str = "value") -> None:
        super().__init__(message)
        self.path = path


class InvalidInput(ShardsError):
    """An input was refused; the shard's state is unchanged."""


class InputTooLarge(InvalidInput):
    """An input's encoded size is above the shard's limit."""


class InputQueueFull(InvalidInput):
    """The shard's input queue holds ``max_input_queue`` inputs already."""


class SubscriberError(ShardsError):
    """A subscriber operation was refused."""

    def __init__(self, message: str, *, subscriber_id: str | None = None) -> None:
        super().__init__(message)
        self.subscriber_id = subscriber_id


class UnknownSubscriber(SubscriberError):
    """The subscriber id is not attached to the shard."""


class DuplicateSubscriber(SubscriberError):
    """The subscriber id is already attached."""


class ShardFull(SubscriberError):
    """The shard has ``max_subscribers`` subscribers already."""


class Unauthorized(SubscriberError):
    """An authorization hook refused the subscription or input."""


class InvalidState(ShardsError):
    """The operation is not allowed in the current lifecycle state."""


class ShardStopped(InvalidState):
    """The shard was stopped or its simulation finished; it takes no more inputs."""


class ShardFailed(ShardsError):
    """The simulation raised; the shard is poisoned and ``__cause__`` holds the error."""


class SnapshotError(ShardsError):
    """A snapshot, frame or persisted state could not be built or read."""


class SnapshotVersionError(SnapshotError):
    """Persisted state carries a version this code does not understand."""


class SnapshotCorrupt(SnapshotError):
    """Persisted state or a frame is not decodable."""


class MatchmakingError(ShardsError):
    """A matchmaker operation was refused (unknown player, duplicate entry, ...)."""


class PlayerAlreadyQueued(MatchmakingError):
    """``enqueue`` was called for a player who is already waiting; ``player_id`` names them."""

    def __init__(self, message: str, *, player_id: str) -> None:
        super().__init__(message)
        self.player_id = player_id


class PlayerNotQueued(MatchmakingError):
    """``cancel`` was called for a player who is not waiting; ``player_id`` names them."""

    def __init__(self, message: str, *, player_id: str) -> None:
        super().__init__(message)
        self.player_id = player_id


class MatchQueueFull(MatchmakingError):
    """``enqueue`` was called while the queue holds its ``max_queued`` players; ``limit`` is that bound."""

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class InvalidMatch(MatchmakingError):
    """A match function returned a group the queue cannot honour; nothing was changed.

    ``player_id`` names the offending entry when there is one (an unknown,
    altered or repeated player), else None (e.g. an empty group).
    """

    def __init__(self, message: str, *, player_id: str | None = None) -> None:
        super().__init__(message)
        self.player_id = player_id


class AreaOfInterestError(ShardsError, ValueError):
    """Bad area-of-interest geometry or grid use: the message names the argument.

    A ``ValueError`` too, since most of these are out-of-range arguments
    (negative radius, non-positive cell size, a point of the wrong dimension).
    """


class DurableObjectError(ShardsError):
    """An error from the Durable Objects emulator, with production's flags.

    Attributes mirror the properties production sets on errors reaching a
    caller: ``remote`` (raised inside the object), ``retryable`` (safe to retry
    an idempotent call), ``overloaded`` (do not retry) and
    ``durableObjectReset`` (the object's in-memory state was discarded).
    """

    remote: bool = False
    retryable: bool = False
    overloaded: bool = False
    durableObjectReset: bool = False  # production spells it this way


class RemoteError(DurableObjectError):
    """An object raised an exception whose type could not be rebuilt for the caller.

    ``name`` is the original exception's type name, as production keeps it.
    """

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


class InvalidIdError(DurableObjectError, TypeError):
    """A Durable Object id string is malformed or belongs to another namespace."""


class StorageError(DurableObjectError):
    """A storage operation failed."""


class StorageLimitError(StorageError, ValueError):
    """A key, value or batch is over production's limits (a RangeError in production)."""


class StorageTypeError(StorageError, TypeError):
    """A storage call's arguments are malformed (a TypeError in production).

    For example ``list()`` with both ``start`` and ``startAfter``, a non-string
    key, an unknown option name, or an alarm time that is not a number or an
    aware datetime.
    """


class ObjectResetError(DurableObjectError):
    """The object was reset while the call was in flight; in-memory state is gone."""
