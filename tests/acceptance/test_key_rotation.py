"""Acceptance: the hub rotates its signing key and the districts carry on (node.keys endorsement).

The hub and the Paser node run as separate processes. The hub's new key is signed by the old one; the district,
which only ever trusted the old key (``simpul init --hub-keys``), must learn the new one from the hub itself the
first time the hub answers it with it, and accept the events the hub signs with it. Before, the district refused
every answer and every event of the hub from then on, until an operator carried the new key over by hand.
"""
from __future__ import annotations

import json
import sqlite3

import pytest

from node.cluster import Cluster, simpul

pytestmark = pytest.mark.acceptance
HUB, NODE = "nasional", "kab-paser"


def routed_home(sample_dir) -> dict:
    """A sample complaint filed at kab-paser that the hub routes to an institution kab-paser hosts."""
    fed = json.loads((sample_dir / "federation.json").read_text(encoding="utf-8"))
    home = {i["id"] for i in fed["institutions"] if (i.get("node") or i.get("node_id")) == NODE}
    for line in (sample_dir / "complaints.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("filed_at") == NODE and record.get("expected_institution") in home:
            return {k: v for k, v in record.items() if k not in ("filed_at", "expected_institution", "note")}
    raise AssertionError("no sample complaint of kab-paser routed home")


def hub_keys_known_at(cluster) -> list[str]:
    db = sqlite3.connect(f"file:{cluster.proc(NODE).data_dir / 'simpul.db'}?mode=ro", uri=True)
    try:
        return [r[0] for r in db.execute("SELECT key_id FROM node_keys WHERE node_id = ? ORDER BY key_id", (HUB,))]
    finally:
        db.close()


def test_a_district_learns_the_rotated_hub_key_and_accepts_what_it_signs(sample_dir, tmp_path):
    cluster = Cluster(tmp_path / "rotation", sample_dir / "federation.json", node_ids=[NODE])
    cluster.init()
    with cluster:
        code, out = simpul("keys", "rotate", "--kind", "signing", "--config", str(cluster.proc(HUB).config))
        assert code == 0 and f"{HUB}#sig-2" in out and "endorsed" in out, out
        assert hub_keys_known_at(cluster) == [f"{HUB}#seal-1", f"{HUB}#sig-1"]   # what init gave it
        cluster.start(HUB)
        cluster.start(NODE)

        ticket = cluster.client(NODE, "intake").file(routed_home(sample_dir))["ticket_id"]
        node = cluster.client(NODE)
        cluster.wait_until(lambda: node.ticket(ticket)["holder_node"] == NODE, 60,
                           what="the hub's routing, signed with its new key, to arrive at kab-paser")
        assert f"{HUB}#sig-2" in hub_keys_known_at(cluster)
        assert "endorsed by a key trusted here" in cluster.log_text(NODE)
        cluster.stop(NODE)
        code, out = cluster.verify(NODE)      # every event, the hub's new ones included, verifies there
        assert code == 0, out
