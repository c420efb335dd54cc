"""Drain and catch-up: a district's backlog reaching the hub, every event verified there.

``drain``: the backlog is built offline (node.backlog) while nothing runs; then
the hub starts, then the district, and the clock runs from the district
answering its health check (its sync loop has started; the process start-up
before it, Python imports and database checks, is reported on its own) until
the hub holds the district's last event. The hub's ``Receiver`` checks
each event's id and Ed25519 signature before it stores anything, so the rate is
end to end: read from the district's outbox, sent in signed batches, verified,
stored, folded and projected at the hub.

``catch_up``: the hub is down, the district is running with a fresh backlog and
is backing off; the clock runs from the hub's (re)start until it holds the
district's last event.

Progress is read from the hub's database directly (its SQLite file read-only,
WAL; or its PostgreSQL), with an index lookup (max seq of the district's
events), so that watching costs the nodes next to nothing.
"""
from __future__ import annotations

import time

from benchlib import backlog, ceiling
from benchlib.common import PgDb, ReadOnlyDb, cpu_seconds, descendants, node_db, proc_memory, say


def _hub_db(cluster) -> ReadOnlyDb | PgDb:
    return node_db(cluster, cluster.hub_id)


def _wait_seq(cluster, db: ReadOnlyDb | PgDb, district: str, last_seq: int, timeout: float, label: str) -> float:
    """Poll until the hub holds ``district``'s event ``last_seq``; return the monotonic time it did."""
    deadline = time.monotonic() + timeout
    shown = time.monotonic()
    while True:
        seq = db.scalar("SELECT max(seq) FROM events WHERE author = ?", district) or 0
        now = time.monotonic()
        if seq >= last_seq:
            return now
        for name in (cluster.hub_id, district):
            if not cluster.proc(name).running:
                raise RuntimeError(f"{name} died during {label}:\n{cluster.log_tail(name)}")
        if now > deadline:
            raise TimeoutError(f"{label}: hub holds {seq}/{last_seq} after {timeout:.0f}s")
        if now - shown > 10:
            say(f"    {label}: hub holds {seq:,}/{last_seq:,} events")
            shown = now
        time.sleep(0.1)


def _usage(cluster, names, cpu0: dict) -> dict:
    out = {}
    for n in names:
        pid = cluster.proc(n).popen.pid
        helpers = descendants(pid)
        out[n] = {"pid": pid, **{k.lower() + "_mb": round(v, 1) for k, v in proc_memory(pid).items()},
                  "cpu_s": round(cpu_seconds(pid, helpers) - cpu0.get(n, 0.0), 2),   # (its worker processes' included)
                  "helpers": [{"pid": h, "vmhwm_mb": round(proc_memory(h).get("VmHWM", 0.0), 1)} for h in helpers]}
    return out


def build(cluster, district: str, samples, n: int, seed: int) -> dict:
    t = time.monotonic()
    last = {"t": t}

    def progress(events: int, secs: float) -> None:
        if time.monotonic() - last["t"] > 10:
            say(f"    backlog: {events:,}/{n:,} events ({events / secs:,.0f}/s)")
            last["t"] = time.monotonic()
    return backlog.build(cluster.proc(district).config, samples, n, seed=seed, progress=progress)


def drain(cluster, district: str, samples, n: int, timeout: float, seed: int = 11) -> dict:
    """Both processes stopped on entry; both running on return."""
    built = build(cluster, district, samples, n, seed)
    say(f"    backlog: {built['events']:,} events on {built['tickets']:,} tickets in {built['seconds']}s "
        f"({built['events_per_s']:,}/s, signed with {district}'s key)")
    db = _hub_db(cluster)
    try:
        before = ceiling.verify_per_s(1.0)   # nothing runs yet
        cluster.start(cluster.hub_id)
        t0 = time.monotonic()
        cluster.start(district, wait=False)
        cluster.wait_healthy(district)
        t_up = time.monotonic()
        done = _wait_seq(cluster, db, district, built["last_seq"], timeout, "drain")
        after = ceiling.around([cluster.proc(n).popen.pid for n in (cluster.hub_id, district)])
        held = db.scalar("SELECT count(*) FROM events WHERE author = ?", district)
    finally:
        db.close()
    secs = done - t_up
    return {"events": built["events"], "tickets": built["tickets"], "backlog_build_s": built["seconds"],
            "verify_ceiling": {"before": round(before, 1), "after": round(after, 1),
                               "mean": round((before + after) / 2, 1)},
            "backlog_build_per_s": built["events_per_s"], "hub_holds": held, "seconds": round(secs, 2),
            "seconds_with_startup": round(done - t0, 2), "district_startup_s": round(t_up - t0, 2),
            "per_s": round(built["events"] / secs, 1),
            "processes": _usage(cluster, [cluster.hub_id, district], {})}


def settle(cluster, district: str, timeout: float) -> float:
    """Wait until the hub and the district have nothing queued for each other; return the seconds it took."""
    t0 = time.monotonic()

    def depth(name: str, peer: str) -> int:
        status = cluster.client(name).sync_status()
        return sum(p["queue_depth"] for p in status["peers"] if p["peer"] == peer)
    cluster.wait_until(lambda: depth(district, cluster.hub_id) == 0 and depth(cluster.hub_id, district) == 0,
                       timeout=timeout, interval=0.5, what="hub and district to settle")
    return round(time.monotonic() - t0, 2)


def catch_up(cluster, district: str, samples, n: int, timeout: float, seed: int = 13) -> dict:
    """Hub and district running on entry; both running on return."""
    settled = settle(cluster, district, timeout)      # the drain's reactions (routing, sealing) first
    cluster.kill(cluster.hub_id)                     # the outage
    cluster.stop(district)
    built = build(cluster, district, samples, n, seed)
    cluster.start(district)
    client = cluster.client(district)

    def backing_off():
        peer = next((p for p in client.sync_status()["peers"] if p["peer"] == cluster.hub_id), None)
        return peer is not None and peer["backoff"]["failures"] >= 2
    cluster.wait_until(backing_off, timeout=60, what=f"{district} to back off from the missing hub")
    status = next(p for p in client.sync_status()["peers"] if p["peer"] == cluster.hub_id)
    db = _hub_db(cluster)
    cpu0 = {district: cpu_seconds(cluster.proc(district).popen.pid)}
    try:
        t0 = time.monotonic()
        cluster.start(cluster.hub_id, wait=False)
        cluster.wait_healthy(cluster.hub_id)
        t_up = time.monotonic()
        done = _wait_seq(cluster, db, district, built["last_seq"], timeout, "catch-up")
    finally:
        db.close()
    secs = done - t0   # from the hub's restart: its start-up is part of coming back
    return {"events": built["events"], "settled_before_s": settled, "queued_when_hub_returned": status["queue_depth"],
            "failures_before": status["backoff"]["failures"], "seconds": round(secs, 2),
            "hub_startup_s": round(t_up - t0, 2), "per_s": round(built["events"] / secs, 1),
            "processes": _usage(cluster, [cluster.hub_id, district], cpu0)}
