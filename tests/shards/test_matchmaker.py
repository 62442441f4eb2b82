"""The pure matchmaker: queue, match functions, assignments, expiry, refusals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, strategies as st

from shards import (
    InvalidMatch,
    MatchAssignment,
    MatchEntry,
    Matchmaker,
    MatchmakingError,
    MatchPollResult,
    MatchQueueFull,
    MatchState,
    PlayerAlreadyQueued,
    PlayerNotQueued,
    fixed_size,
)


def _snapshot(mm: Matchmaker) -> tuple[Any, ...]:
    """Everything observable, to show that a refused call changed nothing."""
    return (mm.queue, mm.statistics(), [mm.status(e.player_id) for e in mm.queue])


def _fill(mm: Matchmaker, *players: str, now: float = 0.0, **criteria: Any) -> None:
    for p in players:
        mm.enqueue(p, now=now, criteria=criteria)


# -- enqueue / cancel / status -------------------------------------------------


def test_enqueue_returns_the_entry_and_queues_the_player() -> None:
    """A queued player's status is QUEUED with their entry."""
    mm = Matchmaker()
    entry = mm.enqueue("alice", now=1.5, criteria={"mode": "duel"})
    assert entry == MatchEntry(player_id="alice", enqueued_at=1.5, criteria={"mode": "duel"})
    status = mm.status("alice")
    assert status.state is MatchState.QUEUED
    assert status.entry == entry
    assert mm.queue == (entry,)
    assert len(mm) == 1


def test_criteria_are_copied_and_read_only() -> None:
    """Mutating the caller's dict later does not change the entry, and the entry's criteria cannot be mutated."""
    criteria = {"rating": 1500}
    entry = Matchmaker().enqueue("alice", now=0, criteria=criteria)
    criteria["rating"] = 0
    assert entry.criteria["rating"] == 1500
    with pytest.raises(TypeError):
        entry.criteria["rating"] = 1  # type: ignore[index]


def test_duplicate_enqueue_is_refused_and_keeps_the_first_entry() -> None:
    """Enqueueing a waiting player again raises PlayerAlreadyQueued; nothing changes."""
    mm = Matchmaker()
    mm.enqueue("alice", now=0)
    before = _snapshot(mm)
    with pytest.raises(PlayerAlreadyQueued, match=r"^player 'alice' is already queued$") as info:
        mm.enqueue("alice", now=1, criteria={"mode": "x"})
    assert info.value.player_id == "alice"
    assert _snapshot(mm) == before


def test_enqueue_refuses_an_empty_player_id() -> None:
    """Player ids are non-empty strings."""
    mm = Matchmaker()
    with pytest.raises(MatchmakingError, match=r"^player_id must be a non-empty str, got ''$"):
        mm.enqueue("", now=0)
    assert len(mm) == 0


def test_enqueue_refuses_non_string_criteria_keys() -> None:
    """Criteria keys are strings (they travel as JSON)."""
    mm = Matchmaker()
    with pytest.raises(MatchmakingError, match=r"^criteria keys must be str, got 1$"):
        mm.enqueue("alice", now=0, criteria={1: "x"})  # type: ignore[dict-item]
    assert len(mm) == 0


def test_enqueue_refuses_non_mapping_criteria() -> None:
    """Criteria are a mapping."""
    with pytest.raises(MatchmakingError, match=r"^criteria must be a mapping, got list$"):
        Matchmaker().enqueue("alice", now=0, criteria=[("mode", "duel")])  # type: ignore[arg-type]


def test_enqueue_refuses_a_non_finite_time() -> None:
    """now must be finite."""
    with pytest.raises(MatchmakingError, match=r"^now must be a finite number, got nan$"):
        Matchmaker().enqueue("alice", now=float("nan"))


def test_time_going_backwards_is_refused() -> None:
    """A now earlier than one already seen raises; nothing changes."""
    mm = Matchmaker()
    mm.enqueue("alice", now=10)
    before = _snapshot(mm)
    with pytest.raises(MatchmakingError, match=r"^now=9\.0 is earlier than a time already seen \(10\.0\)$"):
        mm.enqueue("bob", now=9)
    with pytest.raises(MatchmakingError, match=r"^now=9\.5 is earlier than a time already seen \(10\.0\)$"):
        mm.poll(9.5)
    assert _snapshot(mm) == before


def test_queue_full_is_refused() -> None:
    """max_queued bounds the waiting players; the refused player is not queued."""
    mm = Matchmaker(max_queued=1)
    mm.enqueue("alice", now=0)
    with pytest.raises(MatchQueueFull, match=r"^the queue is full \(1 players\)$") as info:
        mm.enqueue("bob", now=0)
    assert info.value.limit == 1
    assert mm.status("bob").state is MatchState.NOT_FOUND


