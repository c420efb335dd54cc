"""Filing complaints and operators' actions: the node's public use cases.

Every method is synchronous and runs in one storage transaction; the HTTP
layer calls them through the DbRunner. The reporter's identity and the
unredacted text stay in ``reporter_private`` on the origin node; the
``created`` event, which is what leaves the node, carries the redacted text.
"""
from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass

from node.errors import Conflict, Forbidden, NotFound, ValidationError
from node.log import EventLog
from node.redaction import redact
from node.ticket import TicketState
from schemas.complaints import ActionIn, ComplaintIn

HOLDER_ACTIONS = {"accept", "follow_up", "status", "close", "return"}
ACTION_EVENTS = {"verify": "verified", "accept": "accepted", "follow_up": "followed_up", "status": "status_changed",
                 "close": "closed", "reopen": "reopened", "return": "returned", "reply": "reporter_replied",
                 "archive": "archived", "route": "routed", "edit": "edited"}


@dataclass(frozen=True)
class Filed:
    state: TicketState
    created: bool
    redactions: tuple[str, ...] = ()


def request_hash(complaint: ComplaintIn) -> str:
    return hashlib.sha256(json.dumps(complaint.model_dump(), sort_keys=True).encode()).hexdigest()


class ComplaintService:
    def __init__(self, storage, log: EventLog, node_id: str, role: str, hub_id: str | None = None, now=time.time):
        self.hub_id = hub_id
        self.storage = storage
        self.log = log
        self.node_id = node_id
        self.role = role
        self.now = now

    def file(self, complaint: ComplaintIn, idempotency_key: str | None = None) -> Filed:
        digest = request_hash(complaint)
        with self.storage.transaction() as tx:
            if idempotency_key:
                known = tx.idempotency_get(f"intake:{idempotency_key}")
                if known:
                    if known[0] != digest:
                        raise Conflict("Idempotency-Key was already used with a different complaint")
                    return Filed(tx.get_ticket(known[1]), created=False)
            ticket_id = uuid.uuid4().hex
            stamp = time.strftime("%y%m", time.gmtime(self.now()))
            number = tx.next_counter(f"tracking:{stamp}")
            tracking_id = f"{self.node_id.upper()}-{stamp}-{number:05d}"
            reporter = complaint.reporter.model_dump(exclude_none=True) if complaint.reporter else {}
            body = redact(complaint.body, reporter=reporter)
            title = redact(complaint.title, reporter=reporter)
            payload = {
                "tracking_id": tracking_id, "type": complaint.type, "category": complaint.category,
                "topic": complaint.topic, "region": complaint.region, "kecamatan": complaint.kecamatan,
                "title": title.text, "body": body.text, "incident_date": complaint.incident_date,
                "anonim": complaint.anonim, "rahasia": complaint.rahasia, "channel": complaint.channel,
                "chosen_institution": complaint.chosen_institution, "hub": self.hub_id,
                "filed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.now())),
            }
            appended = self.log.append(tx, ticket_id, "created", payload)
            kinds = tuple(sorted({f.kind for f in body.findings + title.findings}))
            tx.put_private(ticket_id, reporter, complaint.body, list(kinds))
            if idempotency_key:
                tx.idempotency_put(f"intake:{idempotency_key}", digest, ticket_id)
            return Filed(appended.state, created=True, redactions=kinds)

    def act(self, ticket_id: str, action: ActionIn, institutions: dict[str, dict]) -> TicketState:
        with self.storage.transaction() as tx:
            state = tx.get_ticket(ticket_id)
            if state is None:
                raise NotFound(f"ticket {ticket_id} not found")
            if action.action in HOLDER_ACTIONS and state.holder_node != self.node_id:
                holder = state.holder_node or "nobody yet (not dispositioned)"
                raise Forbidden(f"only the holder can '{action.action}' this ticket; it is held by {holder}")
            payload = self._payload(state, action, institutions)
            return self.log.append(tx, ticket_id, ACTION_EVENTS[action.action], payload).state

    def _payload(self, state: TicketState, a: ActionIn, institutions: dict[str, dict]) -> dict:
        base = {"actor": a.actor} if a.actor else {}
        if a.action == "route":
            inst = institutions.get(a.institution or "")
            if inst is None:
                raise ValidationError(f"unknown institution {a.institution!r}")
            if self.role != "hub" and inst["node_id"] != self.node_id:
                raise Forbidden("a district node can only disposition to an institution it hosts")
            return {**base, "institution": inst["id"], "node": inst["node_id"], "reason": a.reason or "manual"}
        if a.action == "return":
            return {**base, "institution": state.institution, "reason": a.reason}
        if a.action == "status":
            return {**base, "status": a.status}
        if a.action == "edit":
            return {**base, **{k: v for k, v in (("title", a.title), ("body", a.body)) if v}}
        return {**base, **({"text": a.text} if a.text else {}), **({"reason": a.reason} if a.reason else {})}

    def get(self, ticket_id: str) -> TicketState:
        with self.storage.read() as tx:
            state = tx.get_ticket(ticket_id)
        if state is None:
            raise NotFound(f"ticket {ticket_id} not found")
        return state

    def events_raw(self, ticket_id: str) -> list[str]:
        with self.storage.read() as tx:
            raws = tx.ticket_events_raw(ticket_id)
        if not raws:
            raise NotFound(f"ticket {ticket_id} not found")
        return raws

    def list(self, filters: dict, limit: int, offset: int) -> tuple[list[TicketState], int]:
        with self.storage.read() as tx:
            return tx.list_tickets(filters=filters, limit=limit, offset=offset)
