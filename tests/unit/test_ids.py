"""node.ids: ticket ids keep uuid4().hex's shape and grow with time."""
import time
import uuid

from node.ids import ticket_id


def test_ticket_ids_are_uuid7_hex_ordered_by_time_and_unique():
    first = [ticket_id() for _ in range(1000)]
    time.sleep(0.002)
    later = ticket_id()
    assert all(len(t) == 32 and int(t, 16) >= 0 for t in first)
    assert {uuid.UUID(t).version for t in first} == {7}
    assert {uuid.UUID(t).variant for t in first} == {uuid.RFC_4122}
    assert len(set(first)) == 1000
    assert later > max(first)
    assert abs(int(later[:12], 16) - time.time() * 1000) < 5000   # the first 48 bits: Unix milliseconds
