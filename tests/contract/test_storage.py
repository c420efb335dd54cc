"""The storage contract: one suite, run against every backend.

SQLite always; PostgreSQL whenever $SIMPUL_TEST_PG_URL names a server (scripts/test
starts a throwaway one, so CI always runs both). Each test gets a fresh, migrated
database.
"""
from __future__ import annotations

import gc
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlmodel import SQLModel

from adapters.storage import SqlStorage, migrate, repo_events
from adapters.storage.checkpoint import BACKSTOP_PAGES
from node.errors import ConfigError, StorageError
from node.lifecycle import Status
from node.ticket import fold
from schemas.events import make_event

KEY = Ed25519PrivateKey.generate()


def hlc(ms: int, counter: int = 0) -> str:
    return f"{ms:016d}.{counter:04d}"


def ev(ticket="t1", author="kab-paser", seq=1, prev=None, parents=(), at=1000, type="created", payload=None):
    if payload is None and type == "created":
        payload = created_payload(ticket)
    return make_event(ticket=ticket, author=author, seq=seq, prev=prev, parents=parents, hlc=hlc(at), type=type,
                      payload=payload or {}, key_id=f"{author}#sig-1", private_key=KEY)


def created_payload(ticket, **over):
    p = {"tracking_id": f"KAB-PASER-2610-{ticket}", "type": "pengaduan", "category": "pendidikan", "topic": "smp",
         "region": "6401", "kecamatan": "Tanah Grogot", "title": "Pungutan seragam", "body": "Sekolah meminta biaya.",
         "incident_date": "2026-10-06", "anonim": False, "rahasia": False, "channel": "web",
         "chosen_institution": None, "filed_at": "2026-10-07T01:02:03Z", "hub": "nasional"}
    p.update(over)
    return p


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_storage(request, tmp_path):
    """An un-migrated database on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'contract.db'}"
    else:
        url = request.getfixturevalue("pg_database")()
    storage = SqlStorage(url)
    yield storage
    storage.dispose()


@pytest.fixture
def storage(empty_storage):
    migrate.upgrade(empty_storage)
    return empty_storage


# ------------------------------------------------------------------ migrations
def test_migrations_apply_and_check_passes(empty_storage):
    with pytest.raises(ConfigError, match="database_url"):
        migrate.check(empty_storage)
    migrate.upgrade(empty_storage)
    migrate.check(empty_storage)
    assert migrate.current_revision(empty_storage) == migrate.head_revision()
    migrate.upgrade(empty_storage)  # idempotent
    migrate.check(empty_storage)
    assert empty_storage.ping()


def test_the_revisions_a_node_checks_against_are_the_scripts_chain():
    scripts = ScriptDirectory(str(migrate.SCRIPTS))
    assert migrate.REVISIONS == tuple(reversed([s.revision for s in scripts.walk_revisions()]))
    assert migrate.head_revision() == scripts.get_current_head()


def test_a_node_checks_its_schema_without_loading_alembic(tmp_path):
    url = f"sqlite:///{tmp_path / 'node.db'}"
    storage = SqlStorage(url)
    migrate.upgrade(storage)
    storage.dispose()
    code = ("import sys; import node.core, node.cli, adapters.http.app; from adapters.storage import SqlStorage, "
            "migrate; migrate.check(SqlStorage(sys.argv[1])); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'alembic', 'mako', 'pygments'}))")
    out = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _migrate_to(storage, revision, *, down=False):
    cfg = Config()
    cfg.set_main_option("script_location", str(migrate.SCRIPTS))
    with storage.engine.connect() as conn:
        conn.info["write"] = True
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)
        conn.commit()


def test_migrations_build_exactly_the_tables_the_code_declares(storage):
    with storage.engine.connect() as conn:
        conn.info["write"] = False
        assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []


def test_migration_0003_moves_the_pending_identity_array_into_rows_and_back(empty_storage):
    _migrate_to(empty_storage, "0002")
    with empty_storage.transaction() as tx:
        tx.meta_set("identity:pending", '["t2", "t1", "t2"]')
        tx.meta_set("other", "kept")
    migrate.upgrade(empty_storage)
    with empty_storage.read() as tx:
        assert tx.identity_pending() == ["t1", "t2"]
        assert tx.meta_get("identity:pending") is None and tx.meta_get("other") == "kept"
    _migrate_to(empty_storage, "0002", down=True)
    with empty_storage.read() as tx:
        assert tx.meta_get("identity:pending") == '["t1", "t2"]'


def test_migration_0005_keeps_the_inbox_rows_in_arrival_order_and_back(empty_storage):
    _migrate_to(empty_storage, "0004")
    with empty_storage.engine.connect() as conn:
        conn.info["write"] = True
        conn.execute(text("INSERT INTO inbox (origin, event_id, received_at) VALUES "
                          "('nasional', 'e2', 20.0), ('nasional', 'e1', 10.0), ('kab-ppu', 'e1', 30.0)"))
        conn.commit()
    migrate.upgrade(empty_storage)
    with empty_storage.transaction() as tx:
        assert (tx.inbox_count("nasional"), tx.inbox_count()) == (2, 3)
        tx.inbox_add("nasional", ["e3"])
        rows = tx.conn.execute(text("SELECT event_id FROM inbox ORDER BY id")).scalars().all()
    assert rows == ["e1", "e2", "e1", "e3"]   # (by arrival: the old rows by received_at, then the new one)
    with empty_storage.transaction() as tx:
        tx.inbox_add("nasional", ["e3"])   # (a row the old key would refuse: the way down keeps one)
    _migrate_to(empty_storage, "0004", down=True)
    with empty_storage.read() as tx:
        assert (tx.inbox_count("nasional"), tx.inbox_count()) == (3, 4)


def test_dialect_matches_backend(storage):
    assert storage.dialect in ("sqlite", "postgresql")


# ---------------------------------------------------------------------- events
def test_insert_events_is_idempotent(storage):
    a, b = ev(seq=1), ev(ticket="t2", seq=2, at=1001)
    with storage.transaction() as tx:
        assert [e.id for e in tx.insert_events([a, b, a])] == [a.id, b.id]
    with storage.transaction() as tx:
        assert tx.insert_events([a, b]) == []
        assert tx.insert_events([]) == []
        assert tx.count_events() == 2
    with storage.read() as tx:
        assert {e.id for e in tx.get_events([a.id, b.id, "0" * 64])} == {a.id, b.id}
        assert tx.existing_event_ids([a.id, "f" * 64]) == {a.id}
        assert tx.get_events([a.id])[0] == a


def test_an_author_seq_lookup_reads_only_its_range_on_a_table_not_yet_analyzed(pg_database):
    """A new hub's events table has no statistics yet (a drain fills it within a minute). PostgreSQL then
    used the (author, seq) index for the author alone and read all of the author's events at every lookup
    of a receive, which grew with the table. The plan must bound the seqs in the index. (A question of
    PostgreSQL's planner only: SQLite probes the index once per value of the list.)"""
    from sqlalchemy import event
    storage = SqlStorage(pg_database())
    seen = []
    listener = lambda conn, cur, statement, params, ctx, many: seen.append((statement, params))  # noqa: E731
    try:
        migrate.upgrade(storage)
        evs = [ev(ticket=f"t{i // 5}", seq=i, at=1000 + i) for i in range(1, 3001)]
        with storage.transaction() as tx:
            tx.insert_events(evs)
        event.listen(storage.engine, "before_cursor_execute", listener)
        with storage.read() as tx:
            assert tx.author_seq_ids("kab-paser", range(2000, 2100)) == {e.seq: e.id for e in evs[1999:2099]}
        event.remove(storage.engine, "before_cursor_execute", listener)
        statement, params = next((st, p) for st, p in seen if "events.seq" in st and "events.author" in st)
        with storage.engine.connect() as conn:
            plan = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, params).scalar()[0]["Plan"]
    finally:
        storage.dispose()
    nodes = [plan]
    while nodes[-1].get("Plans"):
        nodes.append(nodes[-1]["Plans"][0])
    conds = " ".join(n.get("Index Cond", "") for n in nodes)
    assert "seq >=" in conds and "seq <=" in conds, nodes