def test_cancel_removes_the_player() -> None:
    """A cancelled player is no longer queued and is not found."""
    mm = Matchmaker()
    entry = mm.enqueue("alice", now=0)
    assert mm.cancel("alice") == entry
    assert mm.status("alice").state is MatchState.NOT_FOUND
    assert mm.statistics().cancelled == 1
    assert mm.queue == ()


def test_cancel_of_unknown_player_is_refused() -> None:
    """Cancelling a player who is not waiting raises PlayerNotQueued; nothing changes."""
    mm = Matchmaker()
    mm.enqueue("alice", now=0)
    before = _snapshot(mm)
    with pytest.raises(PlayerNotQueued, match=r"^player 'bob' is not queued$") as info:
        mm.cancel("bob")
    assert info.value.player_id == "bob"
    assert _snapshot(mm) == before


def test_cancel_of_matched_player_is_refused() -> None:
    """Once matched, a player cannot cancel; their assignment stays."""
    mm = Matchmaker()
    _fill(mm, "a", "b")
    mm.poll(0)
    with pytest.raises(PlayerNotQueued, match=r"^player 'a' is not queued$"):
        mm.cancel("a")
    assert mm.status("a").state is MatchState.MATCHED


def test_status_of_unknown_player_is_not_found() -> None:
    """A player never seen is NOT_FOUND, with no entry or assignment."""
    status = Matchmaker().status("ghost")
    assert status.state is MatchState.NOT_FOUND
    assert status.entry is None
    assert status.assignment is None


# -- poll with the default match function ----------------------------------------


def test_default_matches_pairs_in_fifo_order() -> None:
    """The default makes groups of 2 in arrival order; the odd one out waits."""
    mm = Matchmaker()
    _fill(mm, "a", "b", "c", "d", "e")
    result = mm.poll(1.0)
    assert [a.player_ids for a in result.assignments] == [("a", "b"), ("c", "d")]
    assert [e.player_id for e in mm.queue] == ["e"]


def test_assignment_carries_ids_players_and_time() -> None:
    """Match ids count from 1, the shard id defaults to the match id, and matched_at is the poll time."""
    mm = Matchmaker()
    _fill(mm, "a", "b")
    (assignment,) = mm.poll(2.0).assignments
    assert assignment.match_id == "match-1"
    assert assignment.shard_id == "match-1"
    assert assignment.matched_at == 2.0
    assert assignment.players == (mm.status("a").entry, mm.status("b").entry)


def test_matched_status_holds_the_assignment() -> None:
    """Each matched player's status points at the same assignment."""
    mm = Matchmaker()
    _fill(mm, "a", "b")
    (assignment,) = mm.poll(0).assignments
    assert mm.status("a").state is MatchState.MATCHED
    assert mm.status("a").assignment is assignment
    assert mm.status("b").assignment is assignment


def test_match_ids_keep_counting_across_polls() -> None:
    """The counter runs over the matchmaker's life."""
    mm = Matchmaker()
    _fill(mm, "a", "b")
    mm.poll(0)
    _fill(mm, "c", "d", now=1)
    assert [a.match_id for a in mm.poll(1).assignments] == ["match-2"]


def test_seeded_match_ids_are_deterministic_and_seed_dependent() -> None:
    """The same seed gives the same ids; another seed gives others."""

    def ids(seed: int) -> list[str]:
        mm = Matchmaker(seed=seed, id_prefix="m_")
        _fill(mm, "a", "b", "c", "d")
        return [a.match_id for a in mm.poll(0).assignments]

    assert ids(7) == ids(7)
    assert ids(7) != ids(8)
    assert all(i.startswith("m_") and len(i) == 2 + 16 for i in ids(7))
    assert len(set(ids(7))) == 2


def test_shard_for_names_the_shard() -> None:
    """shard_for maps match ids to shard ids."""
    mm = Matchmaker(shard_for=lambda match_id: f"arena/{match_id}")
    _fill(mm, "a", "b")
    assert mm.poll(0).assignments[0].shard_id == "arena/match-1"


def test_shard_for_returning_a_non_string_is_refused() -> None:
    """A bad shard id raises and nothing is matched."""
    mm = Matchmaker(shard_for=lambda match_id: "")
    _fill(mm, "a", "b")
    before = _snapshot(mm)
    with pytest.raises(
        MatchmakingError, match=r"^shard_for must return a non-empty str, got '' for 'match-1'$"
    ):
        mm.poll(0)
    assert _snapshot(mm) == before


