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
    │   ├── InputQueueFull
    │   └── ProtocolError             a websocket message does not follow the shard wire protocol
    ├── SubscriberError
    │   ├── UnknownSubscriber
    │   ├── DuplicateSubscriber
    │   ├── ShardFull
    │   └── Unauthorized
    │       └── InvalidToken          a bearer token is missing, malformed, forged or expired
    │           └── TokenExpired      (``reason`` says which; never a bare user id)
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
    ├── HttpError                     the fetch API (Request, Response, Headers) refused a value;
    │   │                             defined with that API, in ``runtime._http``
    │   ├── HttpTypeError(TypeError)  production's TypeError: header, URL, method, body, JSON
    │   │   └── BodyUsedError(OSError)  the body was read already (Python Workers raises OSError)
    │   └── HttpRangeError(ValueError)  production's RangeError: a status out of range
    ├── DurableObjectError            raised by the Durable Objects emulator; carries
    │   │                         production's remote / retryable / overloaded /
    │   │                         durableObjectReset flags
    │   ├── RemoteError               an object's error whose type could not be rebuilt
    │   ├── InvalidIdError(TypeError) a malformed id, or one from another namespace
    │   ├── StorageError
    │   │   ├── StorageLimitError(ValueError)   production's RangeError family
    │   │   └── StorageTypeError(TypeError)     a malformed storage call (production's TypeError)
    │   └── ObjectResetError          the object was reset (crash, abort, failed write)
    ├── D1Error                       a D1 call failed; the message is production's text
    │   ├── D1QueryError              ``D1_ERROR: …`` (SQLite's error, refusals, limits)
    │   │   ├── D1SyntaxError         SQLITE_ERROR for malformed SQL ("syntax error", "incomplete input")
    │   │   ├── D1ConstraintError     SQLITE_CONSTRAINT (UNIQUE, NOT NULL, CHECK, FOREIGN KEY)
    │   │   └── D1NotAuthorized       SQLITE_AUTH (``_cf_`` names, forbidden PRAGMAs) and BEGIN/SAVEPOINT
    │   ├── D1TypeError(TypeError)    ``D1_TYPE_ERROR``: a bound value of an unsupported type
    │   ├── D1ColumnNotFound          ``D1_COLUMN_NOTFOUND``: ``first(column)`` of a missing column
    │   ├── D1ExecError               ``D1_EXEC_ERROR``: ``exec()`` failed at a line
    │   ├── D1SessionError            ``D1_SESSION_ERROR``: an empty bookmark or constraint
    │   └── D1MigrationError          a migration file failed; it was rolled back
    └── DataStoreError                D1DataStore refused or failed a call; ``code`` is stable
                                      (ENTITY_NOT_FOUND, INVALID_COLUMN, INVALID_DATA, ...)
"""

from __future__ import annotations

__all__ = [
    "AreaOfInterestError",
    "CodecError",
    "D1ColumnNotFound",
    "D1ConstraintError",
    "D1Error",
    "D1ExecError",
    "D1MigrationError",
    "D1NotAuthorized",
    "D1QueryError",
    "D1SessionError",
    "D1SyntaxError",
    "D1TypeError",
    "DataStoreError",
    "DuplicateSubscriber",
    "DurableObjectError",
    "InputQueueFull",
    "InputTooLarge",
    "InvalidIdError",
    "InvalidInput",
    "InvalidMatch",
    "InvalidState",
    "InvalidToken",
    "MatchQueueFull",
    "MatchmakingError",
    "ObjectResetError",
    "PlayerAlreadyQueued",
    "PlayerNotQueued",
    "ProtocolError",
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
    "TokenExpired",
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


class ProtocolError(InvalidInput):
    """A websocket message does not follow the shard wire protocol; nothing was queued."""


class InvalidToken(Unauthorized):
    """A bearer token is missing, malformed, signed with another secret, or expired.

    ``reason`` is a short machine-readable word: ``"missing"``, ``"malformed"``,
    ``"signature"``, ``"expired"``.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class TokenExpired(InvalidToken):
    """A bearer token's expiry time has passed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="expired")


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


class D1Error(ShardsError):
    """A D1 call failed. ``str(error)`` is production's message.

    Production throws an ``Error`` whose message carries a prefix
    (``D1_ERROR: ``, ``D1_TYPE_ERROR: ``, ...) and whose ``cause`` holds the
    text without it; ``detail`` is that text.
    """

    def __init__(self, message: str, *, detail: str) -> None:
        super().__init__(message)
        self.detail = detail


class D1QueryError(D1Error):
    """``D1_ERROR: <detail>``: SQLite refused or failed the statement.

    ``sqlite_code`` is SQLite's primary result code name (``SQLITE_CONSTRAINT``),
    or None for errors that do not come from SQLite (a wrong number of
    bindings, a transaction statement).
    """

    def __init__(self, detail: str, *, sqlite_code: str | None = None) -> None:
        super().__init__(f"D1_ERROR: {detail}", detail=detail)
        self.sqlite_code = sqlite_code


class D1SyntaxError(D1QueryError):
    """The SQL text does not parse (SQLITE_ERROR: "syntax error", "incomplete input", ...)."""


class D1ConstraintError(D1QueryError):
    """A UNIQUE, NOT NULL, CHECK, PRIMARY KEY or FOREIGN KEY constraint failed (SQLITE_CONSTRAINT)."""


class D1NotAuthorized(D1QueryError):
    """The statement touches what D1 forbids: ``_cf_`` names, some PRAGMAs, BEGIN/SAVEPOINT."""


class D1TypeError(D1Error, TypeError):
    """``D1_TYPE_ERROR: Type '<type>' not supported for value '<value>'``, raised by ``bind()``."""


class D1ColumnNotFound(D1Error):
    """``D1_COLUMN_NOTFOUND: Column not found (<column>)``, raised by ``first(column)``."""


class D1ExecError(D1Error):
    """``D1_EXEC_ERROR: Error in line <n>: <line>: <error>``, raised by ``exec()``.

    ``line`` is the 1-based line number that failed. The lines run in one transaction,
    so none of them was applied.
    """

    def __init__(self, message: str, *, detail: str, line: int) -> None:
        super().__init__(message, detail=detail)
        self.line = line


class D1SessionError(D1Error):
    """``D1_SESSION_ERROR: ...``: a session was opened with an invalid bookmark or constraint."""


class D1MigrationError(D1Error):
    """A migration file failed and was rolled back; ``migration`` names the file."""

    def __init__(self, message: str, *, detail: str, migration: str) -> None:
        super().__init__(message, detail=detail)
        self.migration = migration


class DataStoreError(ShardsError):
    """D1DataStore refused or failed a call. ``code`` is stable, the message is for people.

    Codes: ``ENTITY_NOT_FOUND`` (no such entity in the manifest, or no row with
    that id), ``INVALID_COLUMN`` (a field the manifest does not declare),
    ``INVALID_DATA`` (a value or filter of the wrong shape), ``RELATION_NOT_FOUND``,
    ``INVALID_MANIFEST``, ``QUERY_FAILED`` (the executor raised; ``__cause__`` holds it).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
