"""Input acknowledgement envelope, server-side tracking, client-side reconciliation."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, strategies as st

from shards import MAX_SEQ, AckTracker, InputAck, InvalidInput, PendingInput, Reconciler


def _append(state: tuple[int, ...], item: int) -> tuple[int, ...]:
    """A pure, order-sensitive apply: any reordering or loss shows up."""
    return (*state, item)


def _fold(state: tuple[int, ...], items: list[int]) -> tuple[int, ...]:
    for item in items:
        state = _append(state, item)
    return state


def _reconciler(**kwargs: Any) -> Reconciler[tuple[int, ...], int]:
    return Reconciler(_append, (), **kwargs)


# -- InputAck ------------------------------------------------------------------


def test_ack_round_trips_through_json() -> None:
    """to_wire is JSON-friendly and from_wire reads it back."""
    ack = InputAck(tick=42, last_client_seq=7)
    wire = json.loads(json.dumps(ack.to_wire()))
    assert wire == {"tick": 42, "last_client_seq": 7}
    assert InputAck.from_wire(wire) == ack


@given(st.integers(0, MAX_SEQ), st.integers(0, MAX_SEQ))
def test_any_valid_ack_round_trips(tick: int, seq: int) -> None:
    """Every valid ack survives to_wire/from_wire."""
    ack = InputAck(tick=tick, last_client_seq=seq)
    assert InputAck.from_wire(ack.to_wire()) == ack


def test_ack_refuses_negative_tick() -> None:
    """tick must be >= 0."""
    with pytest.raises(InvalidInput, match=rf"^tick must be in \[0, {MAX_SEQ}\], got -1$"):
        InputAck(tick=-1, last_client_seq=0)


def test_ack_refuses_seq_beyond_javascript_safe_integers() -> None:
    """Seqs above 2**53 - 1 would not read back exactly in a browser."""
    with pytest.raises(InvalidInput, match=rf"^last_client_seq must be in \[0, {MAX_SEQ}\], got {2**53}$"):
        InputAck(tick=0, last_client_seq=2**53)


def test_from_wire_refuses_a_non_object() -> None:
    """A list is not an ack."""
    with pytest.raises(InvalidInput, match=r"^ack must be an object, got list$"):
        InputAck.from_wire([1, 2])


def test_from_wire_refuses_a_missing_field() -> None:
    """Both fields are required."""
    with pytest.raises(InvalidInput, match=r"^ack is missing the field 'last_client_seq'$"):
        InputAck.from_wire({"tick": 1})


def test_from_wire_refuses_an_unknown_field() -> None:
    """Extra fields are refused rather than silently dropped."""
    with pytest.raises(InvalidInput, match=r"^ack has an unknown field 'seq'$"):
        InputAck.from_wire({"tick": 1, "last_client_seq": 2, "seq": 3})


@pytest.mark.parametrize(
    ("value", "type_name"), [(1.0, "float"), (True, "bool"), ("3", "str"), (None, "NoneType")]
)
def test_from_wire_refuses_a_non_int_field(value: object, type_name: str) -> None:
    """Floats, bools, strings and null are not ticks; the message names the field."""
    with pytest.raises(InvalidInput, match=rf"^tick must be an int, got {type_name}$"):
        InputAck.from_wire({"tick": value, "last_client_seq": 0})


def test_ack_is_frozen() -> None:
    """Acks are values."""
    ack = InputAck(tick=1, last_client_seq=1)
    with pytest.raises(AttributeError):
        ack.tick = 2  # type: ignore[misc]


# -- AckTracker ----------------------------------------------------------------


def test_tracker_acks_zero_before_any_input() -> None:
    """A subscriber with nothing processed is acked with seq 0."""
    assert AckTracker().ack("alice", tick=3) == InputAck(tick=3, last_client_seq=0)


def test_tracker_acks_the_last_recorded_seq() -> None:
    """ack() reports the highest recorded seq per subscriber."""
    tracker = AckTracker()
    tracker.record("alice", 1)
    tracker.record("alice", 4)
    tracker.record("bob", 2)
    assert tracker.ack("alice", tick=9) == InputAck(tick=9, last_client_seq=4)
    assert tracker.last_processed("bob") == 2


def test_tracker_refuses_a_duplicate_seq_and_keeps_the_last() -> None:
    """Recording a seq twice raises and changes nothing."""
    tracker = AckTracker()
    tracker.record("alice", 5)
    tracker.drain(tick=1)
    with pytest.raises(
        InvalidInput, match=r"^client_seq 5 from subscriber 'alice' is not above the last processed 5$"
    ):
        tracker.record("alice", 5)
    assert tracker.last_processed("alice") == 5
    assert tracker.drain(tick=2) == {}


def test_tracker_refuses_a_reordered_seq() -> None:
    """A lower seq than the last one raises."""
    tracker = AckTracker()
    tracker.record("alice", 5)
    with pytest.raises(
        InvalidInput, match=r"^client_seq 3 from subscriber 'alice' is not above the last processed 5$"
    ):
        tracker.record("alice", 3)
    assert tracker.last_processed("alice") == 5


def test_tracker_refuses_seq_zero() -> None:
    """Client seqs start at 1; 0 means 'none'."""
    tracker = AckTracker()
    with pytest.raises(InvalidInput, match=rf"^client_seq must be in \[1, {MAX_SEQ}\], got 0$"):
        tracker.record("alice", 0)
    assert tracker.drain(tick=0) == {}


def test_tracker_allows_gaps_in_seqs() -> None:
    """Seqs must increase, not be contiguous (a client may drop its own inputs)."""
    tracker = AckTracker()
    tracker.record("alice", 1)
    tracker.record("alice", 10)
    assert tracker.last_processed("alice") == 10


def test_drain_reports_only_subscribers_with_new_seqs_sorted() -> None:
    """drain() returns one ack per subscriber that advanced, ordered by id, then nothing."""
    tracker = AckTracker()
    tracker.record("carol", 1)
    tracker.record("alice", 1)
    tracker.record("alice", 2)
    first = tracker.drain(tick=7)
    assert list(first) == ["alice", "carol"]
    assert first["alice"] == InputAck(tick=7, last_client_seq=2)
    assert tracker.drain(tick=8) == {}


def test_drain_refuses_a_bad_tick_and_keeps_the_pending_acks() -> None:
    """A refused drain drains nothing."""
    tracker = AckTracker()
    tracker.record("alice", 1)
    with pytest.raises(InvalidInput, match=rf"^tick must be in \[0, {MAX_SEQ}\], got -1$"):
        tracker.drain(tick=-1)
    assert tracker.drain(tick=1) == {"alice": InputAck(tick=1, last_client_seq=1)}


def test_forget_lets_a_subscriber_start_over() -> None:
    """After forget(), seq 1 is accepted again and nothing is pending for drain."""
    tracker = AckTracker()
    tracker.record("alice", 3)
    tracker.forget("alice")
    tracker.forget("nobody")  # unknown ids are ignored
    assert tracker.drain(tick=1) == {}
    tracker.record("alice", 1)
    assert tracker.last_processed("alice") == 1


# -- Reconciler ----------------------------------------------------------------


def test_predict_applies_at_once_and_numbers_from_one() -> None:
    """Predicted inputs change the state immediately and get seqs 1, 2, ..."""
    rec = _reconciler()
    assert rec.predict(10) == 1
    assert rec.predict(20) == 2
    assert rec.state == (10, 20)
    assert rec.authoritative == ()
    assert rec.pending == (PendingInput(seq=1, input=10), PendingInput(seq=2, input=20))


def test_first_seq_sets_the_numbering() -> None:
    """A client resuming a session can continue its numbering."""
    rec = _reconciler(first_seq=100)
    assert rec.predict(1) == 100
    assert rec.next_seq == 101


def test_reconcile_drops_acknowledged_and_replays_the_rest() -> None:
    """The server state plus the unacknowledged inputs becomes the predicted state."""
    rec = _reconciler()
    for item in (1, 2, 3):
        rec.predict(item)
    assert rec.reconcile(InputAck(tick=5, last_client_seq=2), (1, 2)) is True
    assert rec.pending == (PendingInput(seq=3, input=3),)
    assert rec.authoritative == (1, 2)
    assert rec.state == (1, 2, 3)


def test_reconcile_takes_server_corrections() -> None:
    """When the server disagrees, its state wins and pending inputs replay on top."""
    rec = _reconciler()
    rec.predict(1)
    rec.predict(2)
    rec.reconcile(InputAck(tick=1, last_client_seq=1), (99,))
    assert rec.state == (99, 2)


def test_duplicate_ack_is_ignored() -> None:
    """An ack for a tick already taken changes nothing, even with a different state."""
    rec = _reconciler()
    rec.predict(1)
    rec.predict(2)
    rec.reconcile(InputAck(tick=4, last_client_seq=1), (1,))
    assert rec.reconcile(InputAck(tick=4, last_client_seq=2), (1, 2)) is False
    assert rec.state == (1, 2)
    assert rec.pending == (PendingInput(seq=2, input=2),)
    assert rec.statistics().ignored_acks == 1


def test_out_of_order_ack_is_ignored() -> None:
    """An ack older than the last one taken is late news and is dropped."""
    rec = _reconciler()
    for item in (1, 2, 3):
        rec.predict(item)
    rec.reconcile(InputAck(tick=9, last_client_seq=2), (1, 2))
    assert rec.reconcile(InputAck(tick=8, last_client_seq=1), (1,)) is False
    assert rec.authoritative == (1, 2)
    assert rec.last_ack == InputAck(tick=9, last_client_seq=2)


def test_ack_of_an_unsent_seq_is_refused() -> None:
    """The server cannot acknowledge an input we never sent; nothing changes."""
    rec = _reconciler()
    rec.predict(1)
    with pytest.raises(InvalidInput, match=r"^ack\.last_client_seq 2 was never sent \(the last sent is 1\)$"):
        rec.reconcile(InputAck(tick=1, last_client_seq=2), (1, 2))
    assert rec.state == (1,)
    assert rec.last_ack is None


def test_ack_moving_the_seq_backwards_is_refused() -> None:
    """A newer tick acknowledging less than before is a protocol violation."""
    rec = _reconciler()
    rec.predict(1)
    rec.predict(2)
    rec.reconcile(InputAck(tick=1, last_client_seq=2), (1, 2))
    with pytest.raises(
        InvalidInput, match=r"^ack\.last_client_seq 1 is below the previously acknowledged 2$"
    ):
        rec.reconcile(InputAck(tick=2, last_client_seq=1), (1,))
    assert rec.authoritative == (1, 2)
    assert rec.last_ack == InputAck(tick=1, last_client_seq=2)


def test_raising_apply_during_replay_changes_nothing() -> None:
    """If apply raises while replaying, the reconciler keeps its previous state."""

    def picky(state: tuple[int, ...], item: int) -> tuple[int, ...]:
        if state and state[0] < 0 and item == 2:
            raise ValueError("no")
        return (*state, item)

    rec: Reconciler[tuple[int, ...], int] = Reconciler(picky, ())
    rec.predict(1)
    rec.predict(2)
    with pytest.raises(ValueError, match=r"^no$"):
        rec.reconcile(InputAck(tick=1, last_client_seq=1), (-1,))
    assert rec.state == (1, 2)
    assert rec.authoritative == ()
    assert len(rec.pending) == 2
    assert rec.last_ack is None


def test_raising_apply_during_predict_changes_nothing() -> None:
    """A refused prediction takes no seq and leaves no pending input."""

    def refuse(state: tuple[int, ...], item: int) -> tuple[int, ...]:
        raise ValueError("bad input")

    rec: Reconciler[tuple[int, ...], int] = Reconciler(refuse, ())
    with pytest.raises(ValueError, match=r"^bad input$"):
        rec.predict(1)
    assert rec.pending == ()
    assert rec.next_seq == 1


def test_predict_refuses_beyond_max_pending() -> None:
    """max_pending bounds the unacknowledged inputs; the refused one is not kept."""
    rec = _reconciler(max_pending=2)
    rec.predict(1)
    rec.predict(2)
    with pytest.raises(InvalidInput, match=r"^2 inputs are pending already \(max_pending\)$"):
        rec.predict(3)
    assert rec.state == (1, 2)
    assert rec.next_seq == 3


def test_predict_refuses_when_seqs_run_out() -> None:
    """Past MAX_SEQ there is no seq left to give."""
    rec = _reconciler(first_seq=MAX_SEQ)
    rec.predict(1)
    with pytest.raises(InvalidInput, match=rf"^client_seq would exceed {MAX_SEQ}$"):
        rec.predict(2)
    assert rec.state == (1,)


def test_constructor_refuses_bad_first_seq_and_max_pending() -> None:
    """first_seq >= 1 and max_pending >= 1."""
    with pytest.raises(InvalidInput, match=rf"^first_seq must be in \[1, {MAX_SEQ}\], got 0$"):
        _reconciler(first_seq=0)
    with pytest.raises(InvalidInput, match=r"^max_pending must be an int >= 1, got 0$"):
        _reconciler(max_pending=0)


def test_statistics_count_predictions_and_acknowledgements() -> None:
    """statistics() reports pending, predicted, acknowledged and reconciliations."""
    rec = _reconciler()
    for item in range(4):
        rec.predict(item)
    rec.reconcile(InputAck(tick=1, last_client_seq=3), (0, 1, 2))
    stats = rec.statistics()
    assert (
        stats.pending,
        stats.predicted,
        stats.acknowledged,
        stats.reconciliations,
        stats.ignored_acks,
    ) == (
        1,
        4,
        3,
        1,
        0,
    )


# -- the property: prediction then reconciliation equals server state + pending --

# A session script: the client predicts inputs; the server processes some of
# what it has received and emits an ack with its state; the network delivers
# acks late, twice, or not at all.
_step = st.one_of(
    st.tuples(st.just("predict"), st.integers(-5, 5)),
    st.tuples(st.just("server"), st.integers(0, 3)),
    st.tuples(st.just("deliver"), st.integers(0, 10)),
)


def _server_rule(state: tuple[int, ...], item: int) -> tuple[int, ...]:
    """The server's authoritative rule differs from the client's: it clamps negatives."""
    return (*state, max(item, 0))


@given(st.lists(_step, max_size=60), st.booleans())
def test_predicted_state_is_server_state_plus_pending_inputs(
    steps: list[tuple[str, int]], corrective: bool
) -> None:
    """After any delivery order, state == fold(apply, pending, latest taken server state)."""
    rec = _reconciler()
    rule = _server_rule if corrective else _append
    sent: list[int] = []  # inputs by seq - 1
    processed = 0
    server_state: tuple[int, ...] = ()
    tick = 0
    outbox: list[tuple[InputAck, tuple[int, ...]]] = []
    for kind, n in steps:
        if kind == "predict":
            assert rec.predict(n) == len(sent) + 1
            sent.append(n)
        elif kind == "server":
            # The server processes up to n more of the inputs it has received.
            for item in sent[processed : processed + n]:
                server_state = rule(server_state, item)
            processed = min(len(sent), processed + n)
            tick += 1
            outbox.append((InputAck(tick=tick, last_client_seq=processed), server_state))
        elif outbox:
            ack, state = outbox[n % len(outbox)]  # any message, possibly again
            rec.reconcile(ack, state)
        taken = rec.last_ack
        expected_base = rec.authoritative
        acked = taken.last_client_seq if taken else 0
        assert [p.seq for p in rec.pending] == list(range(acked + 1, len(sent) + 1))
        assert [p.input for p in rec.pending] == sent[acked:]
        assert rec.state == _fold(expected_base, sent[acked:])
    # Once the newest ack arrives, the client is the server's state plus what is in flight.
    if outbox:
        ack, state = outbox[-1]
        rec.reconcile(ack, state)
        assert rec.authoritative == server_state
        assert rec.state == _fold(server_state, sent[processed:])
        if not corrective:
            assert rec.state == tuple(sent)