def test_poll_with_nothing_to_do_returns_an_empty_result() -> None:
    """An empty queue polls to an empty result."""
    assert Matchmaker().poll(0) == MatchPollResult()


def test_a_matched_player_can_enqueue_again() -> None:
    """Re-enqueueing clears the old outcome."""
    mm = Matchmaker()
    _fill(mm, "a", "b")
    mm.poll(0)
    mm.enqueue("a", now=1)
    assert mm.status("a").state is MatchState.QUEUED


def test_forget_drops_an_outcome() -> None:
    """After forget, a matched player is not found; waiting players are untouched."""
    mm = Matchmaker()
    _fill(mm, "a", "b")
    mm.poll(0)
    mm.enqueue("c", now=0)
    mm.forget("a")
    mm.forget("c")
    mm.forget("ghost")
    assert mm.status("a").state is MatchState.NOT_FOUND
    assert mm.status("c").state is MatchState.QUEUED


def test_max_history_forgets_the_oldest_outcome() -> None:
    """Outcomes are bounded; the oldest goes first."""
    mm = Matchmaker(max_history=2)
    _fill(mm, "a", "b", "c", "d")
    mm.poll(0)
    assert mm.status("a").state is MatchState.NOT_FOUND
    assert mm.status("b").state is MatchState.NOT_FOUND
    assert mm.status("d").state is MatchState.MATCHED


# -- fixed_size ------------------------------------------------------------------


def test_fixed_size_groups_by_size() -> None:
    """Groups of 3 in FIFO order."""
    mm = Matchmaker(match=fixed_size(3))
    _fill(mm, *"abcdefg")
    assert [a.player_ids for a in mm.poll(0).assignments] == [("a", "b", "c"), ("d", "e", "f")]


def test_fixed_size_same_mode_only_groups_equal_modes() -> None:
    """With same=('mode',), players only meet others in their mode, FIFO within it."""
    mm = Matchmaker(match=fixed_size(2, same=("mode",)))
    for pid, mode in [("a", "duel"), ("b", "ffa"), ("c", "ffa"), ("d", "duel"), ("e", "duel")]:
        mm.enqueue(pid, now=0, criteria={"mode": mode})
    assert [a.player_ids for a in mm.poll(0).assignments] == [("b", "c"), ("a", "d")]
    assert [e.player_id for e in mm.queue] == ["e"]


def test_fixed_size_missing_key_differs_from_none() -> None:
    """An entry without the key only groups with others without it, not with mode=None."""
    mm = Matchmaker(match=fixed_size(2, same=("mode",)))
    mm.enqueue("a", now=0)
    mm.enqueue("b", now=0, criteria={"mode": None})
    mm.enqueue("c", now=0)
    assert [a.player_ids for a in mm.poll(0).assignments] == [("a", "c")]


def test_fixed_size_accepts_unhashable_criteria_values() -> None:
    """Criteria values are compared with ==, so lists work."""
    mm = Matchmaker(match=fixed_size(2, same=("regions",)))
    _fill(mm, "a", "b", regions=["eu", "us"])
    assert mm.poll(0).assignments[0].player_ids == ("a", "b")


def test_fixed_size_refuses_size_zero() -> None:
    """size must be >= 1."""
    with pytest.raises(MatchmakingError, match=r"^size must be an int >= 1, got 0$"):
        fixed_size(0)


@given(
    st.lists(st.tuples(st.sampled_from(["duel", "ffa", "coop"]), st.integers(0, 3)), max_size=40),
    st.integers(1, 4),
)
def test_fixed_size_matches_are_full_homogeneous_and_fifo(players: list[tuple[str, int]], size: int) -> None:
    """Every group has size players of one mode in queue order, and no mode keeps size waiting players."""
    mm = Matchmaker(match=fixed_size(size, same=("mode",)))
    for i, (mode, _) in enumerate(players):
        mm.enqueue(f"p{i:03d}", now=0, criteria={"mode": mode})
    result = mm.poll(0)
    matched = [p for a in result.assignments for p in a.player_ids]
    assert len(matched) == len(set(matched))
    for a in result.assignments:
        assert len(a.players) == size
        assert len({e.criteria["mode"] for e in a.players}) == 1
        assert list(a.player_ids) == sorted(a.player_ids)
    for mode in ("duel", "ffa", "coop"):
        assert sum(e.criteria["mode"] == mode for e in mm.queue) < size
    assert len(matched) + len(mm.queue) == len(players)


# -- expiry ----------------------------------------------------------------------


