"""Per-peer sync status, for ``GET /api/v1/sync/status``, ``simpul status``,
the admin console and ``/metrics`` alike."""
from __future__ import annotations

import time

import orjson


def sync_status(tx, node_id: str, now: float | None = None) -> dict:
    now = time.time() if now is None else now
    names = {p["node_id"] for p in tx.peers()} | set(tx.outbox_dests())
    peers = []
    for name in sorted(names - {node_id}):
        p = tx.peer(name)
        peers.append({
            "peer": name,
            "last_contact": p["last_contact"],
            "checkpoint": {"acked": p["acked"], "cursor": p["cursor"]},
            "queue_depth": tx.outbox_depth(name, p["acked"]),
            "backoff": {"failures": p["failures"],
                        "retry_in_s": round(max(0.0, p["next_attempt_at"] - now), 1),
                        "last_error": p["last_error"]},
            "dead_letters": tx.dead_letter_count(name),
            "repairs": p["repairs"],
            "anti_entropy_at": p["anti_entropy_at"],
        })
    recovery = tx.meta_get("chain_recovery")
    return {"node_id": node_id, "peers": peers, "events": tx.count_events(),
            "tickets_by_status": tx.count_tickets_by("status"),
            "chain_recovery": orjson.loads(recovery) if recovery else None}
