"""Group commit at intake (node.intake, ComplaintService.file_many) on a real SQLite file.

Concurrent filings share a transaction; each request must still get exactly the
answer it would get alone, in particular around Idempotency-Keys.
"""
from __future__ import annotations

import asyncio

import pytest

from adapters.http.app import build_app
from node.errors import Conflict
from node.verify import verify_log
from schemas.complaints import ComplaintIn


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def node(tmp_path, make_node, sample_dir):
    return make_node(tmp_path, federation=sample_dir / "federation.json")


@pytest.fixture
def bodies(sample_complaints):
    return [c for c in sample_complaints if c.get("reporter")]


async def test_a_burst_of_filings_is_written_as_it_would_be_one_by_one(aiohttp_client, node, bodies):
    client = await aiohttp_client(build_app(node))
    token = node.settings.tokens.intake

    async def post(i, body):
        resp = await client.post("/api/v1/complaints", json=body, headers={**auth(token), "Idempotency-Key": f"b-{i}"})
        return resp.status, await resp.json()

    answers = await asyncio.gather(*(post(i, b) for i, b in enumerate(bodies)))
    assert [status for status, _ in answers] == [201] * len(bodies)
    numbers = sorted(int(data["tracking_id"].rsplit("-", 1)[1]) for _, data in answers)
    assert numbers == list(range(1, len(bodies) + 1))              # no gap, no duplicate
    with node.storage.read() as tx:
        assert tx.count_events() == len(bodies)
        assert tx.chain_head(node.node_id)[0] == len(bodies)
        assert tx.outbox_depth(node.hub_id, 0) == len(bodies)
    assert verify_log(node.storage, node.keys).ok                   # one unbroken signed chain

    # the same keys again, all at once: the same tickets, nothing new
    again = await asyncio.gather(*(post(i, b) for i, b in enumerate(bodies)))
    assert [status for status, _ in again] == [200] * len(bodies)
    assert [d["ticket_id"] for _, d in again] == [d["ticket_id"] for _, d in answers]
    with node.storage.read() as tx:
        assert tx.count_events() == len(bodies)


def test_keys_repeated_inside_one_batch(node, bodies):
    first, other = (ComplaintIn.model_validate(b) for b in bodies[:2])
    out = node.complaints.file_many([(first, "k1"), (first, "k1"), (other, "k1"), (other, "k2"), (first, None)])
    assert out[0].created and not out[1].created
    assert out[1].state.ticket_id == out[0].state.ticket_id
    assert isinstance(out[2], Conflict)                              # same key, another complaint
    assert out[3].created and out[4].created
    assert len({o.state.ticket_id for o in (out[0], out[3], out[4])}) == 3
    with node.storage.read() as tx:
        assert tx.count_events() == 3
        assert tx.idempotency_get("intake:k1")[1] == out[0].state.ticket_id


async def test_one_failing_filing_does_not_take_its_batch_down(aiohttp_client, node, bodies, monkeypatch):
    """A bug that one complaint triggers fails the batch; its requests are then filed one by one."""
    client = await aiohttp_client(build_app(node))
    token = node.settings.tokens.intake
    original = node.complaints._file_one

    def file_one(tx, complaint, ticket_id, tracking_id):
        if complaint.title == bodies[3]["title"]:
            raise RuntimeError("a bug this complaint triggers")
        return original(tx, complaint, ticket_id, tracking_id)
    monkeypatch.setattr(node.complaints, "_file_one", file_one)

    bad = await _only_one_refused(client, token, node, bodies[:8], 3)
    assert bad.content_type == "application/problem+json"


async def test_a_filing_the_database_refuses_does_not_take_its_batch_down(aiohttp_client, node, bodies,
                                                                          monkeypatch):
    """The database refusing one complaint's rows (as PostgreSQL refuses a value it cannot store) fails the
    batch's transaction; its requests are then filed one by one, and only that one is refused."""
    from sqlalchemy import text
    client = await aiohttp_client(build_app(node))
    token = node.settings.tokens.intake
    original = node.complaints._file_one

    def file_one(tx, complaint, ticket_id, tracking_id):
        if complaint.title == bodies[2]["title"]:  # a real constraint violation, from SQLite itself
            tx.conn.execute(text("INSERT INTO meta (key, value) VALUES ('twice', '1'), ('twice', '2')"))
        return original(tx, complaint, ticket_id, tracking_id)
    monkeypatch.setattr(node.complaints, "_file_one", file_one)

    bad = await _only_one_refused(client, token, node, bodies[:8], 2)
    assert "UNIQUE" in (await bad.json())["detail"]


async def _only_one_refused(client, token, node, bodies, bad: int):
    """File ``bodies`` at once; only number ``bad`` fails (500), the others are filed and verify. Returns
    the failed response."""
    responses = await asyncio.gather(*(client.post("/api/v1/complaints", json=b, headers=auth(token))
                                       for b in bodies))
    statuses = [r.status for r in responses]
    assert statuses[bad] == 500 and statuses[:bad] + statuses[bad + 1:] == [201] * (len(bodies) - 1)
    with node.storage.read() as tx:
        assert tx.count_events() == len(bodies) - 1
    assert verify_log(node.storage, node.keys).ok
    return responses[bad]