def test_entries_older_than_max_wait_expire_at_poll() -> None:
    """An entry that waited longer than max_wait is reported expired and leaves the queue."""
    mm = Matchmaker(match=fixed_size(3), max_wait=10)
    mm.enqueue("old", now=0)
    mm.enqueue("new", now=5)
    result = mm.poll(10.5)
    assert [e.player_id for e in result.expired] == ["old"]
    assert mm.status("old").state is MatchState.EXPIRED
    assert mm.status("old").entry == result.expired[0]
    assert [e.player_id for e in mm.queue] == ["new"]
    assert mm.statistics().expired == 1


def test_waiting_exactly_max_wait_does_not_expire() -> None:
    """Expiry is strictly 'older than' max_wait."""
    mm = Matchmaker(match=fixed_size(3), max_wait=10)
    mm.enqueue("a", now=0)
    assert mm.poll(10).expired == ()


def test_expired_entries_are_not_matched() -> None:
    """Expiry happens before matching, so stale players are never matched."""
    mm = Matchmaker(max_wait=1)
    mm.enqueue("stale", now=0)
    mm.enqueue("b", now=5)
    mm.enqueue("c", now=5)
    result = mm.poll(5)
    assert [a.player_ids for a in result.assignments] == [("b", "c")]
    assert [e.player_id for e in result.expired] == ["stale"]


def test_without_max_wait_nothing_expires() -> None:
    """max_wait=None keeps entries forever."""
    mm = Matchmaker(match=fixed_size(2))
    mm.enqueue("a", now=0)
    assert mm.poll(1e9).expired == ()


def test_entry_reports_how_long_it_waited() -> None:
    """waited(now) is now - enqueued_at."""
    assert Matchmaker().enqueue("a", now=2.0).waited(5.5) == 3.5


def test_max_wait_must_be_a_number() -> None:
    """A string max_wait is refused at construction."""
    with pytest.raises(MatchmakingError, match=r"^max_wait must be a number or None, got '5'$"):
        Matchmaker(max_wait="5")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("max_queued", 0, r"^max_queued must be an int >= 1 or None, got 0$"),
        ("max_history", 0, r"^max_history must be an int >= 1, got 0$"),
        ("max_history", None, r"^max_history must be an int >= 1, got None$"),
    ],
)
def test_bounds_must_be_positive(name: str, value: Any, message: str) -> None:
    """max_queued is >= 1 or None (unbounded); max_history is always bounded."""
    kwargs: dict[str, Any] = {name: value}
    with pytest.raises(MatchmakingError, match=message):
        Matchmaker(**kwargs)


def test_max_queued_none_is_unbounded() -> None:
    """max_queued=None accepts any number of players."""
    mm = Matchmaker(max_queued=None)
    _fill(mm, *(f"p{i}" for i in range(50)))
    assert len(mm) == 50


def test_max_wait_must_be_non_negative() -> None:
    """A negative max_wait is refused at construction."""
    with pytest.raises(MatchmakingError, match=r"^max_wait must be a finite number >= 0 or None, got -1$"):
        Matchmaker(max_wait=-1)


def test_match_function_sees_now_and_the_queue_oldest_first() -> None:
    """The match function gets the non-expired entries in FIFO order and the poll time."""
    seen: list[tuple[list[str], float]] = []

    def spy(entries: Sequence[MatchEntry], now: float) -> list[list[MatchEntry]]:
        seen.append(([e.player_id for e in entries], now))
        return []

    mm = Matchmaker(match=spy)
    _fill(mm, "x", "y")
    mm.poll(3.0)
    assert seen == [(["x", "y"], 3.0)]


# -- misbehaving match functions: error, queue unchanged --------------------------


def _rigged(groups: Any) -> Matchmaker:
    mm = Matchmaker(match=lambda entries, now: groups(entries), max_wait=100)
    mm.enqueue("old", now=0)
    _fill(mm, "a", "b", now=150)
    return mm


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        (
            lambda es: [[es[0], MatchEntry(player_id="ghost", enqueued_at=0)]],
            r"^match function returned player 'ghost', who is not queued$",
        ),
        (lambda es: [[es[0]], [es[1], es[0]]], r"^match function returned player 'a' twice$"),
        (lambda es: [[es[0], es[0]]], r"^match function returned player 'a' twice$"),
        (
            lambda es: [[MatchEntry(player_id="a", enqueued_at=150, criteria={"cheat": True})]],
            r"^match function returned an altered entry for player 'a'$",
        ),
        (lambda es: [[es[0]], []], r"^match function returned an empty group \(group 1\)$"),
        (lambda es: [["a"]], r"^match function returned a str in group 0, expected a MatchEntry$"),
        (lambda es: [es[0]], r"^match function returned group 0 as a MatchEntry, not a sequence$"),
        (lambda es: None, r"^match function must return a sequence of groups, got NoneType$"),
    ],
    ids=["unknown", "twice-across-groups", "twice-in-group", "altered", "empty", "non-entry", "flat", "none"],
)
def test_bad_match_result_is_refused_and_changes_nothing(groups: Any, message: str) -> None:
    """InvalidMatch; no assignment, no expiry, counters unchanged."""
    mm = _rigged(groups)
    before = _snapshot(mm)
    with pytest.raises(InvalidMatch, match=message):
        mm.poll(150)
    assert _snapshot(mm) == before
    assert mm.status("old").state is MatchState.QUEUED


