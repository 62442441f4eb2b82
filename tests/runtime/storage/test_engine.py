"""The per-object SQLite engine: batches, savepoints, lazy files, the connection pool."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from runtime.storage import ConnectionPool, ObjectDatabase, default_max_open
from runtime.storage._engine import sqlite_error_text
from shards import StorageError


@pytest.fixture
def pool() -> ConnectionPool:
    return ConnectionPool(max_open=8)


@pytest.fixture
def db(tmp_path: Path, pool: ConnectionPool) -> ObjectDatabase:
    # Not exclusive, so tests can read committed data through a second connection.
    return ObjectDatabase(tmp_path / "obj.sqlite", pool, exclusive=False)


def dirty(db: ObjectDatabase) -> bool:
    """db.dirty, read through a call so mypy does not narrow it between asserts."""
    return db.dirty


def can_commit(db: ObjectDatabase) -> bool:
    """db.can_commit, read through a call so mypy does not narrow it between asserts."""
    return db.can_commit


def committed_value(path: Path, key: str) -> bytes | None:
    """Read ``key`` through a separate connection: only committed data is visible there."""
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT value FROM _cf_KV WHERE key = ?", (key,)).fetchone()
    finally:
        conn.close()
    return None if row is None else row[0]


def test_reads_of_a_never_written_object_create_no_file(db: ObjectDatabase, pool: ConnectionPool) -> None:
    """get, list, alarm and delete on an object with no file return nothing and create nothing."""
    assert db.kv_get("k") is None
    assert db.kv_get_many(["a", "b"]) == []
    assert db.kv_list(lower=None, lower_inclusive=True, upper=None, limit=None, reverse=False) == []
    assert db.get_alarm() is None
    assert db.kv_delete_many(["k"]) == 0
    db.set_alarm(None)
    assert db.delete_all(delete_alarm=True) == 0
    assert not Path(db.path).exists()
    assert not dirty(db)
    assert pool.statistics().opened_total == 0


def test_first_write_creates_a_wal_database(db: ObjectDatabase) -> None:
    """The first write creates the file in WAL mode with the internal tables."""
    db.kv_put_many([("k", b"v")])
    assert Path(db.path).exists()
    db.commit()
    conn = sqlite3.connect(db.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()
    assert {"_cf_KV", "_cf_METADATA"} <= names


def test_first_write_creates_missing_parent_directories(tmp_path: Path, pool: ConnectionPool) -> None:
    """do/<binding>/ is created with the binding's first object; reads still create nothing."""
    path = tmp_path / "do" / "COUNTER" / "abc.sqlite"
    db = ObjectDatabase(path, pool)
    assert db.kv_get("k") is None
    assert not path.parent.exists()
    db.kv_put_many([("k", b"v")])
    db.commit()
    assert path.exists()


def test_writes_form_one_batch_visible_to_reads_before_commit(db: ObjectDatabase) -> None:
    """Uncommitted writes are seen by reads on the object's connection, not by others."""
    db.kv_put_many([("a", b"1")])
    assert dirty(db)
    assert db.kv_get("a") == b"1"
    assert committed_value(Path(db.path), "a") is None
    db.commit()
    assert not dirty(db)
    assert committed_value(Path(db.path), "a") == b"1"
    assert db.statistics().commits == 1


def test_commit_when_clean_is_a_no_op(db: ObjectDatabase) -> None:
    """commit() with no open batch does nothing, not even create the file."""
    db.commit()
    assert db.statistics().commits == 0
    assert not Path(db.path).exists()


def test_rollback_discards_the_batch(db: ObjectDatabase) -> None:
    """rollback() (a power cut) loses every uncommitted write."""
    db.kv_put_many([("a", b"1")])
    db.commit()
    db.kv_put_many([("a", b"2"), ("b", b"3")])
    db.rollback()
    assert not dirty(db)
    assert db.kv_get("a") == b"1"
    assert db.kv_get("b") is None
    assert db.statistics().rollbacks == 1


