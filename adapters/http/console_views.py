"""What the console shows of events and tickets: pure helpers, no I/O except
``check_signature`` (which reads the key directory).

An event's payload is shown field by field in a readable form. Only fields
named here are shown for the known event types, so nothing sealed (the
``identity_sealed`` box) or private ever reaches a page by accident.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone

from node.errors import IntegrityError
from node.sla import SlaState, sla_state
from node.ticket import TicketState
from schemas.events import Event

# event type -> payload fields worth showing, in order
SHOWN_FIELDS: dict[str, tuple[str, ...]] = {
    "created": ("tracking_id", "type", "category", "topic", "region", "kecamatan", "title", "channel",
                "chosen_institution", "anonim", "rahasia"),
    "verified": ("text", "reason"),
    "routed": ("institution", "node", "reason", "rule"),
    "accepted": ("text", "reason"),
    "returned": ("institution", "reason", "auto"),
    "followed_up": ("text",),
    "status_changed": ("status",),
    "reporter_replied": ("text",),
    "reopened": ("text", "reason"),
    "closed": ("text", "reason"),
    "archived": ("text", "reason"),
    "edited": ("title", "body"),
    "identity_sealed": ("holder_node", "institution"),
    "conflict_resolved": ("conflict", "winner", "reason", "state"),
}
ALWAYS = ("actor",)
HIDDEN_WORDS = ("seal", "cipher", "nonce", "box", "wrapped", "identity", "passphrase", "reporter", "private")
MAX_TEXT = 600


def _readable(value) -> str:
    if isinstance(value, bool):
        return "✓" if value else "—"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_readable(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_readable(v) for v in value)
    text = "" if value is None else str(value)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"


def event_fields(event: Event, institutions: dict[str, dict]) -> list[tuple[str, str]]:
    """(field, readable value) pairs for the payload fields that matter to an admin."""
    payload = dict(event.payload)
    names = SHOWN_FIELDS.get(event.type)
    if names is None:  # an event type this console does not know yet: show what is clearly harmless
        names = tuple(k for k in payload if not any(w in k.lower() for w in HIDDEN_WORDS))
    out = []
    for name in names + ALWAYS:
        if name not in payload or payload[name] in (None, "", [], {}):
            continue
        value = payload[name]
        if name in ("institution", "chosen_institution") and value in institutions:
            value = f"{institutions[value]['name']} ({value})"
        out.append((name, _readable(value)))
    return out


def event_institution(event: Event) -> str | None:
    value = event.payload.get("institution")
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class SignatureCheck:
    ok: bool
    detail: str = ""


def check_signature(keydir, storage, event: Event) -> SignatureCheck:
    """Does the event's id match its content and its signature verify with its author's key?

    Keys come from node.federation.KeyDirectory. A key the directory no longer
    serves because it was rotated out is still accepted for events stamped
    before its ``valid_until`` (old keys are kept so that history verifies).
    """
    entry = keydir.lookup(event.key)
    if entry is None:
        entry = _retired_key(storage, event)
    if entry is None:
        return SignatureCheck(False, f"unknown or revoked key {event.key}")
    if entry[0] != event.author:
        return SignatureCheck(False, f"key {event.key} does not belong to {event.author}")
    try:
        event.verify(entry[1])
    except IntegrityError as exc:
        return SignatureCheck(False, str(exc))
    return SignatureCheck(True)


def _retired_key(storage, event: Event):
    from node.keys import load_signing_public
    with storage.read() as tx:
        row = tx.get_key(event.key)
        node = tx.get_node(row["node_id"]) if row else None
    if row is None or row["kind"] != "signing" or node is None or node.get("revoked_at"):
        return None
    signed_at = int(event.hlc.partition(".")[0]) / 1000
    if row["valid_until"] is not None and signed_at > row["valid_until"]:
        return None
    return row["node_id"], load_signing_public(row["public"])


# ------------------------------------------------------------------ SLA
def local_date(epoch_s: float) -> date:
    return datetime.fromtimestamp(epoch_s).astimezone().date()


def filed_date(state: TicketState) -> date:
    try:
        stamp = datetime.strptime(state.filed_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return local_date(int(state.last_hlc.partition(".")[0]) / 1000)
    return stamp.astimezone().date()


def ticket_sla(state: TicketState, today: date, routed_hlc: str | None = None) -> SlaState:
    """The ticket's SLA state. Without the routing event at hand, the time of the
    ticket's last event stands in for the disposition time: it is never earlier,
    so the overdue count is a lower bound, never a false alarm."""
    stamp = routed_hlc or state.last_hlc
    disp = local_date(int(stamp.partition(".")[0]) / 1000) if stamp else None
    return sla_state(state.status.value, filed_on=filed_date(state), dispositioned_on=disp,
                     has_followup=bool(state.followups), today=today)