def test_matching_a_player_expired_in_the_same_poll_is_refused() -> None:
    """An entry expired by this poll is no longer queued for the match function."""
    stale: list[MatchEntry] = []
    mm = Matchmaker(match=lambda entries, now: [[*stale, *entries]], max_wait=1)
    stale.append(mm.enqueue("stale", now=0))
    mm.enqueue("b", now=5)
    with pytest.raises(
        InvalidMatch, match=r"^match function returned player 'stale', who is not queued$"
    ) as info:
        mm.poll(5)
    assert info.value.player_id == "stale"
    assert mm.status("stale").state is MatchState.QUEUED


def test_match_function_exception_propagates_and_changes_nothing() -> None:
    """The function's own error reaches the caller; nothing expires or matches."""

    def boom(entries: Sequence[MatchEntry], now: float) -> list[list[MatchEntry]]:
        raise RuntimeError("boom")

    mm = Matchmaker(match=boom, max_wait=0)
    mm.enqueue("a", now=0)
    before = _snapshot(mm)
    with pytest.raises(RuntimeError, match=r"^boom$"):
        mm.poll(1)
    assert _snapshot(mm) == before


def test_a_refused_poll_does_not_advance_time() -> None:
    """After a refused poll at t, an enqueue at an earlier time than t is still fine."""
    mm = Matchmaker(match=lambda entries, now: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(InvalidMatch):
        mm.poll(10)
    mm.enqueue("a", now=5)
    assert mm.status("a").state is MatchState.QUEUED


# -- statistics and a model check ------------------------------------------------


def test_statistics_count_queued_matched_expired_cancelled_and_matches() -> None:
    """statistics() is a frozen snapshot of the counters."""
    mm = Matchmaker(max_wait=5)
    _fill(mm, "x", now=0)
    _fill(mm, "a", "b", "c", "d", "e", now=10)
    mm.cancel("e")
    mm.poll(10)
    stats = mm.statistics()
    assert (stats.queued, stats.matched, stats.expired, stats.cancelled, stats.matches) == (0, 4, 1, 1, 2)
    with pytest.raises(AttributeError):
        stats.queued = 3  # type: ignore[misc]


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("enqueue"), st.sampled_from("abcdef"), st.floats(0, 5)),
        st.tuples(st.just("cancel"), st.sampled_from("abcdef"), st.just(0.0)),
        st.tuples(st.just("poll"), st.just(""), st.floats(0, 5)),
    ),
    max_size=50,
)


@given(_ops)
def test_every_player_is_in_exactly_one_state(ops: list[tuple[str, str, float]]) -> None:
    """Across any sequence of calls, counters add up and statuses agree with the queue and results."""
    mm = Matchmaker(match=fixed_size(2), max_wait=3)
    now = 0.0
    enqueued = 0
    assignments: dict[str, MatchAssignment] = {}
    for op, pid, dt in ops:
        now += dt
        if op == "enqueue":
            try:
                mm.enqueue(pid, now=now)
                enqueued += 1
                assignments.pop(pid, None)
            except PlayerAlreadyQueued:
                assert mm.status(pid).state is MatchState.QUEUED
        elif op == "cancel":
            try:
                mm.cancel(pid)
            except PlayerNotQueued:
                assert mm.status(pid).state is not MatchState.QUEUED
        else:
            result = mm.poll(now)
            for e in result.expired:
                assert now - e.enqueued_at > 3
            for a in result.assignments:
                for p in a.player_ids:
                    assignments[p] = a
        for e in mm.queue:
            assert now - e.enqueued_at <= 3 or op != "poll"
        for p, a in assignments.items():
            assert mm.status(p).assignment is a
    stats = mm.statistics()
    assert enqueued == stats.queued + stats.matched + stats.expired + stats.cancelled
    assert stats.matched == 2 * stats.matches
