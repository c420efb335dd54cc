"""Conflict records: listing, showing both sides, and an admin's resolution.

Conflicts are derived from the ticket's events by node.merge on every replica;
the ``conflicts`` table is only a projection for listing. Resolving appends a
signed ``conflict_resolved`` event, which replicates like any other, so every
replica that receives it shows the conflict resolved and the same state.
"""
from __future__ import annotations

import json

from node import merge
from node.complaints import masked
from node.errors import Conflict as ConflictError, Forbidden, NotFound, ValidationError
from node.lifecycle import STATUS_VALUES, UNROUTED, Status
from node.ticket import TicketState, fold
from schemas.text import has_control, not_one_line

SHOWN = ("status", "institution", "holder_node", "title", "body")


def _text(name: str, value: object, lo: int, hi: int) -> str:
    """``value`` stripped, if it is text of ``lo`` to ``hi`` characters (no control characters)."""
    if not isinstance(value, str) or not lo <= len(value.strip()) <= hi or has_control(value):
        raise ValidationError(f"{name} must be text of {lo} to {hi} characters (no control characters)")
    return value.strip()


def _routable(ticket: TicketState, merged: dict) -> None:
    """Refuse a merged state whose status and institution strand the ticket: in progress with no institution
    (no holder can act, and the hub routes only what waits), or waiting with one (the hub never routes it,
    and its holder cannot accept it). Before, ``{"status": "in_progress", "institution": null}`` was taken."""
    # Without an institution a ticket waits for routing (UNROUTED), or is archived; with one, it is its
    # holder's to work on.
    status = merged.get("status", ticket.status.value)
    unrouted = Status(status) in UNROUTED
    institution = merged["institution"] if "institution" in merged else ticket.institution
    if status == Status.ARCHIVED.value:
        return
    if institution is None and not unrouted:
        raise ValidationError(f"state: a ticket with no institution cannot be {status}: give an institution, or "
                              "one of received, verified, returned (to be routed again) or archived")
    if institution is not None and unrouted:
        raise ValidationError(f"state: a ticket held by {institution} cannot be {status}: give institution null "
                              "to route it again, or another status")


def projection_rows(state: TicketState) -> list[dict]:
    return [{"id": c["id"], "ticket_id": state.ticket_id, "kind": c["kind"],
             "sides_json": json.dumps({"sides": c["sides"], "resolution": c["resolution"]}),
             "provisional_winner": c["provisional_winner"], "status": c["status"],
             "resolution_event": (c["resolution"] or {}).get("event"), "detected_hlc": c["detected_hlc"]}
            for c in state.conflicts]


def _side_state(state: TicketState | None) -> dict:
    if state is None:
        return {}
    data = {k: getattr(state, k) for k in SHOWN}
    data["status"] = state.status.value
    data["followups"] = [f.get("text", "") for f in state.followups]
    return data


