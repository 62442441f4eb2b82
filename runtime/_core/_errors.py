"""The errors an object's callers see, with production's texts, in one place.

Invariants:

* Every text here is the one production (workerd) shows for the same event;
  where no production text is known the wording is ours and says so.
* An error that reset an object carries ``durableObjectReset = True``; one a
  caller may retry carries ``retryable = True``; an error raised inside an
  object reaches its caller rebuilt by :func:`remote_error` (same type name
  and message, production's flags, ``remote = True``), never as the object's
  own exception instance.
"""

from __future__ import annotations

from typing import Final

from shards._errors import DurableObjectError, ObjectResetError, RemoteError

__all__ = [
    "ABORTED_MESSAGE",
    "BCW_TIMEOUT_MESSAGE",
    "CONNECTION_LOST_MESSAGE",
    "CONSTRUCTOR_FAILED_MESSAGE",
    "OVERLOADED_MESSAGE",
    "SHUTTING_DOWN_MESSAGE",
    "STORAGE_RESET_MESSAGE",
    "DurableObjectAbort",
    "overloaded_error",
    "remote_error",
    "reset_error",
]

BCW_TIMEOUT_MESSAGE: Final = (
    "A call to blockConcurrencyWhile() in a Durable Object waited for too long. "
    "The call was canceled and the Durable Object was reset."
)
OVERLOADED_MESSAGE: Final = "Durable Object is overloaded. Too many requests queued."
#: What callers of an object that crashed, hibernated or was evicted under them see.
CONNECTION_LOST_MESSAGE: Final = "Network connection lost."
SHUTTING_DOWN_MESSAGE: Final = "The Durable Objects runtime is shutting down."
STORAGE_RESET_MESSAGE: Final = (
    "Internal error in Durable Object storage caused object to be reset; reference = {ref}"
)
#: ``ctx.abort()`` without a reason.
ABORTED_MESSAGE: Final = "Durable Object was aborted."
#: Ours: the reset that follows a constructor that raised (the caller sees the constructor's error).
CONSTRUCTOR_FAILED_MESSAGE: Final = "constructor failed"

#: The flags production puts on errors that cross to a caller.
_FLAGS: Final = ("retryable", "overloaded", "durableObjectReset")


class DurableObjectAbort(BaseException):
    """Raised by ``ctx.abort()`` in the calling handler.

    A ``BaseException``, as in production's Python SDK, so ``except Exception``
    cannot swallow it: the object is being reset.
    """


def reset_error(message: str, *, retryable: bool = False) -> ObjectResetError:
    """The error of a reset: what the reset object's waiting callers and outputs get."""
    err = ObjectResetError(message)
    err.durableObjectReset = True
    err.retryable = retryable
    return err


def overloaded_error() -> DurableObjectError:
    """Too many events queued for one object: do not retry."""
    err = DurableObjectError(OVERLOADED_MESSAGE)
    err.overloaded = True
    return err


def remote_error(exc: BaseException) -> BaseException:
    """Rebuild ``exc`` for a caller: same type name and message, production's flags.

    Production keeps the error's name and message but not its stack or own
    properties. Built-in exceptions (and ours) are rebuilt as the same type;
    others become :class:`~shards.RemoteError` carrying the original name
    (for an exception with string ``name`` and ``message`` attributes, a
    JavaScript error, those).
    """
    if isinstance(exc, DurableObjectError) and getattr(exc, "remote", False):
        return exc  # already converted by a nested call
    message = str(exc)
    cls = type(exc)
    rebuilt: BaseException
    js_name, js_message = getattr(exc, "name", None), getattr(exc, "message", None)
    if isinstance(js_name, str) and isinstance(js_message, str) and not isinstance(exc, DurableObjectError):
        # A JavaScript error (as the platform shims raise them): its own name, as production keeps it.
        rebuilt = RemoteError(js_name, js_message)
    elif cls.__module__ in ("builtins", "shards._errors"):
        try:
            rebuilt = cls(message)
        except Exception:
            rebuilt = RemoteError(cls.__name__, message)
    else:
        rebuilt = RemoteError(cls.__name__, message)
    for flag in _FLAGS:
        setattr(rebuilt, flag, bool(getattr(exc, flag, False)))
    rebuilt.remote = True  # type: ignore[attr-defined]
    return rebuilt
