"""remote_error: what an object's caller sees for an exception raised inside the object."""

from __future__ import annotations

import pytest

from runtime._core._errors import remote_error
from shards import RemoteError, StorageError


class JavaScriptStyleError(Exception):
    """An error shaped like a JavaScript one (what the platform shims raise): ``name`` and ``message``."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


class Custom(Exception):
    pass


def test_builtin_exceptions_are_rebuilt_as_the_same_type_with_remote_set() -> None:
    original = KeyError("k")
    rebuilt = remote_error(original)
    assert type(rebuilt) is KeyError
    assert rebuilt is not original
    assert rebuilt.remote is True  # type: ignore[attr-defined]
    assert rebuilt.retryable is False  # type: ignore[attr-defined]


def test_other_exceptions_become_remote_errors_carrying_their_type_name() -> None:
    rebuilt = remote_error(Custom("lost"))
    assert isinstance(rebuilt, RemoteError)
    assert (rebuilt.name, str(rebuilt)) == ("Custom", "lost")


def test_a_javascript_error_keeps_its_own_name_and_message() -> None:
    rebuilt = remote_error(JavaScriptStyleError("TypeError", "x is not a function"))
    assert isinstance(rebuilt, RemoteError)
    assert (rebuilt.name, str(rebuilt)) == ("TypeError", "x is not a function")


@pytest.mark.parametrize("flag", ["retryable", "overloaded", "durableObjectReset"])
def test_production_flags_cross(flag: str) -> None:
    err = StorageError("boom")
    setattr(err, flag, True)
    rebuilt = remote_error(err)
    assert type(rebuilt) is StorageError
    assert getattr(rebuilt, flag) is True


def test_an_already_remote_error_is_passed_on_unchanged() -> None:
    first = remote_error(StorageError("boom"))
    assert remote_error(first) is first