def test_committed_data_survives_close_and_reopen(tmp_path: Path, pool: ConnectionPool) -> None:
    """Committed writes and the alarm are on disk: a new ObjectDatabase on the file sees them."""
    path = tmp_path / "o.sqlite"
    first = ObjectDatabase(path, pool)
    first.kv_put_many([("k", b"v")])
    first.set_alarm(1234)
    first.commit()
    first.close()
    second = ObjectDatabase(path, pool)
    assert second.kv_get("k") == b"v"
    assert second.get_alarm() == 1234


def test_close_discards_uncommitted_writes_and_stays_usable(db: ObjectDatabase) -> None:
    """close() rolls back like a crash; the next call reopens the file."""
    db.kv_put_many([("a", b"1")])
    db.commit()
    db.kv_put_many([("b", b"2")])
    db.close()
    assert not dirty(db)
    assert db.kv_get("a") == b"1"
    assert db.kv_get("b") is None


def test_injected_commit_failure_rolls_back(db: ObjectDatabase) -> None:
    """fail_next_commit: the commit raises StorageError and the batch is gone."""
    db.kv_put_many([("a", b"1")])
    db.commit()
    db.kv_put_many([("a", b"2")])
    db.fail_next_commit("disk on fire")
    with pytest.raises(StorageError, match=r"^disk on fire$"):
        db.commit()
    assert not dirty(db)
    assert db.kv_get("a") == b"1"
    assert db.statistics().failed_commits == 1
    db.kv_put_many([("a", b"3")])
    db.commit()  # the fault fires once
    assert db.kv_get("a") == b"3"


def test_injected_failure_waits_for_a_commit_with_work(db: ObjectDatabase) -> None:
    """A clean commit does not consume the injected fault."""
    db.fail_next_commit()
    db.commit()
    db.kv_put_many([("a", b"1")])
    with pytest.raises(StorageError):
        db.commit()


def test_sqlite_commit_failure_is_converted_and_rolled_back(db: ObjectDatabase) -> None:
    """A COMMIT that SQLite refuses raises StorageError from the sqlite3 error; nothing survives."""
    db.kv_put_many([("a", b"1")])
    db.commit()
    conn = db.read_connection()
    assert conn is not None
    conn.execute("PRAGMA foreign_keys = ON")
    conn = db.write_connection()
    conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    conn.execute(
        "CREATE TABLE child (id INTEGER PRIMARY KEY, "
        "p INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)"
    )
    conn.execute("INSERT INTO child (id, p) VALUES (1, 42)")
    db.kv_put_many([("a", b"2")])
    with pytest.raises(StorageError, match=r"^FOREIGN KEY constraint failed: SQLITE_CONSTRAINT$") as info:
        db.commit()
    assert isinstance(info.value.__cause__, sqlite3.IntegrityError)
    assert not dirty(db)
    assert db.kv_get("a") == b"1"
    conn = db.read_connection()
    assert conn is not None
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'child'").fetchall() == []


