"""The reporter's identity: sealed on the origin node for whoever handles the
ticket, opened there only on an operator's explicit, audited request.

Design (design.md, "Confidentiality"; the crypto is node.sealing):

- The identity (name, NIK, phone, email, address) lives in clear only in the
  origin node's ``reporter_private`` table. It is never put in an event.
- Sealing is the ORIGIN's job. When the origin sees a ticket it filed get a
  new holder (a ``routed`` event, from the hub or from itself), it seals the
  identity to that holder and appends an ``identity_sealed`` event
  ``{holder_node, institution, box}``; the event travels like any other, and
  the hub only relays ciphertext. ``decide_seal`` is the policy:
  * ``anonim``: never seal; the identity does not leave the origin at all;
  * no holder, or the origin holds it itself: nothing to seal;
  * already sealed for this (holder node, institution): nothing to do;
  * holder is a district node: seal to that node's current sealing key from
    the directory (the highest ``#seal-<n>`` that is not expired; never a
    revoked node's);
  * holder is the hub: the ticket is for an institution hosted there, so seal
    to THAT INSTITUTION's own key (its private part is wrapped by a passphrase
    only its operators hold), never to the hub's node key. No key yet: wait.
  When the needed key is not known yet (directory not refreshed, institution
  without a key) the decision is ``defer``: the receive transaction goes on,
  and the ticket id is noted as pending (a row of its own in storage, so
  noting or clearing one ticket costs one row however many wait). After each
  directory refresh ``reseal_pending`` retries them a page at a time: one
  write transaction and one directory read per page (``RESEAL_PAGE``), so
  that thousands waiting for one institution's key (hosted on the hub, no
  key yet) never hold the database, and intake and receives with it, for
  more than one page.
- Opening happens on the node that holds the ticket (``open``): with the
  node's sealing keys, all of them, so boxes sealed to a key since rotated
  still open; for a hub-hosted institution, with the institution's key
  unwrapped from the passphrase given in the request (used in memory only,
  never stored). The origin reads its own ``reporter_private``. Every attempt
  is audited (opened, denied, failed) with who, when, which ticket and the
  stated reason. An anonymous report's identity is refused everywhere: the
  holder contacts the reporter through the origin node, which lists the
  follow-ups addressed to the reporter (``messages``).
- A node that no longer holds the ticket is refused even if an old box sealed
  to it is still in its log (the fold forgets ``sealed_identity`` on every
  routed/returned event). Sealing cannot take back what a previous holder
  could already read; it only stops new holders' boxes from reaching it.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from node.errors import ConfigError, Conflict, Forbidden, NotFound, SealingError, StorageError, ValidationError
from node.sealing import SealedBox, load_public_b64, open_sealed, seal, unwrap_private_key
from node.ticket import TicketState
from schemas.text import ONE_LINE_MESSAGE, not_one_line

log = logging.getLogger(__name__)

RESEAL_PAGE = 200  # pending tickets retried per write transaction (sealing one signs an event)
_KEY_NUMBER = re.compile(r"#seal-(\d+)$")


# -- policy: whether and to whom to seal ------------------------------------------------
class DirectoryView(Protocol):
    """What the sealing policy reads from the node's copy of the directory."""

    def node(self, node_id: str) -> dict | None: ...

    def node_keys(self, node_id: str) -> list[dict]: ...

    def institution(self, institution_id: str) -> dict | None: ...


@dataclass(frozen=True)
class SealTarget:
    holder_node: str
    institution: str | None
    key_id: str
    public: str          # base64url raw X25519 public key


@dataclass(frozen=True)
class SealDecision:
    action: Literal["none", "seal", "defer"]
    reason: str
    target: SealTarget | None = None


def _unavailable(exc: Exception) -> bool:
    """The database is down or locked (it fails every ticket alike), not refusing what one ticket wrote."""
    return isinstance(exc, StorageError) and not exc.refused


def key_number(key_id: str) -> int:
    m = _KEY_NUMBER.search(key_id)
    return int(m.group(1)) if m else -1


def current_sealing_key(keys: list[dict], now: float) -> dict | None:
    """The highest-numbered sealing key that has not expired."""
    valid = [k for k in keys if k.get("kind") == "sealing" and k.get("public")
             and (k.get("valid_until") is None or k["valid_until"] > now)]
    return max(valid, key=lambda k: (key_number(k["key_id"]), k["key_id"]), default=None)