def test_lookups_by_a_list_span_several_pages(storage):
    """The IN (...) lookups page long lists (common.IN_PAGE) and, on SQLite, go to the driver
    (Tx.select_in); both must find exactly what a lookup one by one would."""
    from adapters.storage.common import IN_PAGE
    n = IN_PAGE + 37
    evs = [ev(ticket=f"t{i % 7}", seq=i, at=1000 + i) for i in range(1, n + 1)]
    with storage.transaction() as tx:
        tx.insert_events(evs)
        tx.enqueue("nasional", [e.id for e in evs[::2]])
        for i in range(0, n, 3):
            tx.idempotency_put(f"intake:k{i}", "h" * 64, f"t{i}")
    asked = [e.id for e in evs] + ["0" * 64, evs[3].id]   # one unknown, one twice
    with storage.read() as tx:
        assert tx.existing_event_ids(asked) == {e.id for e in evs}
        assert tx.stored_raw(asked) == {e.id: e.canonical_wire() for e in evs}
        assert tx.queued_for("nasional", asked) == {e.id for e in evs[::2]}
        assert tx.queued_for("nasional", asked, after=n) == set()
        assert tx.author_seq_ids("kab-paser", range(0, n + 5)) == {e.seq: e.id for e in evs}
        assert tx.author_seq_ids("nasional", range(1, 10)) == {}
        assert tx.author_seq_ids("kab-paser", [n, 5, 3, 3, n + 100, 1]) == {s: evs[s - 1].id for s in (n, 5, 3, 1)}
        assert tx.idempotency_get_many([f"intake:k{i}" for i in range(n)]) == {
            f"intake:k{i}": ("h" * 64, f"t{i}") for i in range(0, n, 3)}
        assert sorted(e.id for e in tx.get_events(asked[:-1])) == sorted(e.id for e in evs)
        by_ticket = tx.event_ids_by_ticket([f"t{i}" for i in range(8)])
        assert {t: sorted(ids) for t, ids in by_ticket.items()} == {
            f"t{i}": sorted(e.id for e in evs if e.ticket == f"t{i}") for i in range(8)}
        tx.prefetch_ticket_events([f"t{i}" for i in range(8)])
        for i in range(8):
            assert tx.ticket_events(f"t{i}") == [e for e in evs if e.ticket == f"t{i}"]


def test_unique_author_seq(storage):
    with storage.transaction() as tx:
        tx.insert_events([ev(seq=1)])
    other = ev(ticket="t9", seq=1, at=5000)  # a different event claiming the same (author, seq)
    with pytest.raises(StorageError):
        with storage.transaction() as tx:
            tx.insert_events([other])
    with storage.read() as tx:
        assert tx.count_events() == 1
    with storage.transaction() as tx:  # another author may use the same seq
        assert len(tx.insert_events([ev(ticket="t9", author="nasional", seq=1, at=5000)])) == 1