def test_sqlite_error_text_uses_the_primary_code_name() -> None:
    """Errors read '<message>: SQLITE_<PRIMARY>', as production prints them."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (x UNIQUE)")
    conn.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(sqlite3.IntegrityError) as info:
        conn.execute("INSERT INTO t VALUES (1)")
    assert sqlite_error_text(info.value) == "UNIQUE constraint failed: t.x: SQLITE_CONSTRAINT"


def test_sqlite_errors_in_kv_calls_become_storage_errors(db: ObjectDatabase) -> None:
    """A sqlite3 error from an engine call surfaces as StorageError chained from it."""
    db.kv_put_many([("a", b"1")])
    conn = db.write_connection()
    conn.execute("DROP TABLE _cf_KV")  # only a test can do this: user SQL may not touch _cf_ names
    with pytest.raises(StorageError, match=r"no such table: _cf_KV: SQLITE_ERROR") as info:
        db.kv_get("a")
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)


def test_savepoint_rollback_and_release(db: ObjectDatabase) -> None:
    """A savepoint inside the batch: rollback undoes only its writes, release keeps them."""
    db.kv_put_many([("before", b"1")])
    token = db.savepoint()
    assert not can_commit(db)
    db.kv_put_many([("inside", b"2")])
    db.rollback_savepoint(token)
    assert can_commit(db)
    assert db.kv_get("before") == b"1"
    assert db.kv_get("inside") is None
    token = db.savepoint()
    db.kv_put_many([("kept", b"3")])
    db.release_savepoint(token)
    db.commit()
    assert committed_value(Path(db.path), "kept") == b"3"


def test_nested_savepoints(db: ObjectDatabase) -> None:
    """An inner savepoint rolls back alone; the outer one keeps its own writes."""
    outer = db.savepoint()
    db.kv_put_many([("outer", b"1")])
    inner = db.savepoint()
    db.kv_put_many([("inner", b"2")])
    db.rollback_savepoint(inner)
    db.release_savepoint(outer)
    assert db.kv_get("outer") == b"1"
    assert db.kv_get("inner") is None


def test_commit_while_a_savepoint_is_open_is_a_bug(db: ObjectDatabase) -> None:
    """The actor must check can_commit; committing anyway is refused loudly."""
    db.savepoint()
    db.kv_put_many([("a", b"1")])
    with pytest.raises(AssertionError, match="can_commit"):
        db.commit()


def test_savepoint_token_of_a_discarded_batch_is_stale(db: ObjectDatabase) -> None:
    """After a crash (rollback) the transaction's cleanup finds nothing to do."""
    token = db.savepoint()
    db.kv_put_many([("a", b"1")])
    db.rollback()
    db.rollback_savepoint(token)  # no error, no effect
    db.release_savepoint(token)
    assert can_commit(db)
    assert db.kv_get("a") is None


def test_undo_savepoint_keeps_it_open(db: ObjectDatabase) -> None:
    """undo_savepoint (txn.rollback) discards writes so far; the savepoint still closes later."""
    token = db.savepoint()
    db.kv_put_many([("a", b"1")])
    db.undo_savepoint(token)
    assert db.kv_get("a") is None
    assert not can_commit(db)
    db.release_savepoint(token)
    assert can_commit(db)


def test_kv_list_bounds_order_and_limit(db: ObjectDatabase) -> None:
    """kv_list honours inclusive/exclusive bounds, direction and limit, in UTF-8 byte order."""
    db.kv_put_many([(k, k.encode()) for k in ["b", "a", "é", "c", "😀"]])

    def keys(**kw: object) -> list[str]:
        args: dict[str, object] = {
            "lower": None,
            "lower_inclusive": True,
            "upper": None,
            "limit": None,
            "reverse": False,
        }
        args.update(kw)
        return [k for k, _ in db.kv_list(**args)]  # type: ignore[arg-type]

    assert keys() == ["a", "b", "c", "é", "😀"]
    assert keys(reverse=True) == ["😀", "é", "c", "b", "a"]
    assert keys(lower="b") == ["b", "c", "é", "😀"]
    assert keys(lower="b", lower_inclusive=False) == ["c", "é", "😀"]
    assert keys(upper="é") == ["a", "b", "c"]
    assert keys(lower="b", upper="é", reverse=True, limit=1) == ["c"]


def test_kv_get_many_sorts_and_omits_missing(db: ObjectDatabase) -> None:
    """Batch reads return the existing keys only, in key order."""
    db.kv_put_many([("b", b"2"), ("a", b"1")])
    assert db.kv_get_many(["b", "zz", "a", "b"]) == [("a", b"1"), ("b", b"2")]


def test_delete_all_drops_user_objects_and_keeps_internal_tables(db: ObjectDatabase) -> None:
    """delete_all empties KV, drops user tables/indexes/views/triggers, keeps _cf_ tables."""
    db.kv_put_many([("a", b"1"), ("b", b"2")])
    db.set_alarm(5000)
    conn = db.write_connection()
    conn.execute('CREATE TABLE "we""ird" (x)')
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, x)")
    conn.execute("CREATE INDEX t_x ON t (x)")
    conn.execute("CREATE VIEW v AS SELECT x FROM t")
    conn.execute("CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END")
    conn.execute("INSERT INTO t (x) VALUES (1)")
    db.commit()
    assert db.delete_all(delete_alarm=False) == 2
    db.commit()
    conn = db.write_connection()
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    db.rollback()
    assert {n for n in names if not n.startswith("sqlite_")} >= {"_cf_KV", "_cf_METADATA"}
    assert not names & {'we"ird', "t", "t_x", "v", "tr"}
    assert db.kv_get("a") is None
    assert db.get_alarm() == 5000
    db.delete_all(delete_alarm=True)
    assert db.get_alarm() is None


