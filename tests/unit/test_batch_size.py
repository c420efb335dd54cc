"""``schemas.events.within_bytes``: how much of an outbox batch one push, or one pull's answer, carries."""
from schemas.events import within_bytes


class Wire:
    def __init__(self, text: str):
        self.text = text

    def canonical_wire(self) -> str:
        return self.text


def batch(*texts: str) -> list:
    return [(n + 1, Wire(t)) for n, t in enumerate(texts)]


def test_a_batch_under_the_limit_goes_whole():
    items = batch("a" * 40, "b" * 40, "c" * 20)
    assert within_bytes(items, limit=100) == items


def test_a_batch_is_cut_before_the_event_that_would_pass_the_limit():
    items = batch("a" * 40, "b" * 40, "c" * 21, "d")
    assert [pos for pos, _ in within_bytes(items, limit=100)] == [1, 2]


def test_text_beyond_ascii_counts_its_utf8_bytes():
    items = batch("é" * 30, "a" * 30)    # 60 bytes, though 30 characters
    assert [pos for pos, _ in within_bytes(items, limit=80)] == [1]


def test_an_event_longer_than_the_limit_still_goes_alone():
    items = batch("a" * 500, "b")
    assert [pos for pos, _ in within_bytes(items, limit=100)] == [1]
    assert within_bytes([], limit=100) == []
