"""The simulation contract: :class:`SimState`, and the identity :class:`ShardAuth`.

Users subclass :class:`SimState`; the required hooks are ``apply_input``,
``tick`` and ``snapshot``; everything else has a default.

Invariants:

* Hooks receive time as arguments (``now`` and ``dt`` in seconds) and must not
  read clocks or do I/O, so a shard replays exactly from its inputs.
* ``to_state()`` returns a value the shared codec accepts (see
  :mod:`shards._codec`), and ``from_state(to_state())`` rebuilds an equal sim.
* The default :meth:`SimState.authorize_subscribe` only lets a user subscribe
  as themselves (subscriber id equal to the authenticated user id) unless the
  caller is an admin; :meth:`SimState.authorize_input` allows everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Self

__all__ = ["ShardAuth", "SimState"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardAuth:
    """Who is calling: the authenticated user, whether they are admin, and token claims."""

    user_id: str
    admin: bool = False
    claims: dict[str, Any] = field(default_factory=dict)


class SimState:
    """Base class for a shard's simulation. Subclass it and override the hooks.

    Required: :meth:`apply_input`, :meth:`tick`, :meth:`snapshot`.
    """

    @classmethod
    def create(cls, shard_id: str) -> Self:
        """Return the initial state of a new shard. The default calls ``cls()``."""
        del shard_id
        return cls()

    def apply_input(self, subscriber_id: str, input: Any, now: float) -> None:
        """Apply one input from ``subscriber_id``; ``now`` is the tick time in seconds."""
        raise NotImplementedError(f"{type(self).__name__} must implement apply_input()")

    def tick(self, dt: float) -> None:
        """Advance the simulation by ``dt`` seconds."""
        raise NotImplementedError(f"{type(self).__name__} must implement tick()")

    def snapshot(self) -> Any:
        """Return the state every subscriber sees (a codec- and JSON-friendly value)."""
        raise NotImplementedError(f"{type(self).__name__} must implement snapshot()")

    def snapshot_for(self, subscriber_id: str) -> Any:
        """Return what ``subscriber_id`` sees. Defaults to :meth:`snapshot`.

        Subscribers that receive the same object (by identity) share one
        encoding per format; override only when views really differ.
        """
        del subscriber_id
        return self.snapshot()

    def is_finished(self) -> bool:
        """Return True once the simulation is over (the shard then persists and stops)."""
        return False

    def authorize_subscribe(self, subscriber_id: str, auth: ShardAuth) -> bool:
        """Return whether ``auth`` may subscribe as ``subscriber_id``.

        The default allows a user to subscribe only as themselves, unless admin.
        To refuse with a reason the subscriber sees, raise
        :class:`~shards.Unauthorized` with it; any other exception fails the shard.
        """
        return auth.admin or subscriber_id == auth.user_id

    def authorize_input(self, subscriber_id: str, auth: ShardAuth, input: Any) -> bool:
        """Return whether ``auth`` may send ``input`` as ``subscriber_id``. Default: allow.

        To refuse with a reason the sender sees (an error frame), raise
        :class:`~shards.InvalidInput` (the input is malformed: code
        ``invalid``) or :class:`~shards.Unauthorized` (not allowed: code
        ``unauthorized``) with it; any other exception fails the shard.
        """
        del subscriber_id, auth, input
        return True

    def to_state(self) -> Any:
        """Return a codec-friendly value from which :meth:`from_state` rebuilds this sim.

        The default returns a copy of the instance's ``__dict__``; override it
        when attributes are not plain values.
        """
        return dict(vars(self))

    @classmethod
    def from_state(cls, value: Any) -> Self:
        """Rebuild a sim from :meth:`to_state`'s value. The default restores ``__dict__``."""
        obj = cls.__new__(cls)
        vars(obj).update(value)
        return obj