def sealed_for(state: TicketState) -> tuple[str | None, str | None] | None:
    """(holder node, institution) the ticket's current box is for, or None."""
    s = state.sealed_identity
    return (s.get("holder_node"), s.get("institution")) if s else None


def decide_seal(state: TicketState, *, self_id: str, hub_id: str, directory: DirectoryView,
                now: float) -> SealDecision:
    if state.origin != self_id:
        return SealDecision("none", "not the origin: only the origin node seals")
    if state.anonim:
        return SealDecision("none", "anonim: the identity never leaves the origin node")
    holder = state.holder_node
    if holder is None:
        return SealDecision("none", "no holder yet")
    if holder == self_id:
        return SealDecision("none", "held at the origin: the identity is local")
    if sealed_for(state) == (holder, state.institution):
        return SealDecision("none", "already sealed for the current holder")
    if holder == hub_id:
        inst = directory.institution(state.institution or "")
        if inst is None or inst.get("node_id") != hub_id:
            return SealDecision("defer", f"institution {state.institution!r} is not known as hosted on the hub")
        if not inst.get("sealing_key_id") or not inst.get("sealing_public"):
            return SealDecision("defer", f"institution {inst['id']} has no sealing key yet "
                                         f"(simpul institutions keygen at the hub)")
        return SealDecision("seal", f"hub-hosted institution {inst['id']}",
                            SealTarget(holder, inst["id"], inst["sealing_key_id"], inst["sealing_public"]))
    row = directory.node(holder)
    if row is None:
        return SealDecision("defer", f"holder node {holder} is not in the directory yet")
    if row.get("revoked_at"):
        return SealDecision("defer", f"holder node {holder} is revoked; not sealing to it")
    key = current_sealing_key(directory.node_keys(holder), now)
    if key is None:
        return SealDecision("defer", f"no sealing key of {holder} in the directory yet")
    return SealDecision("seal", f"holder node {holder}",
                        SealTarget(holder, state.institution, key["key_id"], key["public"]))


# -- policy: who may open --------------------------------------------------------------
@dataclass(frozen=True)
class Access:
    source: Literal["origin", "node_keys", "institution"]
    box: dict | None = None


def decide_access(state: TicketState, *, self_id: str, hub_id: str) -> Access:
    """How this node may read the identity, or Forbidden/Conflict saying why not."""
    if state.anonim:
        raise Forbidden(f"anonymous report: the identity stays at the origin node; contact the reporter "
                        f"through {state.origin} (GET /api/v1/complaints/{state.ticket_id}/messages there)")
    if state.origin == self_id:
        return Access("origin")
    if state.holder_node != self_id:
        raise Forbidden(f"this node does not hold the ticket (holder: {state.holder_node or 'none'}); "
                        "only the handling node can open the reporter's identity")
    target = sealed_for(state)
    # A district node's keys open a box for any of its institutions; on the hub
    # each institution has its own key, so the box must be for this institution.
    ready = target is not None and target[0] == self_id and (self_id != hub_id or target[1] == state.institution)
    if not ready:
        raise Conflict(f"identity pending: the origin node {state.origin} has not sealed it for this "
                       "holder yet; it does so when it sees the routing (try again after the next sync)")
    return Access("institution" if self_id == hub_id else "node_keys", state.sealed_identity.get("box"))


# -- the service ----------------------------------------------------------------------
class TxDirectory:
    """DirectoryView over a storage transaction, read once per transaction (a received batch can hand
    hundreds of tickets to new holders, and the directory does not change under it)."""

    def __init__(self, tx):
        self.tx = tx
        self._nodes: dict[str, dict | None] = {}
        self._keys: dict[str, list[dict]] = {}
        self._institutions: dict[str, dict] | None = None

    def node(self, node_id: str) -> dict | None:
        if node_id not in self._nodes:
            self._nodes[node_id] = self.tx.get_node(node_id)
        return self._nodes[node_id]

    def node_keys(self, node_id: str) -> list[dict]:
        if node_id not in self._keys:
            self._keys[node_id] = self.tx.node_keys(node_id)
        return self._keys[node_id]

    def institution(self, institution_id: str) -> dict | None:
        if self._institutions is None:
            self._institutions = {i["id"]: i for i in self.tx.institutions()}
        return self._institutions.get(institution_id)


@dataclass(frozen=True)
class Opened:
    ticket_id: str
    identity: dict
    source: str
    key_id: str | None
    actor: str


