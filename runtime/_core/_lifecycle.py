"""The lifecycle of one Durable Object, as a table (pure: no trio, no I/O).

::

    INACTIVE --event--> ACTIVE <--> IDLE --idle, hibernatable--> HIBERNATED
                                      \\--idle, pinned (70-140 s)--> INACTIVE
    any state --crash / abort / reset / failed write--> INACTIVE

Invariants: a transition not in :data:`TRANSITIONS` raises
:class:`~shards.InvalidState` and changes nothing. HIBERNATED and INACTIVE
hold no instance; only ACTIVE and IDLE do.
"""

from __future__ import annotations

import enum
from typing import Final

from shards._errors import InvalidState

__all__ = ["Lifecycle", "ObjectState", "Transition"]


class ObjectState(enum.Enum):
    # Enum hashes members by name, in Python; identity is equivalent (members
    # are singletons compared by identity) and costs nothing. Every event
    # looks states and transitions up in TRANSITIONS twice.
    __hash__ = object.__hash__

    INACTIVE = "inactive"
    ACTIVE = "active"
    IDLE = "idle"
    HIBERNATED = "hibernated"


class Transition(enum.Enum):
    __hash__ = object.__hash__  # see ObjectState

    EVENT = "event"  # an event starts (constructs the instance if needed)
    IDLE = "idle"  # the last in-flight event finished
    HIBERNATE = "hibernate"
    EVICT = "evict"
    RESET = "reset"  # crash, abort, failed write, blockConcurrencyWhile failure


_S, _T = ObjectState, Transition

TRANSITIONS: Final[dict[ObjectState, dict[Transition, ObjectState]]] = {
    _S.INACTIVE: {
        _T.EVENT: _S.ACTIVE,
        _T.RESET: _S.INACTIVE,
        _T.EVICT: _S.INACTIVE,
        _T.HIBERNATE: _S.INACTIVE,
    },
    _S.HIBERNATED: {
        _T.EVENT: _S.ACTIVE,
        _T.RESET: _S.INACTIVE,
        _T.EVICT: _S.INACTIVE,
        _T.HIBERNATE: _S.HIBERNATED,
    },
    _S.ACTIVE: {
        _T.EVENT: _S.ACTIVE,
        _T.IDLE: _S.IDLE,
        _T.RESET: _S.INACTIVE,
        _T.EVICT: _S.INACTIVE,
        _T.HIBERNATE: _S.HIBERNATED,
    },
    _S.IDLE: {
        _T.EVENT: _S.ACTIVE,
        _T.IDLE: _S.IDLE,
        _T.HIBERNATE: _S.HIBERNATED,
        _T.EVICT: _S.INACTIVE,
        _T.RESET: _S.INACTIVE,
    },
}


class Lifecycle:
    """One object's lifecycle state machine."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = ObjectState.INACTIVE

    def apply(self, transition: Transition) -> ObjectState:
        try:
            new = TRANSITIONS[self.state][transition]
        except KeyError:
            raise InvalidState(f"cannot {transition.value} an object that is {self.state.value}") from None
        self.state = new
        return new
