"""What the hub and a district do when routings arrive (node.reactions), on real databases set up by the real
CLI (``pair``: kab-paser and the hub, in-process); events travel as they do on the wire, through each side's
outbox and its ``Receiver``."""
from node.federation import KeyDirectory, Receiver
from node.identity import IdentityService
from node.reactions import district_react, hub_react
from schemas.complaints import ActionIn, ComplaintIn

HUB, PASER = "nasional", "kab-paser"


def deliver(src, dest, react) -> None:
    """Everything ``src`` has queued for ``dest``, received there."""
    with src.storage.read() as tx:
        items = [{"pos": pos, "event": e.to_wire()} for pos, e in tx.outbox_batch(dest.node_id, 0, 1000)]
    Receiver(dest, KeyDirectory(dest.storage, dest.keys), react).receive(src.node_id, 0, items)


def filed(district, sample_complaints, ref: str, **changes) -> str:
    body = {k: v for k, v in next(c for c in sample_complaints if c["ref"] == ref).items()
            if k not in ("ref", "filed_at", "expected_institution", "note")}
    return district.complaints.file(ComplaintIn.model_validate({**body, **changes})).state.ticket_id


def history(node, ticket_id: str) -> list[tuple]:
    with node.storage.read() as tx:
        return [(e.type, e.author, e.payload.get("institution"), bool(e.payload.get("auto")))
                for e in sorted(tx.ticket_events(ticket_id), key=lambda e: e.hlc)]


def test_a_district_returns_what_it_is_competent_for_but_not_in_that_region(pair, sample_complaints):
    """A Penajam school's complaint whose reporter chose Paser's education office: the office holds
    pendidikan/smp, but not for region 6409. Before, the district checked the competence alone and kept it."""
    district, hub = pair
    ticket = filed(district, sample_complaints, "S001", region="6409", chosen_institution="paser-disdikbud")
    deliver(district, hub, hub_react(hub))
    deliver(hub, district, district_react(district, IdentityService(district)))
    assert history(district, ticket)[-2:] == [("routed", HUB, "paser-disdikbud", False),
                                              ("returned", PASER, "paser-disdikbud", True)]
    with district.storage.read() as tx:
        [returned] = [e for e in tx.ticket_events(ticket) if e.type == "returned"]
    assert "wilayah 6409" in returned.payload["reason"]


def test_a_hub_admins_manual_routing_is_not_returned_though_a_rule_routed_before_it(pair, sample_complaints):
    """The hub routes S009 to paser-dinsos by rule, and its admin then routes it by hand to paser-dlh; the
    district gets both in one batch. Before, the rule's routing in the batch made the admin's look like a
    rule's, and the district returned it as bukan wewenang, undoing the admin's call."""
    district, hub = pair
    ticket = filed(district, sample_complaints, "S009")
    deliver(district, hub, hub_react(hub))
    hub.complaints.act(ticket, ActionIn.model_validate({"action": "route", "institution": "paser-dlh",
                                                         "reason": "manual"}), hub.institutions())
    deliver(hub, district, district_react(district, IdentityService(district)))
    assert history(district, ticket)[1:] == [("routed", HUB, "paser-dinsos", False),
                                             ("routed", HUB, "paser-dlh", False)]
    with district.storage.read() as tx:
        assert tx.get_ticket(ticket).institution == "paser-dlh"


def test_a_reporters_choice_of_an_institution_on_the_hub_is_returned_there_when_not_competent(
        pair, sample_complaints):
    """A school complaint whose reporter chose the electricity company, hosted on the hub: the hub holds it
    and checks it as a district would, then routes it by competence. Before, it stayed with the company."""
    district, hub = pair
    ticket = filed(district, sample_complaints, "S001", chosen_institution="pln-uid-kaltimra")
    deliver(district, hub, hub_react(hub))
    assert history(hub, ticket)[1:] == [("routed", HUB, "pln-uid-kaltimra", False),
                                        ("returned", HUB, "pln-uid-kaltimra", True),
                                        ("routed", HUB, "paser-disdikbud", False)]


