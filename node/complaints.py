"""Filing complaints and operators' actions: the node's public use cases.

Every method is synchronous and runs in one storage transaction; the HTTP
layer calls them through the DbRunner. The reporter's identity and the
unredacted text stay in ``reporter_private`` on the origin node; the
``created`` event, which is what leaves the node, carries the redacted text.
The free text of every later action (a reporter's reply, a follow-up, a reason,
an edit) is masked the same way before it is signed: with the reporter's own
identity on the origin node, which holds it, and by shape (NIK, phone, e-mail)
everywhere else.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from node import ids
from node.errors import Conflict, Forbidden, NotFound, SimpulError, ValidationError
from node.log import EventLog
from node.redaction import redact
from node.ticket import TicketState, fold
from schemas.complaints import ActionIn, ComplaintIn

HOLDER_ACTIONS = {"accept", "follow_up", "status", "close", "return"}
FREE_TEXT = ("text", "reason", "title", "body")  # the fields of an action's payload that people write
ACTION_EVENTS = {"verify": "verified", "accept": "accepted", "follow_up": "followed_up", "status": "status_changed",
                 "close": "closed", "reopen": "reopened", "return": "returned", "reply": "reporter_replied",
                 "archive": "archived", "route": "routed", "edit": "edited"}


@dataclass(frozen=True)
class Filed:
    state: TicketState
    created: bool
    redactions: tuple[str, ...] = ()


def request_hash(complaint: ComplaintIn) -> str:
    """What an Idempotency-Key is bound to: SHA-256 of the complaint as compact JSON with sorted keys."""
    return hashlib.sha256(orjson.dumps(complaint.model_dump(), option=orjson.OPT_SORT_KEYS)).hexdigest()


def same_request(stored: str, digest: str, complaint: ComplaintIn) -> bool:
    """Is ``stored`` (an Idempotency-Key's digest) this complaint's? Digests stored before request_hash
    used orjson were made with the standard library's JSON (other separators, ASCII escapes); those keys
    must still match a retry of their complaint, so a mismatch is checked against that form too."""
    return stored == digest or stored == hashlib.sha256(
        json.dumps(complaint.model_dump(), sort_keys=True).encode()).hexdigest()


def masked(tx, node_id: str, ticket: TicketState, payload: dict) -> dict:
    """``payload`` with its free text (``FREE_TEXT``) redacted before it is signed and synced (``redact``):
    with the reporter's identity at the origin, the only node that holds it; by shape elsewhere."""
    written = [k for k in FREE_TEXT if isinstance(payload.get(k), str)]
    if not written:
        return payload
    private = tx.get_private(ticket.ticket_id) if ticket.origin == node_id else None
    reporter = (private or {}).get("identity") or {}
    return {**payload, **{k: redact(payload[k], reporter=reporter).text for k in written}}


class ComplaintService:
    def __init__(self, storage, log: EventLog, node_id: str, role: str, hub_id: str | None = None, now=time.time):
        self.hub_id = hub_id
        self.storage = storage
        self.log = log
        self.node_id = node_id
        self.role = role
        self.now = now

    def file(self, complaint: ComplaintIn, idempotency_key: str | None = None) -> Filed:
        outcome = self.file_many([(complaint, idempotency_key)])[0]
        if isinstance(outcome, SimpulError):
            raise outcome
        return outcome

    def file_many(self, requests: Sequence[tuple[ComplaintIn, str | None]]) -> list[Filed | SimpulError]:
        """File complaints in one transaction (group commit); one outcome per request, in order.

        A request refused on its own (its Idempotency-Key already used for a different complaint) gets
        its error and takes nothing else down. Two requests with the same key in one batch behave as if
        they came one after the other. Tracking numbers are reserved for the batch at once.
        """
        with self.storage.transaction() as tx:
            keys = {k: f"intake:{k}" for _, k in requests if k}
            known = tx.idempotency_get_many(list(keys.values()))
            plan: list[tuple[str, str, bool] | SimpulError] = []  # (ticket id, digest, new?) or the refusal
            for complaint, key in requests:
                digest = request_hash(complaint)
                seen = known.get(keys[key]) if key else None
                if seen is None:
                    plan.append((ids.ticket_id(), digest, True))
                    if key:
                        known[keys[key]] = (digest, plan[-1][0])
                elif not same_request(seen[0], digest, complaint):
                    plan.append(Conflict("Idempotency-Key was already used with a different complaint"))
                else:
                    plan.append((seen[1], digest, False))
            count = sum(1 for p in plan if not isinstance(p, SimpulError) and p[2])
            stamp = time.strftime("%y%m", time.gmtime(self.now()))
            number = tx.next_counter(f"tracking:{stamp}", count) if count else 0
            out: list[Filed | SimpulError] = []
            for (complaint, key), step in zip(requests, plan):
                if isinstance(step, SimpulError):
                    out.append(step)
                    continue
                ticket_id, digest, new = step
                if not new:
                    out.append(Filed(tx.get_ticket(ticket_id), created=False))
                    continue
                out.append(self._file_one(tx, complaint, ticket_id, f"{self.node_id.upper()}-{stamp}-{number:05d}"))
                number += 1
                if key:
                    tx.idempotency_put(keys[key], digest, ticket_id)
            return out

    def _file_one(self, tx, complaint: ComplaintIn, ticket_id: str, tracking_id: str) -> Filed:
        reporter = complaint.reporter.model_dump(exclude_none=True) if complaint.reporter else {}
        # Every free-text field, kecamatan too ("Tanah Grogot, WA 0813..." was published as typed).
        texts = {k: redact(v, reporter=reporter) for k, v in (("title", complaint.title), ("body", complaint.body),
                                                               ("kecamatan", complaint.kecamatan)) if v is not None}
        payload = {
            "tracking_id": tracking_id, "type": complaint.type, "category": complaint.category,
            "topic": complaint.topic, "region": complaint.region, "kecamatan": complaint.kecamatan,
            "incident_date": complaint.incident_date,
            "anonim": complaint.anonim, "rahasia": complaint.rahasia, "channel": complaint.channel,
            "chosen_institution": complaint.chosen_institution, "hub": self.hub_id,
            "filed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.now())),
            **{k: m.text for k, m in texts.items()},
        }
        tx.new_ticket(ticket_id)
        appended = self.log.append(tx, ticket_id, "created", payload)
        kinds = tuple(sorted({f.kind for m in texts.values() for f in m.findings}))
        tx.put_private(ticket_id, reporter, complaint.body, list(kinds))
        return Filed(appended.state, created=True, redactions=kinds)

    def act(self, ticket_id: str, action: ActionIn, institutions: dict[str, dict]) -> TicketState:
        with self.storage.transaction() as tx:
            state = fold(tx.ticket_events(ticket_id))  # what the projection holds; append folds them anyway
            if state is None:
                raise NotFound(f"ticket {ticket_id} not found")
            if action.action in HOLDER_ACTIONS and state.holder_node != self.node_id:
                holder = state.holder_node or "nobody yet (not dispositioned)"
                raise Forbidden(f"only the holder can '{action.action}' this ticket; it is held by {holder}")
            payload = masked(tx, self.node_id, state, self._payload(state, action, institutions))
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
        flags = {f: True for f in ("anonim", "rahasia") if getattr(a, f)}   # (raised at verification only)
        return {**base, **({"text": a.text} if a.text else {}), **({"reason": a.reason} if a.reason else {}),
                **flags}

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
