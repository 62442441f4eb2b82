"""The lifecycle table."""

from __future__ import annotations

import pytest

from runtime._core._lifecycle import TRANSITIONS, Lifecycle, ObjectState, Transition
from shards import InvalidState


def test_every_state_has_a_row() -> None:
    assert set(TRANSITIONS) == set(ObjectState)


def test_a_normal_life() -> None:
    lc = Lifecycle()
    assert lc.state is ObjectState.INACTIVE
    assert lc.apply(Transition.EVENT) is ObjectState.ACTIVE
    assert lc.apply(Transition.IDLE) is ObjectState.IDLE
    assert lc.apply(Transition.HIBERNATE) is ObjectState.HIBERNATED
    assert lc.apply(Transition.EVENT) is ObjectState.ACTIVE
    assert lc.apply(Transition.RESET) is ObjectState.INACTIVE


def test_an_illegal_transition_raises_and_changes_nothing() -> None:
    lc = Lifecycle()
    with pytest.raises(InvalidState, match=r"^cannot idle an object that is inactive$"):
        lc.apply(Transition.IDLE)
    assert lc.state is ObjectState.INACTIVE
