"""Acceptance: bidirectional status under a real partition, and anti-entropy repair (issue 4).

A hub and the Penajam Paser Utara node run as separate processes. Their links
go through cuttable loopback proxies (node.netlink.TcpLink), so a partition is a
real network failure: requests time out or are refused, queues grow, backoff
starts, and healing lets both sides exchange what they did meanwhile.
"""
from __future__ import annotations

import json
import sqlite3

import pytest

from node.cluster import Cluster
from node.netlink import TcpLink

pytestmark = pytest.mark.acceptance
HUB, NODE = "nasional", "kab-ppu"


@pytest.fixture(scope="module")
def linked(sample_dir, tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("reconcile"), sample_dir / "federation.json", node_ids=[NODE],
                      env={"SIMPUL_SYNC__ANTI_ENTROPY_INTERVAL_S": "2", "SIMPUL_SYNC__REQUEST_TIMEOUT_S": "2",
                           "SIMPUL_SYNC__BACKOFF_CAP_S": "2"})
    cluster.init()
    to_hub, to_node = TcpLink(cluster.proc(HUB).port), TcpLink(cluster.proc(NODE).port)
    with cluster:
        cluster.start(HUB)
        cluster.start(NODE, env={"SIMPUL_HUB__URL": to_hub.url})
        keys = json.loads(cluster.base_dir.joinpath(f"{NODE}.keys.json").read_text())
        cluster.client(HUB).post("/api/v1/admin/nodes", {"node_id": NODE, "url": to_node.url, "role": "district",
                                                         "keys": keys["keys"]})
        yield cluster, to_hub, to_node
    to_hub.close()
    to_node.close()