def test_ticket_events_in_clock_author_id_order(storage):
    c = ev(seq=1, at=1000)
    x = ev(type="verified", author="nasional", seq=1, parents=[c.id], at=2000, payload={})
    y = ev(type="verified", author="kab-paser", seq=2, prev=c.id, parents=[c.id], at=2000, payload={})
    z = ev(type="followed_up", author="kab-paser", seq=3, prev=y.id, parents=[x.id, y.id], at=3000,
           payload={"text": "ok"})
    with storage.transaction() as tx:
        tx.insert_events([z, x, c, y])
    with storage.read() as tx:
        got = tx.ticket_events("t1")
        raws = tx.ticket_events_raw("t1")
        assert tx.ticket_events("nope") == []
    assert [e.id for e in got] == [c.id, y.id, x.id, z.id]  # same hlc: "kab-paser" < "nasional"
    assert raws == [e.canonical_wire() for e in got]
    assert got == [c, y, x, z]


def test_events_by_author_and_page(storage):
    evs = [ev(ticket=f"t{i}", seq=i, at=1000 + i) for i in range(1, 6)]
    with storage.transaction() as tx:
        tx.insert_events(evs)
    with storage.read() as tx:
        assert [(s, i) for s, i, _ in tx.events_by_author("kab-paser", after_seq=2, limit=2)] == [
            (3, evs[2].id), (4, evs[3].id)]
        page = tx.events_page(0, 3)
        assert len(page) == 3 and page[0][0] < page[1][0] < page[2][0]
        assert len(tx.events_page(page[-1][0], 10)) == 2
        assert tx.event_authors() == ["kab-paser"]


def test_chain_head(storage):
    with storage.transaction() as tx:
        assert tx.chain_head("kab-paser") == (0, None)
        assert tx.chain_head("kab-paser", lock=True) == (0, None)
        tx.set_chain_head("kab-paser", 1, "a" * 64)
    with storage.transaction() as tx:
        assert tx.chain_head("kab-paser", lock=True) == (1, "a" * 64)
        tx.set_chain_head("kab-paser", 2, "b" * 64)
    with storage.read() as tx:
        assert tx.chain_head("kab-paser") == (2, "b" * 64)
        assert tx.chain_head("nasional") == (0, None)


# --------------------------------------------------------------------- tickets
def _state(ticket, at, **payload):
    return fold([make_event(ticket=ticket, author="kab-paser", seq=1, prev=None, parents=(), hlc=hlc(at),
                            type="created", payload=created_payload(ticket, **payload),
                            key_id="kab-paser#sig-1", private_key=KEY)])


def test_put_get_ticket_round_trip(storage):
    state = _state("t1", 1000, anonim=True)
    with storage.transaction() as tx:
        tx.put_ticket(state)
    with storage.read() as tx:
        assert tx.get_ticket("t1") == state
        assert tx.get_ticket("missing") is None
    moved = fold([ev(seq=1), ev(type="routed", author="nasional", seq=1, at=2000,
                                payload={"institution": "paser-disdikbud", "node": "kab-paser"})])
    with storage.transaction() as tx:  # put again: an upsert
        tx.put_ticket(moved, awaiting_disposition=False, open_conflicts=0)
    with storage.read() as tx:
        got = tx.get_ticket("t1")
        assert got.status is Status.DISPOSITIONED and got.institution == "paser-disdikbud"
        assert tx.ticket_ids() == ["t1"]


def test_tickets_moved_away_are_those_routed_to_a_node_that_no_longer_hosts_their_institution(storage):
    routed = fold([ev(seq=1), ev(type="routed", author="nasional", seq=1, at=2000,
                                 payload={"institution": "paser-disdikbud", "node": "kab-paser"})])
    with storage.transaction() as tx:
        tx.put_ticket(routed)
        tx.put_ticket(_state("t2", 1000))                      # not routed: never "moved away"
        tx.put_institution({"id": "paser-disdikbud", "name": "Disdikbud Paser", "node_id": "kab-paser",
                            "competences": ["pendidikan/smp"], "region": "6401"})
    with storage.read() as tx:
        assert tx.tickets_moved_away(10) == []
    with storage.transaction() as tx:
        tx.put_institution({"id": "paser-disdikbud", "name": "Disdikbud Paser", "node_id": "kab-ppu",
                            "competences": ["pendidikan/smp"], "region": "6401"})
    with storage.read() as tx:
        assert [s.ticket_id for s in tx.tickets_moved_away(10)] == [routed.ticket_id]


def test_list_tickets_filters_and_paging(storage):
    with storage.transaction() as tx:
        for i in range(7):
            state = _state(f"t{i}", 1000 + i, category="kesehatan" if i % 2 else "pendidikan",
                           filed_at=f"2026-10-0{i + 1}T00:00:00Z")
            tx.put_ticket(state, awaiting_disposition=(i < 3))
    with storage.read() as tx:
        items, total = tx.list_tickets(filters={}, limit=3, offset=0)
        assert total == 7 and [s.ticket_id for s in items] == ["t6", "t5", "t4"]  # newest first
        items, total = tx.list_tickets(filters={}, limit=3, offset=6)
        assert total == 7 and [s.ticket_id for s in items] == ["t0"]
        items, total = tx.list_tickets(filters={"category": "kesehatan"}, limit=10, offset=0)
        assert total == 3 and {s.ticket_id for s in items} == {"t1", "t3", "t5"}
        items, total = tx.list_tickets(filters={"awaiting_disposition": True, "category": "pendidikan"},
                                       limit=10, offset=0)
        assert total == 2 and {s.ticket_id for s in items} == {"t0", "t2"}
        items, total = tx.list_tickets(filters={"status": "closed"}, limit=10, offset=0)
        assert (items, total) == ([], 0)
        assert tx.count_tickets_by("status") == {"received": 7}


