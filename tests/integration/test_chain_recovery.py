"""A district restored from an older copy of its database takes back its chain from the hub (node.chain).

Real databases and the real services in-process; the hub's answer is its own function, called directly.
The same between real processes over HTTP is in tests/acceptance/test_reconciliation.py.
"""
import sqlite3

import orjson
import pytest

from adapters.transport import Peer
from node import chain
from node.chain import ChainRecovery, checkpoint_seqs
from node.core import Node
from node.errors import PeerError, ValidationError
from node.federation import KeyDirectory, Receiver
from node.reactions import district_react, hub_react
from node.verify import verify_log
from schemas.complaints import ComplaintIn

HUB, PASER = "nasional", "kab-paser"


class HubAnswers:
    """The hub's answer function behind the transport's ``chain`` call (no HTTP: that is the acceptance
    test's part). ``tamper`` changes the answer before the district reads it."""

    def __init__(self, hub, tamper=None):
        self.hub, self.tamper, self.asked = hub, tamper, []

    async def chain(self, peer, request):
        self.asked.append(request)
        answer = orjson.loads(chain.answer(self.hub, PASER, orjson.loads(orjson.dumps(request))))
        return self.tamper(answer) if self.tamper else answer


def _file(node, bodies) -> list[str]:
    return [node.complaints.file(ComplaintIn.model_validate(b)).state.tracking_id for b in bodies]


def _push(district, hub) -> tuple[int, list]:
    with district.storage.read() as tx:
        items = [{"pos": pos, "event": e.to_wire()} for pos, e in tx.outbox_batch(HUB, 0, 1000)]
    result = Receiver(hub, KeyDirectory(hub.storage, hub.keys), hub_react(hub)).receive(PASER, 0, items)
    return result.accepted, list(result.rejected)


def _chain(node, author=PASER) -> list[tuple[int, str]]:
    with node.storage.read() as tx:
        return [(seq, i) for seq, i, _ in tx.events_by_author(author, 0, 10**6)]


@pytest.fixture
def restored(pair, sample_complaints, tmp_path):
    """A district that pushed 3 complaints, was copied, pushed 3 more, and was then restored from the copy.
    Yields (district, hub, the 6 tracking numbers, the restored district's config)."""
    district, hub = pair
    bodies = [b for b in sample_complaints if b.get("filed_at", PASER) == PASER][:8]
    numbers = _file(district, bodies[:3])
    assert _push(district, hub) == (3, [])
    db = district.settings.data_dir / "simpul.db"
    copy = tmp_path / "copy.db"
    with sqlite3.connect(db) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    numbers += _file(district, bodies[3:6])
    assert _push(district, hub)[0] == 3
    settings = district.settings
    district.close()
    with sqlite3.connect(copy) as src, sqlite3.connect(db) as dst:   # (the restore)
        src.backup(dst)
    again = Node(settings)
    yield again, hub, numbers, bodies
    again.close()


def _recovery(district, hub, tamper=None) -> tuple[ChainRecovery, HubAnswers]:
    answers = HubAnswers(hub, tamper)
    receiver = Receiver(district, KeyDirectory(district.storage, district.keys), district_react(district))
    return ChainRecovery(district, answers, receiver), answers


def test_checkpoints_are_the_head_then_exponentially_older():
    assert checkpoint_seqs(0) == []
    assert checkpoint_seqs(1) == [1]
    assert checkpoint_seqs(10) == [10, 9, 8, 6, 2]
    assert len(checkpoint_seqs(2**80)) == chain.CHECKPOINTS


async def test_a_district_in_step_with_the_hub_asks_once(pair, sample_complaints, caplog):
    """The hub's cursor of our queue is ahead of what it acknowledged to us (the answer to a push was lost,
    say): nothing to move, and nothing to warn about. Only a position we never handed out is."""
    district, hub = pair
    _file(district, sample_complaints[:2])
    _push(district, hub)
    _file(district, sample_complaints[2:3])   # (not pushed yet: the hub is behind, which is normal)
    with district.storage.read() as tx:
        queue = tx.outbox_batch(HUB, 0, 10)
    recovery, answers = _recovery(district, hub)
    assert await recovery.confirm(Peer(HUB, "")) is None
    assert recovery.confirmed and len(answers.asked) == 1
    with district.storage.read() as tx:
        assert tx.outbox_batch(HUB, 0, 10) == queue
    assert "moved past" not in caplog.text