def file_sample(cluster, sample_dir, ref) -> str:
    for line in (sample_dir / "complaints.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["ref"] == ref:
            body = {k: v for k, v in record.items() if k not in ("filed_at", "expected_institution", "note")}
            return cluster.client(NODE, "intake").file(body)["ticket_id"]
    raise AssertionError(ref)


def test_partition_conflict_is_seen_on_both_sides_and_resolved_everywhere(linked, sample_dir):
    cluster, to_hub, to_node = linked
    hub, node = cluster.client(HUB), cluster.client(NODE)
    ticket = file_sample(cluster, sample_dir, "S037")      # regency road in PPU -> ppu-pupr, held by kab-ppu
    cluster.wait_until(lambda: node.ticket(ticket)["holder_node"] == NODE, 30, what="routing to kab-ppu")
    node.act(ticket, "accept")
    cluster.wait_until(lambda: hub.ticket(ticket)["status"] == "in_progress", 30, what="hub sees in_progress")

    to_hub.cut()
    to_node.cut()

    def failed_to_reach(client, peer):
        return any(p["peer"] == peer and p["backoff"]["last_error"] for p in client.sync_status()["peers"])
    # Both sides have since tried to reach the other and failed: nothing sent before the cut is still
    # on its way, so what each side does next is truly concurrent.
    cluster.wait_until(lambda: failed_to_reach(hub, NODE) and failed_to_reach(node, HUB), 30,
                       what="both sides to see the partition")
    hub.act(ticket, "archive", reason="laporan ganda")                 # the hub archives...
    node.act(ticket, "follow_up", text="Perbaikan dijadwalkan minggu ini")  # ...while the holder follows up
    node.act(ticket, "close", text="Jalan sudah ditambal")                  # and closes it
    cluster.wait_until(lambda: any(p["backoff"]["failures"] > 0 for p in hub.sync_status()["peers"]), 30,
                       what="the hub backing off")
    assert hub.ticket(ticket)["status"] == "archived" and node.ticket(ticket)["status"] == "closed"

    to_hub.heal()
    to_node.heal()

    def both_see_it():  # the same conflict: a side that holds only part of the other's events sees less
        a, b = hub.get("/api/v1/conflicts?status=open")["items"], node.get("/api/v1/conflicts?status=open")["items"]
        return (a, b) if a and b and [c["id"] for c in a] == [c["id"] for c in b] else None
    on_hub, on_node = cluster.wait_until(both_see_it, 60, what="the conflict on both sides")
    assert [c["id"] for c in on_hub] == [c["id"] for c in on_node]
    conflict = hub.get(f"/api/v1/conflicts/{on_hub[0]['id']}")
    assert conflict["kind"] == "archive_vs_progress" and conflict["status"] == "open"
    assert {s["author"] for s in conflict["sides"]} == {HUB, NODE}
    assert "status" in conflict["differs"]
    assert hub.ticket(ticket)["state_hash"] == node.ticket(ticket)["state_hash"]  # same provisional state

    holder_side = next(s["label"] for s in conflict["sides"] if s["author"] == NODE)
    hub.post(f"/api/v1/conflicts/{conflict['id']}/resolve", {"winner": holder_side,
                                                             "reason": "tindak lanjut OPD sah"})
    cluster.wait_until(lambda: node.get(f"/api/v1/conflicts/{conflict['id']}")["status"] == "resolved", 30,
                       what="the resolution reaching the node")
    final_hub, final_node = hub.ticket(ticket), node.ticket(ticket)
    assert final_hub["status"] == final_node["status"] == "closed"
    assert final_hub["state_hash"] == final_node["state_hash"]
    for name in (HUB, NODE):
        code, out = cluster.verify(name)
        assert code == 0, out


def test_anti_entropy_brings_back_a_deleted_event(linked, sample_dir):
    cluster, _, _ = linked
    hub, node = cluster.client(HUB), cluster.client(NODE)
    ticket = file_sample(cluster, sample_dir, "S021")      # SD school in PPU -> ppu-disdik, held by kab-ppu
    cluster.wait_until(lambda: node.ticket(ticket)["holder_node"] == NODE, 30, what="routing to kab-ppu")
    cluster.wait_until(lambda: node.event_ids(ticket) == hub.event_ids(ticket), 30, what="both hold every event")
    routed = next(e for e in node.events(ticket) if e["type"] == "routed")

    def settled():  # nothing in flight either way: a push retried after the deletion would bring it back too,
        # and so would a pull from a cursor behind what the hub's pushes delivered (not anti-entropy's repair)
        at_hub = next(p for p in hub.sync_status()["peers"] if p["peer"] == NODE)
        at_node = next(p for p in node.sync_status()["peers"] if p["peer"] == HUB)
        return (at_hub["queue_depth"] == 0 and at_node["queue_depth"] == 0
                and at_node["checkpoint"]["cursor"] >= at_hub["checkpoint"]["acked"])
    cluster.wait_until(settled, 30, what="both queues acknowledged")
    repairs_before = next(p["repairs"] for p in node.sync_status()["peers"] if p["peer"] == HUB)

    db = sqlite3.connect(cluster.proc(NODE).data_dir / "simpul.db", timeout=30)
    with db:
        db.execute("DELETE FROM events WHERE id = ?", (routed["id"],))
    db.close()
    assert routed["id"] not in node.event_ids(ticket)

    cluster.wait_until(lambda: routed["id"] in node.event_ids(ticket), 60, what="anti-entropy repair")
    assert node.event_ids(ticket) == hub.event_ids(ticket)

    def repairs_counted():  # the pass counts its repairs when it ends, just after storing them
        return next(p["repairs"] for p in node.sync_status()["peers"] if p["peer"] == HUB) > repairs_before
    cluster.wait_until(repairs_counted, 30, what="the repair counted in sync status")
    assert node.ticket(ticket)["institution"] == "ppu-disdik"
    code, out = cluster.verify(NODE)
    assert code == 0, out


def test_a_district_restored_from_an_older_copy_takes_its_chain_back_from_the_hub(sample_dir, tmp_path):
    """Real processes: kab-paser files 3 complaints, is copied (stopped, as the README says), files 3 more,
    and loses its disk. Restored from the copy while the hub is away, it files 2 more: the seqs and
    tracking numbers it had given out already. When the hub returns, the district takes back the 3 it lost
    and signs the 2 again after them, renumbered; the hub stores all 8 and nothing is refused."""
    district = "kab-paser"
    cluster = Cluster(tmp_path, sample_dir / "federation.json", node_ids=[district],
                      env={"SIMPUL_SYNC__BACKOFF_CAP_S": "1", "SIMPUL_SYNC__REQUEST_TIMEOUT_S": "2"}).init()
    bodies = [{k: v for k, v in json.loads(line).items() if k not in ("filed_at", "expected_institution", "note")}
              for line in (sample_dir / "complaints.jsonl").read_text(encoding="utf-8").splitlines()[:8]]
    db = cluster.proc(district).data_dir / "simpul.db"
    copy = tmp_path / "copy.db"
    with cluster:
        cluster.start(HUB)
        cluster.start(district)
        hub, node = cluster.client(HUB), cluster.client(district)

        def file_and_sync(batch) -> list[dict]:
            filed = [cluster.client(district, "intake").file(b) for b in batch]
            cluster.wait_until(lambda: all(hub.find(f["ticket_id"]) for f in filed), 30, what="the hub to hold them")
            cluster.wait_until(lambda: node.sync_status()["peers"][0]["queue_depth"] == 0, 30, what="an empty queue")
            return filed
        before = file_and_sync(bodies[:3])
        cluster.stop(district)
        with sqlite3.connect(db) as src, sqlite3.connect(copy) as dst:   # the backup
            src.backup(dst)
        cluster.start(district)
        lost = file_and_sync(bodies[3:6])
        cluster.stop(district)
        cluster.stop(HUB)
        with sqlite3.connect(copy) as src, sqlite3.connect(db) as dst:   # the restore
            src.backup(dst)
        cluster.start(district)
        forked = [cluster.client(district, "intake").file(b) for b in bodies[6:8]]
        assert [f["tracking_id"] for f in forked] == [f["tracking_id"] for f in lost[:2]]   # given out twice
        assert all(node.find(f["ticket_id"]) is None for f in lost)

        cluster.start(HUB)
        every = before + lost + forked
        cluster.wait_until(lambda: all(hub.find(f["ticket_id"]) for f in every), 60, what="the hub to hold all 8")
        cluster.wait_until(lambda: all(node.find(f["ticket_id"]) for f in every), 60,
                           what="the district to hold all 8")
        numbers = {f["ticket_id"]: hub.ticket(f["ticket_id"])["tracking_id"] for f in every}
        assert len(set(numbers.values())) == 8
        assert [numbers[f["ticket_id"]][-5:] for f in forked] == ["00007", "00008"]
        assert all(node.ticket(t)["tracking_id"] == n for t, n in numbers.items())
        status = node.sync_status()
        assert status["peers"][0]["dead_letters"] == 0
        recovery = status["chain_recovery"]   # (the 3 created, and any district routing or return among them)
        assert recovery["recovered"] >= 3 and recovery["resigned"] == 2 and recovery["dropped"] == []
        assert f"took back {recovery['recovered']} event(s) from nasional, signed 2 of ours again" in \
            cluster.log_text(district)
        cluster.wait_until(lambda: node.sync_status()["peers"][0]["queue_depth"] == 0, 30, what="an empty queue")
        for name in (HUB, district):
            code, out = cluster.verify(name)
            assert code == 0, out
