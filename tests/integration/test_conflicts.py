"""The conflicts projection on a real node database: the same events leave the same conflict rows, whatever
the order in which they arrive.

A node judges concurrency on the parents it holds. An archive that arrives before the follow-up it was
made after looks concurrent with it (archive vs. progress) until the follow-up arrives; then the conflict
is gone, and its row must go too.
"""
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.clock import format_hlc
from node.errors import Forbidden, ValidationError
from schemas.events import make_event

KEY = Ed25519PrivateKey.generate()
HUB, ORIGIN, HOLDER = "nasional", "kab-paser", "kab-ppu"
CREATED = {"tracking_id": "KAB-PASER-2611-0001", "type": "pengaduan", "category": "infrastruktur",
           "topic": "jalan_kabupaten", "region": "6409", "title": "Jalan kabupaten rusak",
           "body": "Jalan menuju sekolah rusak berat sejak lama.", "anonim": False, "rahasia": False,
           "channel": "web", "filed_at": "2026-11-02T01:00:00Z", "hub": HUB}


def build(steps, seqs: dict) -> dict:
    """One ticket's events by name, from (name, author, type, payload, parent names, wall ms) steps; ``seqs``
    holds each author's last sequence number."""
    ticket, out = uuid.uuid4().hex, {}
    for name, author, type, payload, parents, ms in steps:
        seqs[author] = seqs.get(author, 0) + 1
        out[name] = make_event(ticket=ticket, author=author, seq=seqs[author], prev=None,
                               parents=[out[p].id for p in parents], hlc=format_hlc(ms, 0), type=type,
                               payload=payload, key_id=f"{author}#sig-1", private_key=KEY)
    return out


def history(archive_after_follow_up: bool, seqs: dict) -> dict:
    """A ticket filed at kab-paser, routed to kab-ppu, accepted and followed up there, then archived by the
    hub: after it saw the follow-up, or concurrently with it (a true conflict)."""
    return build([("created", ORIGIN, "created", CREATED, [], 1_000),
                  ("routed", HUB, "routed", {"institution": "ppu-pupr", "node": HOLDER}, ["created"], 2_000),
                  ("accepted", HOLDER, "accepted", {}, ["routed"], 3_000),
                  ("followed_up", HOLDER, "followed_up", {"text": "Perbaikan dijadwalkan"}, ["accepted"], 4_000),
                  ("archived", HUB, "archived", {"reason": "laporan ganda"},
                   ["followed_up" if archive_after_follow_up else "accepted"], 5_000)], seqs)


def ingest(node, events) -> None:
    with node.storage.transaction() as tx:
        node.log.ingest(tx, HUB, events)


def conflicts_seen(node, tickets) -> dict:
    """What a node shows of conflicts: the table's rows, the list (all and open), and each ticket's state and
    open_conflicts column."""
    with node.storage.read() as tx:
        open_column = {state.ticket_id: n for n in range(3)
                       for state in tx.list_tickets(filters={"open_conflicts": n}, limit=10, offset=0)[0]}
        return {"rows": tx.get_conflicts(), "open_conflicts": open_column,
                "states": {t: tx.get_ticket(t).state_hash() for t in tickets},
                "listed": node.conflicts.list(), "listed_open": node.conflicts.list("open")}


def test_a_conflict_seen_only_while_a_parent_was_missing_leaves_no_row(make_node, tmp_path):
    """Two nodes get the same events, one in order and one with a follow-up after the archive that names it
    as parent: both end with the same conflict rows, list, open_conflicts and state, and the false alarm
    the second one saw for a while is not left open."""
    in_order = make_node(tmp_path / "in-order", node_id=ORIGIN)
    late_parent = make_node(tmp_path / "late-parent", node_id=ORIGIN)
    seqs = {}
    false_alarm, true_conflict = history(True, seqs), history(False, seqs)
    tickets = [false_alarm["created"].ticket, true_conflict["created"].ticket]
    everything = [e for h in (false_alarm, true_conflict) for e in h.values()]

    ingest(in_order, everything)
    ingest(late_parent, [e for h in (false_alarm, true_conflict) for name, e in h.items() if name != "followed_up"])
    # Without the follow-up, the archive looks concurrent with the acceptance it followed (the true conflict
    # is not seen yet: its archive names the acceptance as parent).
    assert [c["ticket_id"] for c in late_parent.conflicts.list("open")] == [false_alarm["created"].ticket]
    ingest(late_parent, [false_alarm["followed_up"], true_conflict["followed_up"]])

    seen = conflicts_seen(late_parent, tickets)
    assert seen == conflicts_seen(in_order, tickets)
    assert [(r["ticket_id"], r["kind"], r["status"]) for r in seen["rows"]] == [
        (true_conflict["created"].ticket, "archive_vs_progress", "open")]
    assert [c["ticket_id"] for c in seen["listed_open"]] == [true_conflict["created"].ticket]
    assert seen["open_conflicts"] == {false_alarm["created"].ticket: 0, true_conflict["created"].ticket: 1}


