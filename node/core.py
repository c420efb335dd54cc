"""``Node``: one node's parts, wired together from its Settings.

Roles differ only in policy (who receives events, what reacts to arrivals);
storage, log, keys and services are the same code on a district and the hub.
"""
from __future__ import annotations

import logging

from adapters.storage import SqlStorage
from adapters.storage import migrate
from node.clock import MAX_AHEAD_MS, HybridClock
from node.complaints import ComplaintService
from node.config import Settings
from node.conflicts import ConflictService, projection_rows
from node.fanout import district_fanout, hub_fanout
from node.keys import KeyRing
from node.lifecycle import UNROUTED
from node.log import EventLog
from node.runner import DbRunner
from node.ticket import TicketState, set_legacy_hub

log = logging.getLogger(__name__)



class Node:
    def __init__(self, settings: Settings, *, check_schema: bool = True):
        self.settings = settings
        self.node_id = settings.node_id
        self.role = settings.role
        self.hub_id = settings.node_id if settings.role == "hub" else settings.hub.node_id
        set_legacy_hub(self.hub_id)   # (tickets filed before 'created' named its hub)
        self.storage = SqlStorage(settings.db_url)
        if check_schema:
            migrate.check(self.storage)
        self.keys = KeyRing.load(settings.node_id, settings.keys_dir)
        self.clock = HybridClock(last=self._last_hlc())
        if self.clock.ahead_ms() > MAX_AHEAD_MS:
            log.warning("this node's last event is stamped %d minutes ahead of its clock (the clock ran ahead, "
                        "and was set back): until then, peers refuse what it signs as too far ahead, and a "
                        "district dead-letters it (replay it with 'simpul dead-letters replay' afterwards)",
                        self.clock.ahead_ms() // 60000)
        fanout = hub_fanout(self.node_id) if self.role == "hub" else district_fanout(self.node_id, self.hub_id)
        self.log = EventLog(self.node_id, self.keys, self.clock, fanout, self._projection)
        self.complaints = ComplaintService(self.storage, self.log, self.node_id, self.role, self.hub_id)
        self.conflicts = ConflictService(self)
        self.db = DbRunner(1 if self.storage.dialect == "sqlite" else 4)

    def _last_hlc(self) -> str | None:
        from sqlalchemy import func, select
        from adapters.storage.tables import EventRow
        with self.storage.read() as tx:
            return tx.conn.execute(select(func.max(EventRow.__table__.c.hlc))).scalar_one_or_none()

    def _projection(self, tx, before: TicketState | None, state: TicketState) -> dict:
        # Concurrency is judged on the parents a node holds, so a conflict can vanish: an archive that arrives
        # before one of its parents looks concurrent with the progress it followed, until that parent arrives.
        # The rows are rewritten whenever the ticket had conflicts or has them; the state projected before
        # tells which, so a ticket with none (nearly every one) costs no statement here.
        if state.conflicts or (before is not None and before.conflicts):
            tx.delete_conflicts(state.ticket_id)
            for row in projection_rows(state):
                tx.put_conflict(row)
        awaiting = self.role == "hub" and state.institution is None and state.status in UNROUTED
        return {"awaiting_disposition": awaiting,
                "open_conflicts": sum(1 for c in state.conflicts if c.get("status") == "open")}

    def in_read(self, fn, *args):
        """``fn(tx, *args)`` in one read transaction (run it through ``self.db``)."""
        with self.storage.read() as tx:
            return fn(tx, *args)

    def institutions(self) -> dict[str, dict]:
        with self.storage.read() as tx:
            return {i["id"]: i for i in tx.institutions()}

    def close(self) -> None:
        self.db.close()
        self.storage.dispose()