# ----------------------------------------------------------------- idempotency
def test_idempotency(storage):
    with storage.transaction() as tx:
        assert tx.idempotency_get("intake:k1") is None
        tx.idempotency_put("intake:k1", "h" * 64, "t1")
    with storage.read() as tx:
        assert tx.idempotency_get("intake:k1") == ("h" * 64, "t1")
    with pytest.raises(StorageError):
        with storage.transaction() as tx:
            tx.idempotency_put("intake:k1", "x" * 64, "t2")
    with storage.read() as tx:
        assert tx.idempotency_get("intake:k1") == ("h" * 64, "t1")


def test_private_meta_audit(storage):
    with storage.transaction() as tx:
        tx.put_private("t1", {"name": "Sri"}, "original body", ["reporter_name"])
        tx.meta_set("k", "v1")
        tx.meta_set("k", "v2")
        assert tx.next_counter("c") == 1 and tx.next_counter("c") == 2
        tx.audit("t1", "operator", "open_identity", "why")
    with storage.read() as tx:
        assert tx.get_private("t1") == {"identity": {"name": "Sri"}, "original_body": "original body",
                                        "redactions": ["reporter_name"]}
        assert tx.get_private("t2") is None
        assert tx.meta_get("k") == "v2" and tx.meta_get("none", "d") == "d"
        assert [a["action"] for a in tx.audit_log("t1")] == ["open_identity"]


def test_tickets_and_private_records_are_read_by_the_page(storage):
    from adapters.storage.common import IN_PAGE
    ids = [f"t{i:04d}" for i in range(IN_PAGE + 3)]
    with storage.transaction() as tx:
        for i, t in enumerate(ids):
            tx.put_ticket(_state(t, 1000 + i))
            if i % 2:
                tx.put_private(t, {"name": f"Pelapor {i}"}, "body", [])
    with storage.read() as tx:
        got = tx.get_tickets(ids + ["missing", ids[0]])
        assert sorted(got) == ids and got[ids[7]] == tx.get_ticket(ids[7])
        privates = tx.get_privates(ids + ["missing"])
        assert sorted(privates) == ids[1::2]
        assert privates[ids[3]] == tx.get_private(ids[3]) == {"identity": {"name": "Pelapor 3"},
                                                             "original_body": "body", "redactions": []}
        assert tx.get_tickets([]) == {} and tx.get_privates([]) == {}


def test_identity_pending_rows(storage):
    """One row per ticket; a page in id order after a given id; noting twice or clearing what is not there
    changes nothing; within a transaction the last of add and remove for a ticket wins (both are deferred)."""
    with storage.transaction() as tx:
        tx.add_identity_pending(["t3", "t1", "t2"])
        tx.add_identity_pending(["t2"])                   # noted already
        assert tx.identity_pending() == ["t1", "t2", "t3"]      # a read sees the deferred rows
        tx.remove_identity_pending(["t9"])                # not there
    with storage.transaction() as tx:
        tx.add_identity_pending(["t4"])
        tx.remove_identity_pending(["t4", "t1"])          # added, then cleared: not there
        tx.remove_identity_pending(["t5"])
        tx.add_identity_pending(["t5"])                   # cleared, then added: there
        tx.add_identity_pending(["t6"])
        tx.remove_identity_pending(["t2"])
        tx.add_identity_pending(["t2"])
    with storage.read() as tx:
        assert tx.identity_pending() == ["t2", "t3", "t5", "t6"]
        assert tx.identity_pending(after="t2", limit=2) == ["t3", "t5"]
        assert tx.identity_pending(after="t6") == []
    with pytest.raises(RuntimeError):
        with storage.transaction() as tx:
            tx.remove_identity_pending(["t2", "t3"])
            tx.add_identity_pending(["t7"])
            assert tx.identity_pending() == ["t5", "t6", "t7"]
            raise RuntimeError("the transaction fails after its writes")
    with storage.read() as tx:
        assert tx.identity_pending() == ["t2", "t3", "t5", "t6"]     # rolled back whole


# ---------------------------------------------------------------------- outbox
def test_a_queue_position_is_never_handed_out_again(storage):
    """The pruning job removed every delivered entry of a quiet district's queue; SQLite then gave the next
    event the position of one the hub had acknowledged, and it was never sent."""
    evs = [ev(ticket=f"t{i}", seq=i, at=1000 + i) for i in range(1, 4)]
    with storage.transaction() as tx:
        tx.insert_events(evs)
        tx.enqueue("nasional", [e.id for e in evs[:2]])
        tx.advance_peer("nasional", acked=tx.outbox_last_id("nasional"))
        acked = tx.peer("nasional")["acked"]
        assert tx.prune_outbox("nasional", acked, keep_after=time.time() + 1) == 2
    with storage.read() as tx:
        assert tx.outbox_sequence() == acked   # (what the chain check compares the hub's cursor with)
    with storage.transaction() as tx:
        tx.enqueue("nasional", [evs[2].id])
    with storage.read() as tx:
        assert [e.id for _, e in tx.outbox_batch("nasional", acked, 10)] == [evs[2].id]
        assert tx.outbox_sequence() == acked + 1


def test_a_queue_moves_past_a_peer_cursor_from_before_a_restore(storage):
    """A database restored from an older copy: the hub holds our positions up to 10, and we hand out 3, 4, ...
    again. ``queue_above`` moves what is not acknowledged, in its order, and every later entry past 10."""
    evs = [ev(ticket=f"t{i}", seq=i, at=1000 + i) for i in range(1, 6)]
    with storage.transaction() as tx:
        tx.insert_events(evs)
        tx.enqueue("nasional", [e.id for e in evs[:4]])
        tx.advance_peer("nasional", acked=tx.outbox_last_id("nasional") - 2)
        acked = tx.peer("nasional")["acked"]
        floor = acked + 10
        assert tx.queue_above("nasional", floor) == 2
    with storage.transaction() as tx:
        tx.enqueue("nasional", [evs[4].id])
        assert tx.queue_above("nasional", floor) == 0      # (nothing left at or under it)
    with storage.read() as tx:
        batch = tx.outbox_batch("nasional", acked, 10)
    assert [e.id for _, e in batch] == [e.id for e in evs[2:]]
    assert all(pos > floor for pos, _ in batch)