def test_delete_all_with_foreign_keys_between_user_tables(db: ObjectDatabase) -> None:
    """With foreign keys on, tables are dropped whatever order they were created in."""
    db.kv_put_many([("a", b"1")])
    db.commit()
    conn = db.read_connection()
    assert conn is not None
    conn.execute("PRAGMA foreign_keys = ON")
    conn = db.write_connection()
    conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    conn.execute("CREATE TABLE child (id INTEGER PRIMARY KEY, p INTEGER REFERENCES parent(id))")
    conn.execute("INSERT INTO parent VALUES (1)")
    conn.execute("INSERT INTO child VALUES (1, 1)")
    db.commit()
    assert db.delete_all(delete_alarm=True) == 1
    db.commit()
    conn = db.write_connection()
    assert conn.execute("PRAGMA defer_foreign_keys").fetchone()[0] == 0  # restored
    assert (
        conn.execute("SELECT count(*) FROM sqlite_master WHERE name IN ('parent', 'child')").fetchone()[0]
        == 0
    )
    db.rollback()


def test_delete_all_is_all_or_nothing(db: ObjectDatabase) -> None:
    """If a drop fails part-way, nothing of the deleteAll happens; earlier batch writes stay."""
    db.kv_put_many([("a", b"1")])
    db.commit()
    conn = db.write_connection()
    conn.execute("CREATE TABLE t (x)")
    db.kv_put_many([("b", b"2")])

    def refuse_drops(action: int, *args: object) -> int:
        return sqlite3.SQLITE_DENY if action == sqlite3.SQLITE_DROP_TABLE else sqlite3.SQLITE_OK

    conn.set_authorizer(refuse_drops)
    try:
        with pytest.raises(StorageError, match=r"not authorized"):
            db.delete_all(delete_alarm=True)
    finally:
        conn.set_authorizer(None)
    assert dirty(db)
    assert db.kv_get_many(["a", "b"]) == [("a", b"1"), ("b", b"2")]
    db.commit()


def test_alarm_is_written_in_the_batch(db: ObjectDatabase) -> None:
    """set_alarm joins the open batch: a rollback undoes it with the other writes."""
    db.set_alarm(1000)
    db.commit()
    db.set_alarm(2000)
    assert db.get_alarm() == 2000
    db.rollback()
    assert db.get_alarm() == 1000
    db.set_alarm(None)
    assert db.get_alarm() is None


def committed_alarm(path: Path) -> int | None:
    """The alarm time as committed in the file (read through a separate connection)."""
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT value FROM _cf_METADATA WHERE name = 'alarm'").fetchone()
    finally:
        conn.close()
    return None if row is None else int(row[0])


def test_the_alarm_read_from_memory_follows_rollbacks_and_reopens(
    tmp_path: Path, pool: ConnectionPool
) -> None:
    """The in-memory copy of the alarm time never outlives what SQLite holds."""
    path = tmp_path / "o.sqlite"
    db = ObjectDatabase(path, pool, exclusive=False)
    db.set_alarm(1000)
    db.commit()
    db.savepoint()
    token = db.savepoint()
    db.set_alarm(2000)
    db.rollback_savepoint(token)
    assert db.get_alarm() == 1000
    db.set_alarm(3000)
    db.rollback()  # the outer savepoint's batch too
    assert db.get_alarm() == 1000
    db.close()
    # Written behind its back while closed (another process, a restored backup).
    conn = sqlite3.connect(path)
    conn.execute("UPDATE _cf_METADATA SET value = 4000 WHERE name = 'alarm'")
    conn.commit()
    conn.close()
    assert db.get_alarm() == 4000