async def test_a_restored_district_takes_back_what_it_lost(restored):
    district, hub, numbers, bodies = restored
    assert len(_chain(district)) == 3
    recovery, _ = _recovery(district, hub)
    done = await recovery.confirm(Peer(HUB, ""))
    assert done == {"recovered": 3, "resigned": 0, "renumbered": [], "dropped": []}
    assert _chain(district) == _chain(hub)
    new = _file(district, bodies[6:7])     # the next seq and the next tracking number, not ones given out
    assert new[0] not in numbers and new[0].endswith("-00007")
    assert _push(district, hub) == (1, [])
    assert verify_log(district.storage, district.keys).problems == []
    assert verify_log(hub.storage, hub.keys).problems == []
    with district.storage.read() as tx:   # taken back, not queued for the hub again
        assert tx.queued_for(HUB, [i for _, i in _chain(hub)[3:6]]) == set()


async def test_what_a_restored_district_filed_before_it_reached_the_hub_is_signed_again(restored):
    """Filed after the restore while the hub was away: seqs 4-5 and tracking numbers -00004/-00005, which
    the hub holds for other complaints. They are signed again after the hub's copy, and renumbered."""
    district, hub, numbers, bodies = restored
    forked = _file(district, bodies[6:8])
    assert forked == numbers[3:5]
    with district.storage.transaction() as tx:   # (anti-entropy brought one of the hub's back, and it was refused)
        tx.add_dead_letters(HUB, [(_chain(hub)[3][1], "refused here: equivocation")])
    with district.storage.read() as tx:
        tickets = [t.ticket_id for t in tx.list_tickets(filters={}, limit=100, offset=0)[0]]
    recovery, _ = _recovery(district, hub)
    done = await recovery.confirm(Peer(HUB, ""))
    assert done["recovered"] == 3 and done["resigned"] == 2 and done["dropped"] == []
    assert [(old, new) for _, old, new in done["renumbered"]] == [
        (numbers[3], numbers[3][:-5] + "00007"), (numbers[4], numbers[4][:-5] + "00008")]
    ours = _chain(district)
    assert [s for s, _ in ours] == list(range(1, 9)) and ours[:6] == _chain(hub)
    assert _push(district, hub) == (2, [])
    assert _chain(district) == _chain(hub)
    with district.storage.read() as tx:
        held = {t.ticket_id: t.tracking_id for t in tx.list_tickets(filters={}, limit=100, offset=0)[0]}
        audit = tx.audit_log(done["renumbered"][0][0])
    assert set(tickets) <= set(held) and len(set(held.values())) == len(held) == 8
    assert any(a["action"] == "renumbered" and numbers[3] in a["detail"] for a in audit)
    with district.storage.read() as tx:
        assert tx.dead_letter_count() == 0
    assert _file(district, bodies[:1])[0].endswith("-00009")
    assert verify_log(district.storage, district.keys).problems == []
    assert verify_log(hub.storage, hub.keys).problems == []


async def test_a_forged_copy_of_our_chain_is_refused_whole(restored, caplog):
    district, hub, _, _ = restored

    def forge(answer):
        for e in answer.get("events", []):
            e["payload"]["title"] = "diubah"
        return answer
    recovery, _ = _recovery(district, hub, forge)
    with pytest.raises(PeerError, match="refused here, so none of it is taken"):
        await recovery.confirm(Peer(HUB, ""))
    assert len(_chain(district)) == 3 and not recovery.confirmed


async def test_a_copy_of_our_chain_with_a_gap_is_refused_whole(restored):
    """The hub's copy lacks one of our events (seq 5 of 4-6): what follows it cannot follow from ours."""
    district, hub, _, _ = restored

    def withhold(answer):
        answer["events"] = [e for e in answer.get("events", []) if e["seq"] != 5]
        return answer
    recovery, _ = _recovery(district, hub, withhold)
    with pytest.raises(PeerError, match="lacks seq 5, so none of it is taken"):
        await recovery.confirm(Peer(HUB, ""))
    assert len(_chain(district)) == 3


@pytest.mark.parametrize("answer", [[], "x", 5, {"head": "x", "common": 0}, {"head": None, "common": -1},
                                    {"head": None, "common": 0, "cursor": 2**31}])