def test_a_resolutions_written_text_is_masked_before_it_is_signed(make_node, tmp_path):
    """The reason and a merged body are written text, like an action's. Before, a hub admin's
    "dikonfirmasi via telepon 0812..." and a merged body naming the reporter's NIK went out as typed, and
    the merged body became the ticket's on every replica."""
    hub = make_node(tmp_path, role="hub", node_id=HUB)
    conflict = history(False, {HUB: 100})   # (the hub appends its own after these)
    ingest(hub, list(conflict.values()))
    [row] = hub.conflicts.list("open")
    body = "Jalan rusak berat; pelapor Pak Slamet 081299998877, NIK 6409011201010099, slamet@contoh.id."
    hub.conflicts.resolve(row["id"], winner=None, state={"body": f"  {body}\n"},
                          reason="telah dikonfirmasi via telepon 081299998877")
    with hub.storage.read() as tx:
        [event] = [e for e in tx.ticket_events(row["ticket_id"]) if e.type == "conflict_resolved"]
        ticket = tx.get_ticket(row["ticket_id"])
    assert event.payload["reason"] == "telah dikonfirmasi via telepon [nomor telepon disamarkan]"
    assert event.payload["state"]["body"] == ("Jalan rusak berat; pelapor Pak Slamet [nomor telepon disamarkan], "
                                              "NIK [NIK disamarkan], [email disamarkan].")
    assert ticket.body == event.payload["state"]["body"]


@pytest.mark.parametrize("merged", [{"status": "in_progress", "institution": None},
                                    {"status": "closed", "institution": None},
                                    {"status": "verified"},                   # (held by ppu-pupr)
                                    {"status": "returned", "institution": "ppu-pupr"}])
def test_a_merged_state_that_would_strand_the_ticket_is_refused_and_writes_nothing(make_node, tmp_path, sample_dir,
                                                                                  merged):
    """In progress with no institution, the ticket was held by nobody, out of the disposition queue, and no
    routing was allowed any more; waiting with an institution, the hub never routes it."""
    hub = make_node(tmp_path, role="hub", node_id=HUB, federation=sample_dir / "federation.json")
    ingest(hub, list(history(False, {HUB: 100}).values()))
    [row] = hub.conflicts.list("open")
    with hub.storage.read() as tx:
        before = [e.id for e in tx.ticket_events(row["ticket_id"])]
    with pytest.raises(ValidationError, match="state: a ticket"):
        hub.conflicts.resolve(row["id"], winner=None, state=merged, reason="gabungan kedua sisi")
    with hub.storage.read() as tx:
        assert [e.id for e in tx.ticket_events(row["ticket_id"])] == before
    assert hub.conflicts.resolve(row["id"], winner=None, state={"status": "archived", "institution": None},
                                 reason="laporan ganda")["status"] == "resolved"


def test_a_holder_only_until_the_conflict_is_settled_cannot_resolve_it(make_node, tmp_path, sample_dir):
    """The hub re-routes to kab-paser while kab-ppu, the holder, follows up: kab-ppu's later follow-up wins
    for now, so kab-ppu shows itself as holder; but every fold judges a resolution by the newest routing,
    kab-paser's. Before, kab-ppu's resolution was written and reported done, and ignored everywhere."""
    ppu = make_node(tmp_path, node_id=HOLDER, federation=sample_dir / "federation.json")
    ingest(ppu, list(build([
        ("created", ORIGIN, "created", CREATED, [], 1_000),
        ("routed", HUB, "routed", {"institution": "ppu-pupr", "node": HOLDER}, ["created"], 2_000),
        ("accepted", HOLDER, "accepted", {}, ["routed"], 3_000),
        ("rerouted", HUB, "routed", {"institution": "paser-pupr", "node": ORIGIN}, ["accepted"], 4_000),
        ("followed_up", HOLDER, "followed_up", {"text": "Perbaikan dijadwalkan"}, ["accepted"], 5_000)],
        {HOLDER: 100}).values()))
    [row] = ppu.conflicts.list("open")
    with ppu.storage.read() as tx:
        assert tx.get_ticket(row["ticket_id"]).holder_node == HOLDER
        before = [e.id for e in tx.ticket_events(row["ticket_id"])]
    with pytest.raises(Forbidden, match="the holder is kab-paser"):
        ppu.conflicts.resolve(row["id"], winner="B", state=None, reason="kami sudah mengerjakannya")
    with ppu.storage.read() as tx:
        assert [e.id for e in tx.ticket_events(row["ticket_id"])] == before