def test_a_hidden_alarm_reads_as_none_and_is_deleted_only_when_the_run_ends(
    tmp_path: Path, pool: ConnectionPool
) -> None:
    """While alarm() runs the time is hidden, yet stays stored through commits made meanwhile."""
    path = tmp_path / "o.sqlite"
    db = ObjectDatabase(path, pool, exclusive=False)
    db.set_alarm(1000)
    db.commit()
    db.hide_alarm()
    assert db.get_alarm() is None
    db.kv_put("k", b"v")
    db.commit()  # a commit in the middle of the handler
    assert committed_alarm(path) == 1000  # a crash now would fire it again
    assert db.get_alarm() is None
    assert db.clear_hidden_alarm() is True
    assert committed_alarm(path) == 1000  # deleted in the open batch, not yet committed
    db.commit()
    assert committed_alarm(path) is None
    assert db.clear_hidden_alarm() is False  # nothing hidden any more: no write
    assert not dirty(db)


def test_setting_the_alarm_ends_the_hiding_and_a_failed_run_reveals_it(db: ObjectDatabase) -> None:
    db.set_alarm(1000)
    db.commit()
    db.hide_alarm()
    db.set_alarm(5000)  # the handler re-arms
    assert db.get_alarm() == 5000
    assert db.clear_hidden_alarm() is False
    db.commit()
    db.hide_alarm()
    db.reveal_alarm()  # the run failed: a retry keeps the stored time
    assert db.get_alarm() == 5000
    assert not dirty(db)


def test_a_savepoint_deletes_a_hidden_alarm_so_rolling_back_keeps_it_deleted(db: ObjectDatabase) -> None:
    """storage.transaction() inside alarm(): rolling it back gives what the handler saw, None."""
    db.set_alarm(1000)
    db.commit()
    db.hide_alarm()
    token = db.savepoint()
    db.set_alarm(2000)
    db.rollback_savepoint(token)
    assert db.get_alarm() is None
    assert db.clear_hidden_alarm() is False
    db.hide_alarm()
    assert db.delete_all(delete_alarm=False) == 0  # deleteAll also deletes a hidden alarm first
    assert db.get_alarm() is None
    db.rollback()
    assert db.get_alarm() == 1000  # a crash undoes it all: the alarm fires again


# --- the pool ---------------------------------------------------------------------------------------


