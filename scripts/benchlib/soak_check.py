"""The soak's end-of-run checks: every replica converged, nothing lost or doubled, every log verifies.

- Convergence: each ticket is compared where it must be whole -- the hub, its
  origin and its current holder -- by the ``state_hash`` of its state (the
  SHA-256 of the canonical state; equal states, equal hashes) and by its set of
  event ids, read from each node's database (read-only; a hub's may be PostgreSQL).
- Nothing lost: every event a district authored is at the hub, and each
  author's events at the hub number exactly its chain length (no gap, no
  duplicate: the hub's count equals the author's own count and its newest seq).
- Every ticket the soak was told about (201 on filing) is at the hub, and no two
  tickets there share a tracking number (a district restored from a copy hands
  out numbers again until it takes its chain back).
- ``simpul verify`` (hashes, chains, signatures) passes on every node.
- No event is dead-lettered and no queue is left non-empty.
- No process logged an error or a traceback: the soak's peers send nothing
  bad, so one is a fault of ours (a peer that is away is a warning).
"""
from __future__ import annotations

from collections import defaultdict

from benchlib.common import node_db


def event_sets(cluster, node_id: str) -> dict[str, set[str]]:
    db = node_db(cluster, node_id)
    try:
        out: dict[str, set[str]] = defaultdict(set)
        for ticket, event_id in db.rows("SELECT ticket, id FROM events"):
            out[ticket].add(event_id)
        return out
    finally:
        db.close()


def chains(cluster, node_id: str) -> dict[str, tuple[int, int]]:
    """author -> (count, max seq) of the events held at ``node_id``."""
    db = node_db(cluster, node_id)
    try:
        return {a: (c, m) for a, c, m in db.rows(
            "SELECT author, count(*), max(seq) FROM events GROUP BY author")}
    finally:
        db.close()


def quiet(cluster) -> tuple[bool, str]:
    """No queue non-empty anywhere (what quiescence means for the soak)."""
    busy = []
    for node_id in cluster.node_ids:
        for p in cluster.client(node_id).sync_status()["peers"]:
            if p["peer"] in cluster.node_ids and p["queue_depth"]:
                busy.append(f"{node_id}->{p['peer']}: {p['queue_depth']}")
    return not busy, ", ".join(busy)


def check(cluster, filed: dict[str, str]) -> tuple[list[str], dict]:
    """Return (problems, facts)."""
    problems: list[str] = []
    hub = cluster.hub_id
    states = {n: {t["ticket_id"]: t for t in cluster.client(n).iter_tickets()} for n in cluster.node_ids}
    events = {n: event_sets(cluster, n) for n in cluster.node_ids}
    facts = {"tickets_at_hub": len(states[hub]), "events_at_hub": sum(len(v) for v in events[hub].values()),
             "replica_comparisons": 0, "by_status": defaultdict(int), "open_conflicts": 0}

    for tid, origin in filed.items():
        if tid not in states[hub]:
            problems.append(f"ticket {tid} filed at {origin} (201) is not at the hub")
    for node_id in cluster.node_ids:
        for tid in states[node_id]:
            if tid not in states[hub]:
                problems.append(f"ticket {tid} is at {node_id} but not at the hub")
    numbers: dict[str, list[str]] = defaultdict(list)
    for tid, t in states[hub].items():
        numbers[t["tracking_id"]].append(tid)
    for number, tids in numbers.items():
        if len(tids) > 1:
            problems.append(f"tracking number {number} names {len(tids)} tickets at the hub: {', '.join(tids)}")
    for tid, t in states[hub].items():
        facts["by_status"][t["status"]] += 1
        facts["open_conflicts"] += sum(1 for c in t.get("conflicts", []) if c.get("status") == "open")
        for where in {t["origin"], t.get("holder_node")} - {None, hub}:
            if where not in states:
                problems.append(f"ticket {tid}: held by {where}, which is not part of this federation run")
                continue
            other = states[where].get(tid)
            facts["replica_comparisons"] += 1
            if other is None:
                problems.append(f"ticket {tid}: missing at {where} (origin {t['origin']}, holder "
                                f"{t.get('holder_node')})")
            elif other["state_hash"] != t["state_hash"]:
                problems.append(f"ticket {tid}: state differs between {hub} ({t['status']}, "
                                f"{t['event_count']} events) and {where} ({other['status']}, "
                                f"{other['event_count']} events)")
            if events[where].get(tid, set()) != events[hub].get(tid, set()):
                mine, theirs = events[hub].get(tid, set()), events[where].get(tid, set())
                problems.append(f"ticket {tid}: event ids differ between {hub} and {where}: "
                                f"{len(mine - theirs)} only at {hub}, {len(theirs - mine)} only at {where}")
    for node_id in cluster.node_ids:
        for tid, ids in events[node_id].items():
            lost = ids - events[hub].get(tid, set())
            if lost:
                problems.append(f"{len(lost)} event(s) of ticket {tid} held at {node_id} are not at the hub")

    at_hub = chains(cluster, hub)
    facts["chains"] = {}
    for node_id in cluster.node_ids:
        own = chains(cluster, node_id).get(node_id, (0, 0))
        seen = at_hub.get(node_id, (0, 0))
        facts["chains"][node_id] = {"own": own[0], "at_hub": seen[0]}
        if own[0] != own[1]:
            problems.append(f"{node_id}'s own chain has {own[0]} events but its newest is seq {own[1]}")
        if seen != own:
            problems.append(f"{node_id} authored {own[0]} events (newest seq {own[1]}); the hub holds {seen[0]} "
                            f"(newest {seen[1]})")
    for node_id in cluster.node_ids:
        code, out = cluster.verify(node_id)
        if code:
            problems.append(f"simpul verify failed on {node_id}: {out.strip()[-500:]}")
        dead = cluster.client(node_id).get("/api/v1/dead-letters")
        items = dead.get("items", dead) if isinstance(dead, dict) else dead
        if items:
            problems.append(f"{node_id} has {len(items)} dead letter(s), e.g. {items[0]}")
    problems += log_errors(cluster)
    facts["by_status"] = dict(facts["by_status"])
    return problems, facts


def log_errors(cluster, shown: int = 3) -> list[str]:
    """One problem per process whose log holds ERROR or CRITICAL lines or a traceback, quoting the first few."""
    problems = []
    for name, proc in cluster.procs.items():
        try:
            lines = proc.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            continue
        bad = [line for line in lines if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")]
        if bad:
            problems.append(f"{name} logged {len(bad)} error line(s), e.g. " + " | ".join(b[:200] for b in bad[:shown]))
    return problems
