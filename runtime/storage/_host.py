"""The seam between an object's storage and the actor that owns it.

Storage is synchronous and inline: every call acts at once on the object's
SQLite database, inside one open transaction that holds the current write
batch. The actor decides when that batch commits (group commit) and holds
outputs until it has. Storage tells the actor about writes through this
protocol and never imports the actor.

Invariants:

* ``wrote()`` is called after every write that landed in the open batch,
  before the storage call returns.
* ``wait_durable()`` returns once every write made before the call is
  committed (or raises if the commit failed / the object was reset).
* Between ``close_input_gate()`` and the matching ``open_input_gate()`` the
  actor delivers no new event to the object (``storage.transaction``).
* ``check_alive()`` raises :class:`~shards.ObjectResetError` once the object
  this storage belongs to was reset, so a stale handler cannot write.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["StorageHost"]


class StorageHost(Protocol):
    """What an object's storage needs from its actor."""

    def wrote(self, *, confirmed: bool) -> None:
        """A write landed in the open batch; ``confirmed=False`` for ``allowUnconfirmed``."""

    async def wait_durable(self) -> None:
        """Wait until every write made so far is committed."""

    def close_input_gate(self) -> None:
        """Stop delivering new events until :meth:`open_input_gate`."""

    def open_input_gate(self) -> None:
        """Undo one :meth:`close_input_gate`."""

    def check_alive(self) -> None:
        """Raise ObjectResetError if the owning object was reset."""

    def alarm_changed(self, scheduled_ms: int | None) -> None:
        """The alarm time in the open batch changed (None: deleted)."""
