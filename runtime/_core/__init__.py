"""The core: one live object's actor and activation, its commits and gates.

Below the runtime's services (alarms, sockets, D1) and facades (stubs,
``ctx``), above storage. The core imports nothing above it: what it needs
from the runtime that composes it is the :class:`ActorHost` protocol, and
what its actors share is a :class:`Core`. Modules outside this package use
only the names exported here.
"""

from __future__ import annotations

from ._actor import (
    SOLO_COMMITS as SOLO_COMMITS,
    Activation as Activation,
    Actor as Actor,
    ActorHost as ActorHost,
    Core as Core,
    Flusher as Flusher,
    Pending as Pending,
    current_activation as current_activation,
    outbound_gate as outbound_gate,
    run_as as run_as,
)
from ._awaits import (
    INSTANT as INSTANT,
    MAY_SUSPEND as MAY_SUSPEND,
    PLAIN as PLAIN,
    Mapped as Mapped,
    await_kind as await_kind,
    await_watched as await_watched,
    settle as settle,
)
from ._entry import EntryPoints as EntryPoints, handler_of as handler_of, method_of as method_of
from ._errors import (
    ABORTED_MESSAGE as ABORTED_MESSAGE,
    BCW_TIMEOUT_MESSAGE as BCW_TIMEOUT_MESSAGE,
    CONNECTION_LOST_MESSAGE as CONNECTION_LOST_MESSAGE,
    CONSTRUCTOR_FAILED_MESSAGE as CONSTRUCTOR_FAILED_MESSAGE,
    OVERLOADED_MESSAGE as OVERLOADED_MESSAGE,
    SHUTTING_DOWN_MESSAGE as SHUTTING_DOWN_MESSAGE,
    STORAGE_RESET_MESSAGE as STORAGE_RESET_MESSAGE,
    DurableObjectAbort as DurableObjectAbort,
    overloaded_error as overloaded_error,
    remote_error as remote_error,
    reset_error as reset_error,
)
from ._lifecycle import (
    TRANSITIONS as TRANSITIONS,
    Lifecycle as Lifecycle,
    ObjectState as ObjectState,
    Transition as Transition,
)
from ._order import StubOrder as StubOrder

__all__ = [
    "ABORTED_MESSAGE",
    "BCW_TIMEOUT_MESSAGE",
    "CONNECTION_LOST_MESSAGE",
    "CONSTRUCTOR_FAILED_MESSAGE",
    "INSTANT",
    "MAY_SUSPEND",
    "OVERLOADED_MESSAGE",
    "PLAIN",
    "SHUTTING_DOWN_MESSAGE",
    "SOLO_COMMITS",
    "STORAGE_RESET_MESSAGE",
    "TRANSITIONS",
    "Activation",
    "Actor",
    "ActorHost",
    "Core",
    "DurableObjectAbort",
    "EntryPoints",
    "Flusher",
    "Lifecycle",
    "Mapped",
    "ObjectState",
    "Pending",
    "StubOrder",
    "Transition",
    "await_kind",
    "await_watched",
    "current_activation",
    "handler_of",
    "method_of",
    "outbound_gate",
    "overloaded_error",
    "remote_error",
    "reset_error",
    "run_as",
    "settle",
]