def test_outbox_and_checkpoints(storage):
    evs = [ev(ticket=f"t{i}", seq=i, at=1000 + i) for i in range(1, 6)]
    with storage.transaction() as tx:
        tx.insert_events(evs)
        tx.enqueue("nasional", [e.id for e in evs])
        tx.enqueue("kab-ppu", [evs[0].id])
        tx.enqueue("nasional", [])
    with storage.read() as tx:
        batch = tx.outbox_batch("nasional", 0, 3)
        assert [e.id for _, e in batch] == [e.id for e in evs[:3]]
        assert batch[0][1] == evs[0]
    repo_events._PARSED.clear()   # read by another process: sent on as stored, parsed only if read
    with storage.read() as tx:
        batch = tx.outbox_batch("nasional", 0, 3)
        assert [e.canonical_wire() for _, e in batch] == [e.canonical_wire() for e in evs[:3]]
        assert "payload" not in batch[1][1].__dict__   # not parsed to be sent
        assert batch[0][1] == evs[0] and batch[0][1].payload == evs[0].payload
        pos = batch[-1][0]
        assert [e.id for _, e in tx.outbox_batch("nasional", pos, 10)] == [e.id for e in evs[3:]]
        assert tx.outbox_depth("nasional", 0) == 5 and tx.outbox_depth("nasional", pos) == 2
        assert tx.outbox_depth("kab-ppu", 0) == 1
        assert sorted(tx.outbox_dests()) == ["kab-ppu", "nasional"]
        assert tx.queued_for("nasional", [evs[0].id, "x" * 64]) == {evs[0].id}
    with storage.transaction() as tx:
        tx.advance_peer("nasional", acked=pos, cursor=7)
        tx.advance_peer("nasional", acked=1, cursor=2)      # never back
        peer = tx.peer("nasional")
        assert (peer["acked"], peer["cursor"]) == (pos, 7)
        assert tx.in_flight("nasional", [e.id for e in evs]) == {e.id for e in evs[3:]}   # past the ack
        tx.advance_peer("nasional", acked=pos + 1)
        assert tx.peer("nasional")["acked"] == pos + 1
        tx.update_peer("nasional", failures=3, last_error="boom")
        assert tx.peer("nasional")["failures"] == 3
        with pytest.raises(ValueError):
            tx.update_peer("nasional", bogus=1)
    with storage.read() as tx:
        assert [p["node_id"] for p in tx.peers()] == ["nasional"]


def test_tickets_a_node_should_hold_are_those_it_filed_or_holds(storage):
    """The rule of anti-entropy, read from the projections: a page of a node's tickets (``tickets_for_node``)
    and, among given ticket ids, which of them it may be sent (``tickets_held_by``)."""
    routed = {"institution": "ppu-disdik", "node": "kab-ppu"}
    returned = {"institution": "ppu-disdik", "reason": "bukan wewenang"}
    with storage.transaction() as tx:
        tx.put_ticket(_state("filed", 1000))                                          # kab-paser's, no holder
        tx.put_ticket(fold([ev(ticket="held"), ev(ticket="held", type="routed", author="nasional", at=2000,
                                                  payload=routed)]))              # held by kab-ppu
        tx.put_ticket(fold([ev(ticket="left"), ev(ticket="left", type="routed", author="nasional", at=2000,
                                                  payload=routed),
                            ev(ticket="left", type="returned", author="kab-ppu", at=3000, payload=returned)]))
    with storage.read() as tx:
        assert tx.get_ticket("left").holder_node is None                              # kab-ppu held it once
        assert tx.tickets_for_node("kab-ppu", "", 10) == ["held"]
        assert tx.tickets_for_node("kab-paser", "", 10) == ["filed", "held", "left"]
        assert tx.tickets_for_node("kab-paser", "held", 10) == ["left"]
        assert tx.tickets_held_by("kab-ppu", ["filed", "held", "left", "unknown"]) == {"held"}
        assert tx.tickets_held_by("kab-paser", ["filed", "left", "unknown"]) == {"filed", "left"}
        assert tx.tickets_held_by("kota-balikpapan", ["filed", "held", "left"]) == set()
        assert tx.tickets_held_by("kab-ppu", []) == set()



def test_sendable_names_the_peers_with_work_past_their_checkpoint_and_no_backoff(storage):
    evs = [ev(ticket=f"t{i}", seq=i, at=1000 + i) for i in range(1, 4)]
    with storage.transaction() as tx:
        tx.insert_events(evs)
        for dest in ("nasional", "kab-ppu", "kota-balikpapan", "prov-kaltim"):
            tx.enqueue(dest, [e.id for e in evs])
        tx.advance_peer("kab-ppu", acked=tx.outbox_last_id("kab-ppu"))           # all delivered
        tx.update_peer("kota-balikpapan", next_attempt_at=500.0)                 # backing off until 500
        tx.peer("nasional")
        tx.peer("kab-paser")                                                      # nothing queued for it
    with storage.read() as tx:
        assert tx.sendable(100.0) == {"nasional"}      # (prov-kaltim has no checkpoint row yet)
        assert tx.sendable(600.0) == {"nasional", "kota-balikpapan"}
        assert tx.peer_ids() == {"nasional", "kab-ppu", "kota-balikpapan", "kab-paser"}
        assert [tx.has_queued(n) for n in ("nasional", "kab-ppu", "kota-balikpapan", "kab-paser", "prov-kaltim")] \
            == [True, False, True, False, None]      # (backoff aside; prov-kaltim: no row, and none written)
        assert "prov-kaltim" not in tx.peer_ids()

