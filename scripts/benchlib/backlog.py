"""A district's backlog of signed events, built offline through the node's own code.

The node is stopped while this runs. It opens the node's database and key ring
(``node.core.Node``) and files complaints and operators' actions with the real
``ComplaintService.file`` / ``act`` and therefore the real ``EventLog.append``:
every event is hashed, signed with the node's key, chained, projected and
queued for the hub exactly as at run time. The only difference from the API
is batching: many complaints share one storage transaction (``_SharedTx``), so
100,000 events take seconds to write instead of a commit each.

The complaints are shaped like the samples filed at this node (so the share
that belongs to other institutions is the sample's: about a quarter for
kab-paser). Each ticket gets the life a district gives its own complaints: those whose
competent institution the district hosts are verified, routed to it by the
district, accepted, followed up (1-3 times) and often closed, for 2 to 8
events; the others are filed (sometimes verified) and left for the hub to
route when they arrive.
"""
from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable

from benchlib.gen import api_body, generate


class _SharedTx:
    """Stands in for SqlStorage: every ``transaction()`` is the one batch transaction."""

    def __init__(self, tx):
        self.tx = tx

    def transaction(self, write: bool = True):
        return contextlib.nullcontext(self.tx)

    def read(self):
        return contextlib.nullcontext(self.tx)


FOLLOW_UPS = ("Petugas sudah meninjau lokasi dan mencatat kerusakan; perbaikan dijadwalkan minggu depan.",
              "Laporan sudah diteruskan ke bidang teknis; tim akan menghubungi pelapor.",
              "Sudah dilakukan koordinasi dengan kecamatan dan kepala desa setempat.",
              "Pekerjaan perbaikan sedang berlangsung, diperkirakan selesai dalam 5 hari kerja.")


def _plan(rng: random.Random, local_institution: str | None) -> list[dict]:
    """The operators' actions after filing, as ActionIn bodies."""
    if local_institution is None:
        return [{"action": "verify"}] if rng.random() < 0.5 else []
    steps = [{"action": "verify"}, {"action": "route", "institution": local_institution, "reason": "manual"},
             {"action": "accept", "actor": "operator OPD"}]
    for _ in range(rng.randint(1, 3)):
        steps.append({"action": "follow_up", "text": rng.choice(FOLLOW_UPS), "actor": "operator OPD"})
    if rng.random() < 0.7:
        steps.append({"action": "close", "actor": "operator OPD"})
    return steps[:max(1, len(steps) - (rng.random() < 0.2) * rng.randint(1, 3))]


def build(config_path, samples: list[dict], n_events: int, *, seed: int = 11, batch_events: int = 2000,
          progress: Callable[[int, float], None] | None = None) -> dict:
    """Append about ``n_events`` (at least) events on the node; return counts and timing."""
    from node.complaints import ComplaintService
    from node.config import load_settings
    from node.core import Node
    from schemas.complaints import ActionIn, ComplaintIn

    node = Node(load_settings(config_path))
    try:
        institutions = node.institutions()
        local = {i for i, row in institutions.items() if row["node_id"] == node.node_id}
        rng = random.Random(seed)
        own = [s for s in samples if s.get("filed_at") == node.node_id] or samples
        complaints = generate(own, 10**9, seed=seed, filed_at=node.node_id, prefix="B")
        events = tickets = 0
        t0 = time.perf_counter()
        while events < n_events:
            in_batch = 0
            with node.storage.transaction() as tx:
                svc = ComplaintService(_SharedTx(tx), node.log, node.node_id, node.role, node.hub_id)
                while in_batch < batch_events and events + in_batch < n_events:
                    c = next(complaints)
                    filed = svc.file(ComplaintIn.model_validate(api_body(c)))
                    in_batch += 1
                    want = c.get("expected_institution")
                    for step in _plan(rng, want if want in local else None):
                        if events + in_batch >= n_events:
                            break
                        svc.act(filed.state.ticket_id, ActionIn.model_validate(step), institutions)
                        in_batch += 1
                    tickets += 1
            events += in_batch
            if progress:
                progress(events, time.perf_counter() - t0)
        elapsed = time.perf_counter() - t0
        with node.storage.read() as tx:
            depth = tx.outbox_depth(node.hub_id, tx.peer(node.hub_id)["acked"])
            seq = tx.chain_head(node.node_id)[0]
        return {"events": events, "tickets": tickets, "seconds": round(elapsed, 2),
                "events_per_s": round(events / elapsed), "queue_depth": depth, "last_seq": seq}
    finally:
        node.close()
