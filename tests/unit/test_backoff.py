import pytest

from node.backoff import is_retryable_status, next_delay


@pytest.mark.parametrize("status,retry", [
    (None, True), (408, True), (429, True), (500, True), (502, True), (503, True), (599, True),
    (400, False), (401, False), (403, False), (422, False), (404, False), (200, False),
])
def test_retry_policy(status, retry):
    assert is_retryable_status(status) is retry


@pytest.mark.parametrize("failures,rand,expected", [
    (0, 0.5, 0.0),
    (1, 0.0, 0.5), (1, 1.0, 1.0),
    (2, 1.0, 2.0), (3, 1.0, 4.0),
    (10, 1.0, 60.0), (10, 0.0, 30.0),   # capped
    (1000, 1.0, 60.0),
])
def test_backoff_is_exponential_capped_and_jittered(failures, rand, expected):
    assert next_delay(failures, base=1.0, cap=60.0, rand=lambda: rand) == pytest.approx(expected)