def test_lease_excludes_second_owner_until_expiry(storage):
    with storage.transaction() as tx:
        assert tx.take_lease("nasional", "proc-a", now=100.0, ttl=30.0)
    with storage.transaction() as tx:
        assert not tx.take_lease("nasional", "proc-b", now=110.0, ttl=30.0)
        assert tx.take_lease("nasional", "proc-a", now=120.0, ttl=30.0)  # renewal by the owner
    with storage.transaction() as tx:
        assert not tx.take_lease("nasional", "proc-b", now=149.0, ttl=30.0)
        assert tx.take_lease("nasional", "proc-b", now=151.0, ttl=30.0)  # expired: taken over
        assert not tx.take_lease("nasional", "proc-a", now=152.0, ttl=30.0)
        tx.release_lease("nasional", "proc-a")  # not the owner: no effect
        assert not tx.take_lease("nasional", "proc-a", now=153.0, ttl=30.0)
        tx.release_lease("nasional", "proc-b")
        assert tx.take_lease("nasional", "proc-a", now=154.0, ttl=30.0)


def test_dead_letters(storage):
    with storage.transaction() as tx:
        tx.add_dead_letters("nasional", [("e1", "rejected: bad signature"), ("e2", "422")], now=10.0)
        tx.add_dead_letters("kab-ppu", [("e3", "403")], now=11.0)
        tx.add_dead_letters("kab-ppu", [])
    with storage.transaction() as tx:
        rows = tx.dead_letters()
        assert [(r["dest"], r["event_id"], r["reason"]) for r in rows] == [
            ("nasional", "e1", "rejected: bad signature"), ("nasional", "e2", "422"), ("kab-ppu", "e3", "403")]
        assert tx.dead_letter_count("nasional") == 2
        replayed = tx.mark_replayed([rows[0]["id"], rows[2]["id"]], now=20.0)
        assert sorted(r["event_id"] for r in replayed) == ["e1", "e3"]
        assert tx.mark_replayed([rows[0]["id"]], now=21.0) == []  # already replayed
    with storage.read() as tx:
        assert [r["event_id"] for r in tx.dead_letters()] == ["e2"]
        assert len(tx.dead_letters(include_replayed=True)) == 3
        assert tx.dead_letter_count("nasional") == 1 and tx.dead_letter_count("kab-ppu") == 0
        assert tx.dead_letter_count() == 1
        assert tx.refused_ids("nasional", ["e1", "e2", "e3", "e9"]) == {"e2"}   # listed, not replayed, its dest
        assert tx.refused_ids("kab-ppu", ["e2", "e3"]) == set()


def test_replaying_more_dead_letters_than_one_statement_can_bind(storage):
    """An outage that ends in a permanent refusal can dead-letter a whole backlog; replaying it all must
    not run into the database's limit on bound parameters (PostgreSQL's protocol: 65,535)."""
    n = 70_000
    with storage.transaction() as tx:
        tx.add_dead_letters("nasional", [(f"e{i}", "403") for i in range(n)], now=10.0)
    with storage.transaction() as tx:
        ids = [r["id"] for r in tx.dead_letters()]
        replayed = tx.mark_replayed(ids + [ids[0]], now=20.0)   # one asked twice
        assert [r["event_id"] for r in replayed] == [f"e{i}" for i in range(n)]
    with storage.read() as tx:
        assert tx.dead_letters() == [] and tx.dead_letter_count() == 0
        assert len(tx.dead_letters(include_replayed=True)) == n


def test_nonce_reuse_rejected(storage):
    with storage.transaction() as tx:
        assert tx.use_nonce("kab-paser#sig-1", "n1", expires_at=200.0, now=100.0)
    with storage.transaction() as tx:
        assert not tx.use_nonce("kab-paser#sig-1", "n1", expires_at=200.0, now=150.0)
        assert tx.use_nonce("kab-ppu#sig-1", "n1", expires_at=200.0, now=150.0)  # other key
        assert tx.use_nonce("kab-paser#sig-1", "n2", expires_at=200.0, now=150.0)


def test_queued_for_counts_the_transactions_own_queue_without_writing_it_first(storage):
    """A hub asks for every ticket a receive gives a new holder: writing out the deferred rows before each
    question split a receive's statements into a round per routed ticket."""
    with storage.transaction() as tx:
        tx.enqueue("kab-ppu", ["e1"])
    with storage.transaction() as tx:
        tx.enqueue("kab-ppu", ["e2"])
        tx.enqueue("kab-paser", ["e3"])
        tx.audit("t1", "system", "noted", "a deferred write that is not the outbox's")
        assert tx.queued_for("kab-ppu", ["e1", "e2", "e3", "e4"]) == {"e1", "e2"}
        assert tx.queued_for("kab-paser", ["e1", "e3"]) == {"e3"}
        assert tx._deferred   # (nothing written for the questions)
        last = tx.outbox_last_id("kab-ppu")   # (a statement: the deferred rows are written before it)
        assert tx.queued_for("kab-ppu", ["e1", "e2"], after=last - 1) == {"e2"}
        assert tx.queued_for("kab-ppu", ["e1", "e2"], after=last) == set()
    with storage.read() as tx:
        assert tx.queued_for("kab-ppu", ["e1", "e2", "e3"]) == {"e1", "e2"}