@dataclass(frozen=True)
class ResealPage:
    """What one page of ``IdentityService.reseal_page`` did."""
    sealed: int               # identities sealed
    waiting: int              # tickets of the page that still wait for a key
    next_after: str | None    # where the next page starts; None: there is no next page


class IdentityService:
    def __init__(self, node, *, now: Callable[[], float] = time.time, rand: Callable[[int], bytes] = os.urandom,
                 page_size: int = RESEAL_PAGE):
        self.node = node
        self.now = now
        self.rand = rand
        self.page_size = page_size
        self._told: tuple | None = None   # what the last 'still wait' line said (said again only when it changes)

    # -- sealing (origin) ------------------------------------------------------------
    def reseal_all(self, tx, states: Sequence[TicketState],
                   directory: TxDirectory | None = None) -> dict[str, SealDecision]:
        """Seal each identity of ``states`` (a receive's tickets filed here) for the ticket's current holder
        where needed; the decisions by ticket id. Never raises for a missing key: such a ticket is noted
        as pending (``defer``), and one sealed leaves the pending set."""
        decisions = self._seal_all(tx, states, directory or TxDirectory(tx))
        deferred = [s for s in states if decisions[s.ticket_id].action == "defer"]
        for state in deferred:
            log.info("identity of ticket %s not sealed yet: %s", state.tracking_id, decisions[state.ticket_id].reason)
        tx.add_identity_pending([s.ticket_id for s in deferred])
        tx.remove_identity_pending([t for t, d in decisions.items() if d.action == "seal"])
        return decisions

    def _seal_all(self, tx, states: Sequence[TicketState], directory: TxDirectory) -> dict[str, SealDecision]:
        """Decide for each of ``states`` and seal those to seal. What sealing reads (the origin records, the
        tickets' events) is read at once, before any is sealed: read ticket by ticket, each read made the
        transaction write what it had deferred so far (``Tx.flush``), and a district sealing the hundreds
        of tickets a hub's batch routed elsewhere wrote its new events a statement per ticket, which cost
        it a quarter of its CPU in a drain."""
        by_id = {s.ticket_id: s for s in states}
        decisions = {t: self._decide(s, directory) for t, s in by_id.items()}
        to_seal = [t for t, d in decisions.items() if d.action == "seal"]
        if to_seal:
            tx.prefetch_ticket_events(to_seal)   # (a receive's are in the transaction's cache already)
            privates = tx.get_privates(to_seal)
            for t in to_seal:
                decisions[t] = self._seal(tx, by_id[t], decisions[t].target, privates.get(t))
        return decisions

    def _decide(self, state: TicketState, directory: TxDirectory) -> SealDecision:
        return decide_seal(state, self_id=self.node.node_id, hub_id=self.node.hub_id, directory=directory,
                           now=self.now())

    def _seal(self, tx, state: TicketState, target: SealTarget, private: dict | None) -> SealDecision:
        """Seal the identity in ``private`` (the origin's record) to ``target``; "defer" if its key is bad."""
        identity = (private or {}).get("identity") or {}
        if not identity:
            log.warning("ticket %s has no reporter identity recorded; nothing to seal", state.tracking_id)
            return SealDecision("none", "no identity recorded at the origin")
        try:
            box = seal({k: str(v) for k, v in identity.items()}, ticket_id=state.ticket_id,
                       recipient_key_id=target.key_id, recipient_public=load_public_b64(target.public),
                       rand=self.rand)
        except SealingError as exc:
            log.warning("cannot seal ticket %s to %s: %s", state.tracking_id, target.key_id, exc)
            return SealDecision("defer", f"sealing key {target.key_id} unusable: {exc}")
        self.node.log.append(tx, state.ticket_id, "identity_sealed", {
            "holder_node": target.holder_node, "institution": target.institution, "box": box.to_dict()})
        tx.audit(state.ticket_id, "system", "identity_sealed", detail=f"sealed to {target.key_id}")
        log.info("identity of ticket %s sealed to %s", state.tracking_id, target.key_id)
        return SealDecision("seal", f"sealed to {target.key_id}", target)

    def pending(self, after: str = "", limit: int | None = None) -> list[str]:
        """The tickets whose identity waits for a sealing key, in id order: all of them, or at most ``limit``
        of those after ``after`` (a page; the set can be large)."""
        with self.node.storage.read() as tx:
            if limit is not None:
                return tx.identity_pending(after, limit)
            found: list[str] = []
            while page := tx.identity_pending(after, 1000):
                found += page
                after = page[-1]
            return found

    def reseal_page(self, after: str = "") -> ResealPage:
        """Retry the pending tickets after ``after``, at most ``page_size`` of them, in one write transaction
        with one read of the directory. A ticket sealed, gone, or with nothing to seal any more leaves the
        pending set; one whose key is still unknown stays. Nothing pending there: no write transaction.

        A page that fails for another reason than the database being unavailable (a bug that one ticket
        triggers, say) is retried a ticket per transaction: the ticket that fails stays pending, logged,
        and holds back neither the rest of its page nor the pages after it."""
        with self.node.storage.read() as tx:
            if not tx.identity_pending(after, 1):
                return ResealPage(0, 0, None)   # the usual case
        try:
            with self.node.storage.transaction() as tx:
                page = tx.identity_pending(after, self.page_size)
                sealed, waiting = self._reseal(tx, page)
        except Exception as exc:  # noqa: BLE001 -- a database that is down fails every ticket: raise it
            if _unavailable(exc):
                raise
            log.exception("re-sealing the pending identities after %r failed; retrying them one by one", after)
            with self.node.storage.read() as tx:
                page = tx.identity_pending(after, self.page_size)
            sealed, waiting = self._reseal_one_by_one(page)
        if waiting:   # (at INFO when it changes; every directory refresh otherwise repeats it)
            told = (after, len(waiting), *next(iter(waiting.values())))
            log.log(logging.INFO if told != self._told else logging.DEBUG,
                    "%d identities still wait for a sealing key (ticket %s: %s)", *told[1:])
            self._told = told
        return ResealPage(sealed, len(waiting), page[-1] if len(page) == self.page_size else None)

    def _reseal_one_by_one(self, page: list[str]) -> tuple[int, dict]:
        sealed, waiting = 0, {}
        for ticket_id in page:
            try:
                with self.node.storage.transaction() as tx:
                    one, wait = self._reseal(tx, [ticket_id])
            except Exception as exc:  # noqa: BLE001 -- logged; the ticket stays pending, retried next time
                if _unavailable(exc):
                    raise
                log.exception("identity of ticket %s could not be re-sealed; it stays pending", ticket_id)
                one, wait = 0, {ticket_id: (ticket_id, "re-sealing it failed (logged)")}
            sealed += one
            waiting.update(wait)
        return sealed, waiting

    def _reseal(self, tx, page: list[str]) -> tuple[int, dict]:
        """Seal what ``page`` (pending ticket ids) can have sealed now: (how many were sealed, the tickets
        still waiting: id -> (tracking id, why))."""
        states = tx.get_tickets(page)   # a ticket gone since: nothing to wait for
        decisions = self._seal_all(tx, [states[t] for t in page if t in states], TxDirectory(tx))
        waiting = {t: (states[t].tracking_id, d.reason) for t, d in decisions.items() if d.action == "defer"}
        tx.remove_identity_pending([t for t in page if t not in waiting])
        return sum(d.action == "seal" for d in decisions.values()), waiting

    def reseal_pending(self) -> int:
        """Retry every ticket whose holder's key was unknown, page by page (``reseal_page``: each page is
        committed on its own); returns how many got sealed."""
        sealed, after = 0, ""
        while after is not None:
            page = self.reseal_page(after)
            sealed, after = sealed + page.sealed, page.next_after
        return sealed

    async def reseal_pending_via(self, run: Callable[..., Awaitable[ResealPage]]) -> int:
        """``reseal_pending`` for the server: each page is one call of ``run`` (the node's database runner,
        ``node.db``), so that other database work gets in between pages; on SQLite the node has one
        database thread, which a whole backlog would otherwise hold, and intake with it."""
        sealed, after = 0, ""
        while after is not None:
            page = await run(self.reseal_page, after)
            sealed, after = sealed + page.sealed, page.next_after
        return sealed

    # -- opening (holder, or origin) ---------------------------------------------------
    def open(self, ticket_id: str, *, role: str, actor_name: str | None, reason: str,
             passphrase: str | None = None) -> Opened:
        if actor_name is not None and not_one_line(actor_name):
            raise ValidationError(f"actor: {ONE_LINE_MESSAGE} (an operator's name, for the audit)")
        actor = f"{role}:{actor_name}" if actor_name else role
        with self.node.storage.read() as tx:
            state = tx.get_ticket(ticket_id)
            if state is None:
                raise NotFound(f"ticket {ticket_id} not found")
            private = tx.get_private(ticket_id) if state.origin == self.node.node_id else None
            inst = TxDirectory(tx).institution(state.institution or "")
        try:
            access = decide_access(state, self_id=self.node.node_id, hub_id=self.node.hub_id)
            identity, key_id = self._read(state, access, private, inst, passphrase)
        except (Forbidden, Conflict) as exc:
            self._audit(ticket_id, actor, "identity_open_denied", f"{reason} | {exc}")
            raise
        except (SealingError, ValidationError) as exc:
            self._audit(ticket_id, actor, "identity_open_failed", f"{reason} | {exc}")
            log.warning("opening the identity of ticket %s failed: %s", state.tracking_id, exc)
            raise
        self._audit(ticket_id, actor, "identity_opened", reason)
        log.info("identity of ticket %s opened by %s", state.tracking_id, actor)
        return Opened(ticket_id, identity, access.source, key_id, actor)

    def _read(self, state: TicketState, access: Access, private: dict | None, inst: dict | None,
              passphrase: str | None) -> tuple[dict, str | None]:
        if access.source == "origin":
            if not private:
                raise SealingError("no identity recorded for this ticket at its origin")
            return dict(private["identity"]), None
        box = SealedBox.from_dict(access.box or {})
        if access.source == "node_keys":
            if box.recipient_key_id not in self.node.keys.sealing:   # (before, only a restart found it)
                try:
                    self.node.keys.reload_sealing()
                except ConfigError as exc:
                    raise SealingError(f"cannot read this node's keys again: {exc}") from exc
            return open_sealed(box, ticket_id=state.ticket_id, private_keys=self.node.keys.sealing), \
                box.recipient_key_id
        if not passphrase:
            raise ValidationError(f"passphrase: required to open identities for {state.institution}, an "
                                  "institution hosted on the hub (its key is wrapped by its operators' passphrase)")
        if inst is None or not inst.get("wrapped_private") or not inst.get("sealing_key_id"):
            raise SealingError(f"institution {state.institution} has no sealing key on this hub")
        try:
            wrapped = json.loads(inst["wrapped_private"])
        except ValueError:
            raise SealingError(f"institution {state.institution}: stored wrapped key is not JSON") from None
        private_key = unwrap_private_key(wrapped, passphrase)
        return open_sealed(box, ticket_id=state.ticket_id, private_keys={inst["sealing_key_id"]: private_key}), \
            box.recipient_key_id

    def _audit(self, ticket_id: str, actor: str, action: str, detail: str) -> None:
        with self.node.storage.transaction() as tx:
            tx.audit(ticket_id, actor[:100], action, detail=detail)

    def audit_log(self, ticket_id: str) -> list[dict]:
        with self.node.storage.read() as tx:
            if tx.get_ticket(ticket_id) is None:
                raise NotFound(f"ticket {ticket_id} not found")
            return tx.audit_log(ticket_id)

    # -- messages for the reporter (origin) ---------------------------------------------
    def messages(self, ticket_id: str) -> dict:
        """What the handling institution said to the reporter, for the origin to pass on."""
        with self.node.storage.read() as tx:
            state = tx.get_ticket(ticket_id)
        if state is None:
            raise NotFound(f"ticket {ticket_id} not found")
        if state.origin != self.node.node_id:
            raise NotFound(f"messages for the reporter are kept at the ticket's origin node {state.origin}")
        return {"ticket_id": state.ticket_id, "tracking_id": state.tracking_id, "status": state.status.value,
                "channel": state.channel, "anonim": state.anonim, "institution": state.institution,
                "messages": [{"kind": "follow_up", "event": f["event"], "from": f["author"], "hlc": f["hlc"],
                              "text": f.get("text", "")} for f in state.followups]}


def public_view(state: TicketState) -> Mapping:
    """A ticket as anyone may see it: no identity, no holder internals."""
    return {"tracking_id": state.tracking_id, "type": state.report_type, "category": state.category,
            "topic": state.topic, "region": state.region, "kecamatan": state.kecamatan, "title": state.title,
            "body": state.body, "status": state.status.value, "institution": state.institution,
            "filed_at": state.filed_at}
