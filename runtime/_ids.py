"""Durable Object ids, and the id logic of one namespace.

An id is 32 bytes, written as 64 lowercase hex digits. As in workerd's
``ActorIdFactoryImpl``, the first 16 bytes are the id's body and the last 16
bytes are a keyed checksum of the body: HMAC-SHA256 under the namespace's key,
truncated. That is what lets ``idFromString`` refuse a string that is 64 hex
digits but was not made by this namespace. The body of a name-derived id is
itself an HMAC of the name under the same key; the body of a unique id is 128
bits drawn from the runtime's seeded ``random.Random``.

Invariants:

* The namespace key is derived from the binding's class name only: no
  process salt, no randomness. The same class name and the same name give
  the same id in every process and after every restart, because object files
  on disk are named by these ids. Changing ``_KEY_DOMAIN`` or the
  derivation orphans every stored object.
* Different class names give different keys, so a name maps to different ids
  in different namespaces, and an id of one namespace fails the other's
  ``idFromString`` (except with probability 2**-128).
* Every id a factory hands out passes that factory's ``idFromString``.
* Ids are immutable values; equality and hash look at the 32 bytes only,
  never at ``name`` (``idFromString(id.toString())`` equals ``id``).
* ``name`` is what the caller of ``idFromName`` passed; ``idFromString`` and
  ``newUniqueId`` ids have ``name is None``. What the object itself sees as
  ``ctx.id`` is :meth:`DurableObjectId.for_object`, which also drops names of
  more than 1,024 UTF-8 bytes, as production does.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import TYPE_CHECKING, Final, final

from shards._errors import InvalidIdError

if TYPE_CHECKING:
    import random
    from collections.abc import Mapping

__all__ = [
    "INVALID_ID_MESSAGE",
    "MAX_VISIBLE_NAME_BYTES",
    "WRONG_NAMESPACE_MESSAGE",
    "DurableObjectId",
    "IdFactory",
    "looks_like_id",
]

# Production's messages, verbatim: workerd src/workerd/server/actor-id-impl.c++,
# ActorIdFactoryImpl::idFromString (both are JS TypeErrors).
INVALID_ID_MESSAGE: Final = "Invalid Durable Object ID: must be 64 hex digits"
WRONG_NAMESPACE_MESSAGE: Final = "Durable Object ID is not valid for this namespace."

#: Names longer than this many UTF-8 bytes are not shown as ``ctx.id.name``
#: inside the object (Cloudflare's DurableObjectId documentation).
MAX_VISIBLE_NAME_BYTES: Final = 1024

_ID_BYTES: Final = 32
_BODY_BYTES: Final = 16
_KEY_DOMAIN: Final = b"shardsim/durable-object-namespace/v1\x00"
_HEX_ID = re.compile(r"[0-9a-fA-F]{64}")
#: What ``toString()`` gives, and what object files under a state directory are named by.
_CANONICAL_ID = re.compile(r"[0-9a-f]{64}")


def looks_like_id(text: str) -> bool:
    """Whether ``text`` has the form of an id's ``toString()``: 64 lowercase hex digits.

    Says nothing about whether a namespace would accept it (the checksum):
    ``idFromString`` decides that.
    """
    return _CANONICAL_ID.fullmatch(text) is not None


def _utf8(text: str) -> bytes:
    """Encode ``text`` as a JavaScript engine would hand it to the runtime.

    JS strings are UTF-16; the runtime turns surrogate pairs into one code
    point and lone surrogates into U+FFFD. A Python ``str`` can carry either
    as separate code points, so we go through UTF-16 to get the same bytes.
    """
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        utf16 = text.encode("utf-16-le", "surrogatepass")
        return utf16.decode("utf-16-le", "replace").encode("utf-8")


@final
class DurableObjectId:
    """The id of one Durable Object, as ``DurableObjectId`` in production.

    Ids are made by a namespace (:class:`IdFactory`), never directly by user
    code. They are immutable and hashable; ``==`` is :meth:`equals`.

    Attributes:
        name: The name given to ``idFromName``, or ``None`` for ids from
            ``newUniqueId`` and ``idFromString``.
        jurisdiction: Always ``None``: jurisdictions change nothing locally.
    """

    __slots__ = ("_raw", "name")

    _raw: bytes
    name: str | None

    def __init__(self, raw: bytes, name: str | None = None) -> None:
        """Wrap 32 id bytes. Callers are namespaces; user code never calls this.

        Args:
            raw: The 32 bytes of the id (body and checksum).
            name: The name the id was derived from, if any.
        """
        assert type(raw) is bytes, "an id is bytes; please file a bug"
        assert len(raw) == _ID_BYTES, "an id is 32 bytes; please file a bug"
        object.__setattr__(self, "_raw", raw)
        object.__setattr__(self, "name", name)

    def __setattr__(self, attr: str, value: object) -> None:
        raise AttributeError(f"DurableObjectId is immutable; cannot set {attr!r}")

    def __delattr__(self, attr: str) -> None:
        raise AttributeError(f"DurableObjectId is immutable; cannot delete {attr!r}")

    @property
    def jurisdiction(self) -> str | None:
        """The id's jurisdiction; always ``None`` here."""
        return None

    def toString(self) -> str:
        """Return the id as 64 lowercase hex digits."""
        return self._raw.hex()

    def equals(self, other: DurableObjectId) -> bool:
        """Return whether ``other`` names the same object.

        Raises:
            InvalidIdError: ``other`` is not a ``DurableObjectId`` (a
                TypeError in production).
        """
        if not isinstance(other, DurableObjectId):
            raise InvalidIdError(
                "Failed to execute 'equals' on 'DurableObjectId': "
                "parameter 1 is not of type 'DurableObjectId'."
            )
        return self._raw == other._raw

    def for_object(self) -> DurableObjectId:
        """Return the id as the object itself sees it (``ctx.id``).

        The name is kept only if it is at most :data:`MAX_VISIBLE_NAME_BYTES`
        bytes of UTF-8; an id without a name is returned unchanged.
        """
        if self.name is None or len(_utf8(self.name)) <= MAX_VISIBLE_NAME_BYTES:
            return self
        return DurableObjectId(self._raw)

    def __str__(self) -> str:
        return self._raw.hex()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DurableObjectId):
            return NotImplemented
        return self._raw == other._raw

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        if self.name is None:
            return f"DurableObjectId({self._raw.hex()!r})"
        return f"DurableObjectId({self._raw.hex()!r}, name={self.name!r})"