class ConflictService:
    def __init__(self, node):
        self.node = node

    def list(self, status: str | None = None) -> list[dict]:
        if status not in (None, "open", "resolved"):
            raise ValidationError("status must be 'open' or 'resolved'")
        with self.node.storage.read() as tx:
            rows = tx.get_conflicts(status=status)
            return [self._summary(tx, r) for r in rows]

    def _summary(self, tx, row: dict) -> dict:
        state = tx.get_ticket(row["ticket_id"])
        extra = json.loads(row["sides_json"])
        return {"id": row["id"], "ticket_id": row["ticket_id"], "tracking_id": state.tracking_id if state else "",
                "kind": row["kind"], "status": row["status"], "provisional_winner": row["provisional_winner"],
                "detected_hlc": row["detected_hlc"], "resolution": extra["resolution"]}

    def get(self, conflict_id: str) -> dict:
        with self.node.storage.read() as tx:
            rows = [r for r in tx.get_conflicts() if r["id"] == conflict_id]
            if not rows:
                raise NotFound(f"conflict {conflict_id} not found")
            events = tx.ticket_events(rows[0]["ticket_id"])
            summary = self._summary(tx, rows[0])
        sides_ids = json.loads(rows[0]["sides_json"])["sides"]
        by_id = {e.id: e for e in events}
        sides = []
        for label, ids, other in (("A", sides_ids[0], sides_ids[1]), ("B", sides_ids[1], sides_ids[0])):
            without_other = [e for e in events if e.id not in set(other) and e.type != "conflict_resolved"]
            sides.append({"label": label, "author": by_id[ids[0]].author if ids and ids[0] in by_id else "",
                          "events": [{"id": i, "type": by_id[i].type, "author": by_id[i].author, "hlc": by_id[i].hlc,
                                      "payload": dict(by_id[i].payload)} for i in ids if i in by_id],
                          "state": _side_state(fold(without_other))})
        differs = [k for k in sides[0]["state"] if sides[0]["state"].get(k) != sides[1]["state"].get(k)]
        return {**summary, "sides": sides, "differs": differs}

    def resolve(self, conflict_id: str, *, winner: str | None, state: dict | None, reason: str,
                actor: str = "admin") -> dict:
        reason = _text("reason", reason, 1, 2000)
        actor = _text("actor", actor, 1, 100)
        if not_one_line(actor):
            raise ValidationError("actor must be one line (an operator's name)")
        if (winner is None) == (state is None):
            raise ValidationError("give either winner ('A' or 'B') or a merged state")
        if winner is not None and winner not in ("A", "B"):
            raise ValidationError("winner must be 'A' or 'B'")
        payload = {"conflict": conflict_id, "reason": reason, "actor": actor, "winner": winner or "merged"}
        if state is not None:
            payload["state"] = self._check_state(state)
        with self.node.storage.transaction() as tx:
            rows = [r for r in tx.get_conflicts() if r["id"] == conflict_id]
            if not rows:
                raise NotFound(f"conflict {conflict_id} not found")
            if rows[0]["status"] != "open":
                raise ConflictError(f"conflict {conflict_id} is already resolved")
            ticket = tx.get_ticket(rows[0]["ticket_id"])
            # The holder as every replica's fold will judge the resolution's author (merge.authorised), not
            # as this one shows it now: before, a provisional holder's resolution was written, reported
            # done, and ignored everywhere, the conflict left open.
            holder = merge.holder_after(tx.ticket_events(ticket.ticket_id))
            if self.node.node_id not in (ticket.hub, ticket.origin, holder):
                raise Forbidden("only the hub, the origin or the holder can resolve this conflict"
                                + (f" (for this, the holder is {holder}, the newest routing's node; this node "
                                   "holds the ticket only until the conflict is settled)"
                                   if self.node.node_id == ticket.holder_node else ""))
            if state is not None:
                _routable(ticket, payload["state"])
            # (the reason and a merged title or body are written text, masked like an action's: before, they
            # went out as typed, and a merged body became the ticket's everywhere)
            payload = masked(tx, self.node.node_id, ticket, payload)
            if "state" in payload:
                payload["state"] = masked(tx, self.node.node_id, ticket, payload["state"])
            self.node.log.append(tx, ticket.ticket_id, "conflict_resolved", payload)
        return self.get(conflict_id)

    def _check_state(self, state: dict) -> dict:
        if not isinstance(state, dict):
            raise ValidationError("state must be an object")
        unknown = set(state) - set(SHOWN)
        if unknown:
            raise ValidationError(f"state has unknown field(s): {', '.join(sorted(unknown))}")
        status = state.get("status")
        if "status" in state and not (isinstance(status, str) and status in STATUS_VALUES):
            raise ValidationError(f"unknown status {status!r}")
        state = dict(state)
        for name, lo, hi in (("title", 3, 200), ("body", 10, 20000)):
            if name in state:   # (stripped, as the reason is: spaces around a title were kept before)
                state[name] = _text(name, state[name], lo, hi)
        given_holder = state.pop("holder_node", None)  # the holder follows the institution: derived, not given
        if "institution" in state:
            inst, holder = state["institution"], None
            if inst is not None:
                insts = self.node.institutions()
                if not isinstance(inst, str) or inst not in insts:
                    raise ValidationError(f"unknown institution {inst!r}")
                holder = insts[inst]["node_id"]
            state["holder_node"] = holder
        if given_holder is not None and given_holder != state.get("holder_node"):
            raise ValidationError("holder_node follows the institution: give 'institution' instead")
        return state