def test_default_bound_follows_the_descriptor_limit() -> None:
    """The default bound leaves a reserve and counts two descriptors per (exclusive WAL) database."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    bound = default_max_open()
    assert 4 <= bound <= 10_000
    if soft != resource.RLIM_INFINITY and soft > 268:
        assert bound == min(10_000, (soft - 256) // 2)
    assert ConnectionPool().max_open == bound


def test_pool_refuses_a_zero_bound() -> None:
    """A pool must allow at least one connection."""
    with pytest.raises(ValueError, match="at least 1"):
        ConnectionPool(max_open=0)


def test_pool_closes_a_clean_connection_over_its_bound(tmp_path: Path) -> None:
    """Opening past the bound closes a clean connection; it reopens on next use."""
    pool = ConnectionPool(max_open=2)
    dbs = [ObjectDatabase(tmp_path / f"{i}.sqlite", pool) for i in range(3)]
    for i, d in enumerate(dbs):
        d.kv_put_many([("k", str(i).encode())])
        d.commit()
    stats = pool.statistics()
    assert (stats.open, stats.opened_total, stats.closed_total, stats.evicted_total) == (2, 3, 1, 1)
    closed = [d for d in dbs if d._conn is None]
    assert len(closed) == 1
    assert closed[0] is not dbs[2]  # never the one being opened
    for i, d in enumerate(dbs):
        assert d.kv_get("k") == str(i).encode()  # reopened transparently
    assert pool.statistics().over_bound == 0


def test_pool_keeps_part_of_a_cycle_open_where_lru_would_miss_every_time(tmp_path: Path) -> None:
    """Objects taking turns, more of them than the bound: most uses still find their connection."""
    pool = ConnectionPool(max_open=40)
    dbs = [ObjectDatabase(tmp_path / f"{i}.sqlite", pool) for i in range(50)]
    for d in dbs:
        d.kv_put_many([("k", b"v")])
        d.commit()
    before = pool.statistics().opened_total
    for _ in range(10):
        for d in dbs:
            assert d.kv_get("k") == b"v"
    reopened = pool.statistics().opened_total - before
    assert reopened < 0.5 * 500  # strict LRU would reopen all 500
    assert pool.statistics().open <= 40


def test_pool_never_closes_dirty_or_in_transaction_connections(tmp_path: Path) -> None:
    """With every other database dirty, the pool goes over its bound and counts it."""
    pool = ConnectionPool(max_open=2)
    a, b, c = (ObjectDatabase(tmp_path / f"{n}.sqlite", pool) for n in "abc")
    a.kv_put_many([("k", b"a")])  # dirty
    b.savepoint()  # an open transaction
    b.kv_put_many([("k", b"b")])
    c.kv_put_many([("k", b"c")])
    stats = pool.statistics()
    assert stats.open == 3
    assert stats.over_bound == 1
    assert a.kv_get("k") == b"a"
    assert b.kv_get("k") == b"b"
    a.commit()
    d = ObjectDatabase(tmp_path / "d.sqlite", pool)
    d.kv_put_many([("k", b"d")])  # now a is clean and evictable
    assert a._conn is None
    assert a.kv_get("k") == b"a"


def test_pool_close_all(tmp_path: Path) -> None:
    """close_all releases every connection, rolling back uncommitted work."""
    pool = ConnectionPool(max_open=4)
    a = ObjectDatabase(tmp_path / "a.sqlite", pool)
    a.kv_put_many([("k", b"1")])
    a.commit()
    a.kv_put_many([("k", b"2")])
    pool.close_all()
    assert pool.statistics().open == 0
    assert a.kv_get("k") == b"1"


def test_a_locked_database_fails_at_once(tmp_path: Path, pool: ConnectionPool) -> None:
    """Two non-exclusive databases on one file: the second writer fails, never blocks."""
    import time

    path = tmp_path / "o.sqlite"
    first = ObjectDatabase(path, pool, exclusive=False)
    second = ObjectDatabase(path, pool, exclusive=False)
    first.kv_put_many([("k", b"1")])
    started = time.monotonic()
    with pytest.raises(StorageError, match=r"database is locked: SQLITE_BUSY") as info:
        second.kv_put_many([("k", b"2")])
    assert time.monotonic() - started < 1
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    assert not dirty(second)
    assert second.kv_get("k") is None  # WAL: readers see the last commit, never block
    first.commit()
    assert second.kv_get("k") == b"1"


def test_an_exclusive_database_keeps_a_second_activation_out(tmp_path: Path, pool: ConnectionPool) -> None:
    """The runtime's default: while one connection is open, nobody else reads or writes the file."""
    path = tmp_path / "o.sqlite"
    first, second = ObjectDatabase(path, pool), ObjectDatabase(path, pool)
    first.kv_put_many([("k", b"1")])
    first.commit()
    with pytest.raises(StorageError, match=r"database is locked: SQLITE_BUSY"):
        second.kv_get("k")
    with pytest.raises(StorageError, match=r"database is locked: SQLITE_BUSY"):
        second.kv_put_many([("k", b"2")])
    first.close()
    assert second.kv_get("k") == b"1"


def test_unusable_path_is_a_storage_error(tmp_path: Path, pool: ConnectionPool) -> None:
    """A path whose parent is a file cannot be created: StorageError, and reads still return nothing."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    db = ObjectDatabase(blocker / "o.sqlite", pool)
    assert db.kv_get("k") is None
    with pytest.raises(StorageError, match=r"^cannot create the directory of "):
        db.kv_put_many([("k", b"v")])


def test_package_exports() -> None:
    """runtime.storage lists its public names in __all__, and they all resolve."""
    import types

    import runtime.storage as pkg

    for name in pkg.__all__:
        assert hasattr(pkg, name), name
    public = {
        n for n, v in vars(pkg).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)
    }
    assert public - {"annotations"} <= set(pkg.__all__)
    assert len(pkg.__all__) == len(set(pkg.__all__))