@final
class IdFactory:
    """The id logic of one Durable Object namespace (one binding).

    Args:
        namespace_key: The bound class's name. It must be stable across
            restarts: ids, and therefore object files on disk, derive from it.
        rng: The runtime's seeded random source, used by :meth:`newUniqueId`.
    """

    __slots__ = ("_key", "_rng", "namespace_key")

    def __init__(self, namespace_key: str, rng: random.Random) -> None:
        assert isinstance(namespace_key, str), "namespace_key is a class name; please file a bug"
        self.namespace_key: Final = namespace_key
        self._key = hashlib.sha256(_KEY_DOMAIN + _utf8(namespace_key)).digest()
        self._rng = rng

    def _checksum(self, body: bytes) -> bytes:
        return hmac.digest(self._key, body, "sha256")[:_BODY_BYTES]

    def idFromName(self, name: str) -> DurableObjectId:
        """Return the id for ``name``: the same name always gives the same id.

        Args:
            name: Any string; its length is not limited here.

        Raises:
            InvalidIdError: ``name`` is not a ``str``. (Production's JS would
                coerce it to a string; we refuse rather than guess how.)
        """
        if not isinstance(name, str):
            raise InvalidIdError(f"idFromName() takes a str name, not {type(name).__name__}")
        body = hmac.digest(self._key, _utf8(name), "sha256")[:_BODY_BYTES]
        return DurableObjectId(body + self._checksum(body), name)

    def newUniqueId(
        self, options: Mapping[str, object] | None = None, *, jurisdiction: str | None = None
    ) -> DurableObjectId:
        """Return a new random id, drawn from the runtime's seeded rng.

        Args:
            options: ``{"jurisdiction": "eu"}`` and the like; accepted and
                ignored, as jurisdictions change nothing locally.
            jurisdiction: The same option as a keyword (Pyodide passes keyword
                arguments to JS as a trailing options object); ignored.

        Returns:
            An id whose ``name`` is ``None``.
        """
        del options, jurisdiction
        body = self._rng.getrandbits(8 * _BODY_BYTES).to_bytes(_BODY_BYTES, "big")
        return DurableObjectId(body + self._checksum(body))

    def idFromString(self, hex_id: str) -> DurableObjectId:
        """Rebuild an id from its 64-hex-digit form (either case).

        The result has ``name is None`` even when the id was derived from a
        name, as in production.

        Raises:
            InvalidIdError: ``hex_id`` is not exactly 64 hex digits
                (:data:`INVALID_ID_MESSAGE`), or was not made by this namespace
                (:data:`WRONG_NAMESPACE_MESSAGE`).
        """
        if not isinstance(hex_id, str) or _HEX_ID.fullmatch(hex_id) is None:
            raise InvalidIdError(INVALID_ID_MESSAGE)
        raw = bytes.fromhex(hex_id)
        if not hmac.compare_digest(raw[_BODY_BYTES:], self._checksum(raw[:_BODY_BYTES])):
            raise InvalidIdError(WRONG_NAMESPACE_MESSAGE)
        return DurableObjectId(raw)

    def owns(self, object_id: DurableObjectId) -> bool:
        """Return whether ``object_id`` was made by this namespace."""
        raw = object_id._raw
        return hmac.compare_digest(raw[_BODY_BYTES:], self._checksum(raw[:_BODY_BYTES]))

    def __repr__(self) -> str:
        return f"IdFactory({self.namespace_key!r})"