async def test_the_hubs_disposition_queue_pages(pair, aiohttp_client, sample_complaints):
    """What no rule routes waits at the hub. Before, ``GET /api/v1/disposition`` showed the first 500 and
    refused limit and offset, so a hub with more could not list the rest."""
    from adapters.http.app import build_app
    district, hub = pair
    for n in range(3):   # (S040: no institution in the sample holds its competence)
        filed(district, sample_complaints, "S040", title=f"Pupuk subsidi langka ({n})")
    deliver(district, hub, hub_react(hub))
    client = await aiohttp_client(build_app(hub))
    headers, seen = {"Authorization": f"Bearer {hub.settings.tokens.operator}"}, []
    for offset in (0, 2):
        resp = await client.get(f"/api/v1/disposition?limit=2&offset={offset}", headers=headers)
        page = await resp.json()
        assert resp.status == 200 and (page["total"], page["limit"], page["offset"]) == (3, 2, offset), page
        seen += [i["ticket_id"] for i in page["items"]]
    assert len(set(seen)) == 3
    assert (await client.get("/api/v1/disposition?limit=501", headers=headers)).status == 422


def test_a_ticket_for_a_node_not_enrolled_waits_in_the_queue_and_is_routed_once_it_enrols(pair, sample_complaints):
    """S021 belongs to ppu-disdik, at kab-ppu, which the hub has not enrolled. Before, the hub routed it there
    at once: "dispositioned" on every replica, queued for a node that might never come, and out of the
    disposition queue. Now it waits there, and the next pass after the enrolment routes it (as after a
    federation file that adds a rule); a revocation makes the node's institutions wait again."""
    import time

    from node.reactions import Topology, WaitingRouter
    district, hub = pair
    ticket = filed(district, sample_complaints, "S021")
    deliver(district, hub, hub_react(hub))
    router = WaitingRouter(hub)
    assert router.run() == 0
    with hub.storage.read() as tx:
        assert (tx.get_ticket(ticket).institution, tx.list_tickets(
            filters={"awaiting_disposition": True}, limit=10, offset=0)[1]) == (None, 1)
    with hub.storage.transaction() as tx:
        tx.put_node("kab-ppu", role="district", url="http://127.0.0.1:9", enrolled_at=time.time())
    assert router.run() == 1 and router.run() == 0       # (once: nothing changed since)
    with hub.storage.read() as tx:
        state = tx.get_ticket(ticket)
    assert (state.institution, state.holder_node, state.status.value) == ("ppu-disdik", "kab-ppu", "dispositioned")
    with hub.storage.transaction() as tx:
        tx.revoke_node("kab-ppu")
    with hub.storage.read() as tx:
        assert "ppu-disdik" in Topology(tx, HUB).unavailable and "paser-disdikbud" not in Topology(tx, HUB).unavailable


def test_a_ticket_not_accepted_yet_follows_its_institution_to_the_node_it_moved_to(pair, sample_complaints):
    """A federation file moves paser-disdikbud to kab-ppu while S001 waits at kab-paser to be accepted.
    Before, the ticket stayed with kab-paser (which might never come back) while new ones went to kab-ppu.
    It moves once kab-ppu can take it."""
    import time

    from node.reactions import WaitingRouter
    district, hub = pair
    ticket = filed(district, sample_complaints, "S001")
    deliver(district, hub, hub_react(hub))
    router = WaitingRouter(hub)
    router.run()
    with hub.storage.transaction() as tx:
        row = next(i for i in tx.institutions() if i["id"] == "paser-disdikbud")
        tx.put_institution({**row, "node_id": "kab-ppu"})
    assert router.run() == 0                              # kab-ppu is not enrolled: it stays where it is
    with hub.storage.transaction() as tx:
        tx.put_node("kab-ppu", role="district", url="http://127.0.0.1:9", enrolled_at=time.time())
    assert router.run() == 1
    assert history(hub, ticket)[-1] == ("routed", HUB, "paser-disdikbud", False)
    with hub.storage.read() as tx:
        state = tx.get_ticket(ticket)
    assert (state.holder_node, state.status.value) == ("kab-ppu", "dispositioned")