def test_a_superseded_resolution_says_which_one_settles_the_conflict(make_node, tmp_path):
    """Before, a resolution that a later one of the same conflict superseded was listed as "it settles no
    conflict on this ticket", as if it had named none."""
    hub = make_node(tmp_path, role="hub", node_id=HUB)
    ingest(hub, list(history(False, {HUB: 100, ORIGIN: 100}).values()))
    [row] = hub.conflicts.list("open")
    hub.conflicts.resolve(row["id"], winner="A", state=None, reason="diarsipkan")
    with hub.storage.read() as tx:
        events = tx.ticket_events(row["ticket_id"])
    [mine] = [e for e in events if e.type == "conflict_resolved"]
    later = make_event(ticket=row["ticket_id"], author=ORIGIN, seq=102, prev=None, parents=[mine.id],
                       hlc=format_hlc(int(mine.hlc.split(".")[0]) + 1000, 0), type="conflict_resolved",
                       payload={"conflict": row["id"], "winner": "B", "reason": "masih dikerjakan", "actor": "admin"},
                       key_id=f"{ORIGIN}#sig-1", private_key=KEY)
    ingest(hub, [later])
    with hub.storage.read() as tx:
        ignored = dict(tx.get_ticket(row["ticket_id"]).ignored)
    assert ignored[mine.id] == f"another resolution settles conflict {row['id']} ({ORIGIN}'s, the last of those allowed)"


def test_a_late_rival_joins_the_resolved_conflict_instead_of_undoing_the_resolution(make_node, tmp_path):
    """The hub archives while kab-ppu follows up; the hub's admin keeps the archive. Then kab-ppu's close,
    sent before it saw the archive, arrives. Before, it made another conflict: the admin's resolution
    settled nothing any more, and the ticket flipped to closed."""
    hub = make_node(tmp_path, role="hub", node_id=HUB)
    events = history(False, {HUB: 100})
    ingest(hub, list(events.values()))
    [row] = hub.conflicts.list("open")
    hub.conflicts.resolve(row["id"], winner="A", state=None, reason="laporan ganda: diarsipkan")
    late = make_event(ticket=events["created"].ticket, author=HOLDER, seq=3, prev=None,
                      parents=[events["followed_up"].id], hlc=format_hlc(6_000, 0), type="closed", payload={},
                      key_id=f"{HOLDER}#sig-1", private_key=KEY)
    ingest(hub, [late])
    [after] = hub.conflicts.list()
    assert (after["id"], after["status"]) == (row["id"], "resolved")
    with hub.storage.read() as tx:
        assert tx.get_ticket(row["ticket_id"]).status.value == "archived"
    assert late.id in [e["id"] for e in hub.conflicts.get(row["id"])["sides"][1]["events"]]


def test_a_resolution_naming_the_id_a_conflict_had_before_still_settles_it(make_node, tmp_path):
    """Conflicts of an archive or a routing were named by their rivals too, before; a resolution stored
    then names that id."""
    from node import merge
    hub = make_node(tmp_path, role="hub", node_id=HUB)
    events = history(False, {HUB: 100, ORIGIN: 100})
    ingest(hub, list(events.values()))
    [spec] = merge.find_conflicts(list(events.values()), HUB)
    assert spec.legacy_id and spec.legacy_id != spec.id
    old = make_event(ticket=events["created"].ticket, author=ORIGIN, seq=102, prev=None,
                     parents=[events["archived"].id, events["followed_up"].id], hlc=format_hlc(9_000, 0),
                     type="conflict_resolved", payload={"conflict": spec.legacy_id, "winner": "B", "reason": "lama",
                                                        "actor": "admin"}, key_id=f"{ORIGIN}#sig-1", private_key=KEY)
    ingest(hub, [old])
    [row] = hub.conflicts.list()
    assert (row["id"], row["status"]) == (spec.id, "resolved")