def test_rows_sees_the_transactions_own_writes_and_binds_what_the_statement_binds_itself(storage):
    """``Tx.rows`` (on SQLite, the statement compiled once and run by the driver): the rows the transaction
    deferred are written before it runs, and a value the statement holds itself (an OFFSET) is bound."""
    from sqlalchemy import bindparam, select

    from adapters.storage.tables import EventRow
    E = EventRow.__table__
    evs = [ev(ticket=f"t{i}", seq=i, at=1000 + i) for i in range(1, 5)]
    with storage.transaction() as tx:
        tx.insert_events(evs)
        tx.enqueue("nasional", [e.id for e in evs])
        assert [(pos, e.id) for pos, e in tx.outbox_batch("nasional", 0, 2)] == [(1, evs[0].id), (2, evs[1].id)]
        by_seq = select(E.c.id, E.c.seq).order_by(E.c.seq).limit(bindparam("n")).offset(1)
        assert [tuple(r) for r in tx.rows(by_seq, n=2)] == [(evs[1].id, 2), (evs[2].id, 3)]


def test_inbox_notes_who_delivered_each_event(storage):
    """One row per delivery the caller notes (``EventLog.ingest`` notes the events stored fresh only)."""
    with storage.transaction() as tx:
        tx.inbox_add("nasional", ["e1", "e2"])
    with storage.transaction() as tx:
        tx.inbox_add("kab-ppu", ["e3"])
        tx.inbox_add("kab-ppu", [])
    with storage.read() as tx:
        assert tx.inbox_count("nasional") == 2
        assert tx.inbox_count() == 3


def test_directory(storage):
    with storage.transaction() as tx:
        tx.put_node("kab-paser", role="district", name="Kabupaten Paser", url="http://127.0.0.1:1",
                    region="6401", enrolled_at=50.0)
        tx.put_key("kab-paser#sig-1", node_id="kab-paser", kind="signing", public="A" * 43, valid_from=50.0)
        tx.put_key("kab-paser#seal-1", node_id="kab-paser", kind="sealing", public="B" * 43, valid_from=50.0)
        tx.put_institution({"id": "paser-disdikbud", "name": "Disdikbud", "node_id": "kab-paser", "region": "6401",
                            "competences": [{"category": "pendidikan"}], "ppid": False})
        tx.put_region("6401", "Kabupaten Paser", "kabupaten", "64")
    with storage.read() as tx:
        assert tx.topology_version() == 1   # one count per transaction that wrote institutions or regions
        node = tx.get_node("kab-paser")
        assert (node["role"], node["url"], node["enrolled_at"], node["revoked_at"]) == \
            ("district", "http://127.0.0.1:1", 50.0, None)
        assert tx.get_node("nobody") is None
        assert tx.get_key("kab-paser#sig-1")["public"] == "A" * 43
        assert [k["key_id"] for k in tx.node_keys("kab-paser")] == ["kab-paser#seal-1", "kab-paser#sig-1"]
        assert tx.institutions()[0]["competences"] == [{"category": "pendidikan"}]
        assert tx.regions()[0]["code"] == "6401"
    with storage.transaction() as tx:
        tx.revoke_node("kab-paser", now=99.0)
    with storage.read() as tx:
        assert tx.get_node("kab-paser")["revoked_at"] == 99.0
        assert {k["valid_until"] for k in tx.node_keys("kab-paser")} == {99.0}
        assert [n["node_id"] for n in tx.nodes()] == ["kab-paser"]
    with storage.transaction() as tx:  # re-enrolment clears the revocation
        tx.put_node("kab-paser", role="district", url="http://127.0.0.1:2", enrolled_at=200.0)
    with storage.read() as tx:
        assert tx.get_node("kab-paser")["revoked_at"] is None


def test_failed_transaction_leaves_nothing(storage):
    a = ev(seq=1)
    with pytest.raises(RuntimeError):
        with storage.transaction() as tx:
            tx.insert_events([a])
            tx.set_chain_head("kab-paser", 1, a.id)
            tx.put_ticket(fold([a]))
            tx.enqueue("nasional", [a.id])
            tx.idempotency_put("intake:k", "h" * 64, "t1")
            tx.inbox_add("nasional", [a.id])
            raise RuntimeError("the service failed half-way")
    with storage.read() as tx:
        assert tx.count_events() == 0
        assert tx.chain_head("kab-paser") == (0, None)
        assert tx.get_ticket("t1") is None
        assert tx.outbox_depth("nasional", 0) == 0
        assert tx.idempotency_get("intake:k") is None
        assert tx.inbox_count() == 0


def test_a_read_transaction_sees_one_snapshot(storage):
    """Whatever commits while a read runs, each of its statements sees the database as its first did: a
    pull's batch and the queue's last position, read one after the other, always agree. (PostgreSQL's
    default, READ COMMITTED, gives each statement a snapshot of its own; SQLite's WAL reader has one.)"""
    evs = [ev(ticket=f"t{i}", seq=i, at=1000 + i) for i in range(1, 4)]
    with storage.transaction() as tx:
        tx.insert_events(evs[:1])
        tx.enqueue("nasional", [evs[0].id])
    with storage.read() as reader:
        assert [e.id for _, e in reader.outbox_batch("nasional", 0, 10)] == [evs[0].id]
        with storage.transaction() as writer:   # commits while the read is open
            writer.insert_events(evs[1:])
            writer.enqueue("nasional", [e.id for e in evs[1:]])
        assert [e.id for _, e in reader.outbox_batch("nasional", 0, 10)] == [evs[0].id]
        assert reader.outbox_last_id("nasional") == reader.outbox_batch("nasional", 0, 10)[-1][0]
        assert reader.count_events() == 1
    with storage.read() as tx:
        assert tx.count_events() == 3 and tx.outbox_depth("nasional", 0) == 3


