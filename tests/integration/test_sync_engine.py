"""The sync engine's bookkeeping on a real node database: pruning and dead-letter replay."""
from node.sync import SyncEngine


class NoTransport:
    async def close(self):
        pass


def test_prune_drops_only_acknowledged_rows_older_than_the_retention(make_node, tmp_path, sample_complaints):
    from schemas.complaints import ComplaintIn
    node = make_node(tmp_path)
    for body in sample_complaints[:3]:
        node.complaints.file(ComplaintIn.model_validate(body))
    engine = SyncEngine(node, NoTransport(), receiver=None, now=lambda: 10**10)
    with node.storage.transaction() as tx:
        ids = [pos for pos, _ in tx.outbox_batch("nasional", 0, 10)]
        tx.advance_peer("nasional", acked=ids[1])
    assert engine.prune(retention_s=3600) == 2            # the third is not acknowledged yet
    with node.storage.read() as tx:
        assert [pos for pos, _ in tx.outbox_batch("nasional", 0, 10)] == ids[2:]
    assert SyncEngine(node, NoTransport(), None).prune(retention_s=3600) == 0   # too recent


def test_replay_requeues_dead_letters_once(make_node, tmp_path, sample_complaints):
    from schemas.complaints import ComplaintIn
    node = make_node(tmp_path)
    ticket = node.complaints.file(ComplaintIn.model_validate(sample_complaints[0])).state.ticket_id
    with node.storage.transaction() as tx:
        event_id = tx.ticket_events(ticket)[0].id
        tx.add_dead_letters("nasional", [(event_id, "422 from peer")])
        before = tx.outbox_depth("nasional", 0)
    engine = SyncEngine(node, NoTransport(), None)
    assert engine.replay() == 1
    assert engine.replay() == 0
    with node.storage.read() as tx:
        assert tx.outbox_depth("nasional", 0) == before + 1
        assert tx.dead_letters() == []