async def test_a_chain_answer_that_cannot_be_used_is_a_peer_error(pair, answer, caplog):
    """... and the push loop logs it and pushes unconfirmed, as before the check (an AttributeError escaped
    it, and the district never pushed while the hub answered that way)."""
    from node.sync import SyncEngine
    district, _ = pair

    class Answers:
        async def chain(self, peer, request):
            return answer
    engine = SyncEngine(district, Answers(), None)
    with pytest.raises(PeerError):
        await engine.chain.confirm(Peer(HUB, ""))
    assert await engine._confirm_chain(Peer(HUB, "")) is True
    assert engine.chain.confirmed and "pushing unconfirmed" in caplog.text


async def test_a_district_serves_no_pull_and_runs_no_anti_entropy_before_its_chain_is_confirmed(
        restored, aiohttp_client):
    """Restored, it files on the older chain: served to the hub's pull, those events were refused there as
    equivocations and dead-lettered (and the pull took them as delivered); the hub's copy of our events, brought
    back by anti-entropy, was refused here."""
    import secrets
    import time

    from adapters import httpsig
    from adapters.http.app import build_app
    from node.anti_entropy import AntiEntropy
    district, hub, _, bodies = restored
    _file(district, bodies[6:7])
    app = build_app(district)
    client = await aiohttp_client(app)

    async def pull() -> list:
        path = "/federation/v1/events?after=0&limit=500"
        headers = httpsig.sign_request("GET", str(client.make_url(path)), {}, b"", key_id=hub.keys.signing_key_id,
                                       private_key=hub.keys.signing_key, now=time.time(),
                                       nonce=secrets.token_urlsafe(16))
        resp = await client.get(path, headers=headers)
        assert resp.status == 200
        return (await resp.json())["items"]
    sync = app["sync"]
    sync.chain.confirmed = False   # (its first push may have tried already: the hub is not running here)
    assert await pull() == []
    assert await AntiEntropy(district, None, None, sync).run(Peer(HUB, "")) == 0   # (no transport touched)
    sync.chain.started -= district.settings.sync.pull_interval_s   # a pull interval without reaching its hub:
    assert len(await pull()) == 4                                  # the hub's pulls are all it has
    sync.chain.started += district.settings.sync.pull_interval_s
    sync.chain.confirmed = True
    assert len(await pull()) == 4


@pytest.mark.parametrize("body", [[], {"have": "x"}, {"have": [[0, "a"]]}, {"after": -1}, {"limit": 5000},
                                  {"have": [[1, "a"]] * 65}])
def test_the_hub_refuses_a_malformed_chain_request(pair, body):
    _, hub = pair
    with pytest.raises(ValidationError):
        chain.answer(hub, PASER, body)


def test_only_a_hub_answers_for_a_chain(pair):
    district, _ = pair
    with pytest.raises(ValidationError, match="only a hub"):
        chain.answer(district, HUB, {"have": []})


async def test_an_action_no_longer_allowed_after_the_recovery_is_dropped_and_audited(pair, sample_complaints, tmp_path):
    """Verified before the disk was lost, and verified again after the restore: the second verify is refused
    on the recovered state, recorded on the ticket, and the projection shows the recovered events only."""
    from schemas.complaints import ActionIn
    district, hub = pair
    ticket = district.complaints.file(ComplaintIn.model_validate(sample_complaints[0])).state.ticket_id
    _push(district, hub)
    db, copy = district.settings.data_dir / "simpul.db", tmp_path / "copy.db"
    with sqlite3.connect(db) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    institutions = district.institutions()
    district.complaints.act(ticket, ActionIn.model_validate({"action": "verify", "anonim": True}), institutions)
    _push(district, hub)
    settings = district.settings
    district.close()
    with sqlite3.connect(copy) as src, sqlite3.connect(db) as dst:
        src.backup(dst)
    district = Node(settings)
    try:
        district.complaints.act(ticket, ActionIn.model_validate({"action": "verify"}), district.institutions())
        recovery, _ = _recovery(district, hub)
        done = await recovery.confirm(Peer(HUB, ""))
        assert done["recovered"] == 1 and done["resigned"] == 0 and len(done["dropped"]) == 1
        with district.storage.read() as tx:
            state = tx.get_ticket(ticket)
            audit = tx.audit_log(ticket)
        assert state.status.value == "verified" and state.anonim   # the recovered verify, not the dropped one
        assert any(a["action"] == "dropped" and "verified" in a["detail"] for a in audit)
        assert _chain(district) == _chain(hub)
        assert verify_log(district.storage, district.keys).problems == []
    finally:
        district.close()