def test_a_read_transaction_writes_nothing(storage):
    """A peer with no checkpoint row yet reads as the row's defaults, and the read does not insert it (a
    write transaction does); on PostgreSQL the read is READ ONLY, and a write there is refused."""
    from sqlalchemy import text
    with storage.read() as tx:
        peer = tx.peer("kab-ppu")
        assert (peer["node_id"], peer["acked"], peer["cursor"], peer["failures"]) == ("kab-ppu", 0, 0, 0)
        assert tx.in_flight("kab-ppu", ["x" * 64]) == set()
        assert tx.peers() == []
    with storage.transaction() as tx:
        assert tx.peer("kab-ppu") == peer
        assert [p["node_id"] for p in tx.peers()] == ["kab-ppu"]
    if storage.dialect == "postgresql":
        with pytest.raises(StorageError, match="read-only"):
            with storage.read() as tx:
                tx.conn.execute(text("DELETE FROM peers"))
    with storage.read() as tx:
        assert [p["node_id"] for p in tx.peers()] == ["kab-ppu"]


def test_database_errors_become_storage_errors(storage):
    from sqlalchemy import text
    with pytest.raises(StorageError):
        with storage.transaction() as tx:
            tx.conn.execute(text("SELECT * FROM no_such_table"))


def test_deferred_writes_are_read_back_and_committed_in_order(storage):
    """Tx.defer holds hot-path writes until the next statement or the commit: reads in the same transaction
    see them, a deferred upsert keeps its last values, and deferred outbox rows keep their order."""
    events = [ev(ticket=f"t{i}", seq=i, at=1000 + i) for i in range(1, 6)]
    with storage.transaction() as tx:
        for e in events:
            tx.insert_events([e], signed_here=True)          # deferred: signed here
            tx.set_chain_head("kab-paser", e.seq, e.id)       # deferred upsert, same key each time
            tx.put_ticket(fold([e]))                          # deferred upsert
            tx.enqueue("nasional", [e.id])                    # deferred, ordered
        assert tx.count_events() == 5                         # a read flushes first
        assert tx.chain_head("kab-paser") == (5, events[-1].id)
        assert tx.get_ticket("t3").ticket_id == "t3"
        tx.put_ticket(fold([events[0]]), open_conflicts=2)    # deferred again after the flush
    with storage.read() as tx:
        assert [e.id for _, e in tx.outbox_batch("nasional", 0, 10)] == [e.id for e in events]
        assert tx.chain_head("kab-paser") == (5, events[-1].id)
        assert len(tx.ticket_ids()) == 5
        assert tx.count_tickets_by("open_conflicts") == {"0": 4, "2": 1}


def test_deferred_write_that_fails_at_commit_rolls_back_everything(storage):
    a = ev(seq=1)
    with storage.transaction() as tx:
        tx.insert_events([a])
    clash = ev(ticket="t2", seq=1, at=2000)                   # same (author, seq) as a
    with pytest.raises(StorageError):
        with storage.transaction() as tx:
            tx.put_ticket(fold([clash]))
            tx.insert_events([clash], signed_here=True)       # deferred: fails only when written
    with storage.read() as tx:
        assert tx.count_events() == 1 and tx.get_ticket("t2") is None


def test_idempotency_keys_are_looked_up_together(storage):
    with storage.transaction() as tx:
        tx.idempotency_put("intake:a", "h" * 64, "t1")
        tx.idempotency_put("intake:b", "g" * 64, "t2")
    with storage.read() as tx:
        assert tx.idempotency_get_many(["intake:a", "intake:b", "intake:c", "intake:a"]) == {
            "intake:a": ("h" * 64, "t1"), "intake:b": ("g" * 64, "t2")}
        assert tx.idempotency_get("intake:c") is None


def test_counter_reserves_ranges(storage):
    with storage.transaction() as tx:
        assert tx.next_counter("tracking:2611") == 1
        assert tx.next_counter("tracking:2611", 5) == 2
        assert tx.next_counter("tracking:2611") == 7


def test_sqlite_checkpoints_in_the_background_and_the_writer_only_past_a_backstop(tmp_path):
    """SQLite's writers checkpoint the WAL themselves only past BACKSTOP_PAGES; a serving node copies it
    into the database file from a thread of its own (adapters.storage.checkpoint)."""
    storage = SqlStorage(f"sqlite:///{tmp_path / 'wal.db'}")
    migrate.upgrade(storage)
    try:
        with storage.read() as tx:
            assert tx.conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == BACKSTOP_PAGES
        for i in range(1, 41):
            with storage.transaction() as tx:
                tx.insert_events([ev(ticket=f"t{i}", seq=i, at=1000 + i)])
        checkpointer = storage.checkpoint_in_background(every_s=0.02)
        try:
            deadline = time.monotonic() + 10
            while checkpointer.last is None and time.monotonic() < deadline:
                time.sleep(0.01)
            busy, pages, copied = checkpointer.last
            assert pages > 0 and copied == pages and busy == 0   # the whole log, copied
        finally:
            checkpointer.stop()
        assert not checkpointer.running
        with storage.read() as tx:
            assert tx.count_events() == 40
    finally:
        storage.dispose()


def test_postgresql_has_no_background_checkpointer(pg_database):
    storage = SqlStorage(pg_database())
    try:
        assert storage.checkpoint_in_background() is None
    finally:
        storage.dispose()


def test_a_finished_transaction_is_freed_at_once_not_by_the_garbage_collector(storage):
    """A transaction and its caches (the events of every ticket it read) go as soon as it ends: nothing in
    it is left in a reference cycle for the collector to find later."""
    gc.disable()
    try:
        with storage.transaction() as tx:
            tx.insert_events([ev()])
            assert tx.ticket_events("t1")
            ref = weakref.ref(tx)
        del tx
        assert ref() is None
    finally:
        gc.enable()
