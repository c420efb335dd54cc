"""Unit tests for adapters.http.problems: errors as RFC 9457 problem responses."""
from __future__ import annotations

import json

from adapters.http.problems import from_error
from node.errors import StorageError


def test_a_database_that_is_unreachable_locked_or_full_is_a_503_to_retry():
    """Before, a full disk answered every complaint with a 500, which a channel takes for a bug, not for a
    reason to retry."""
    passing = from_error(StorageError("database error: database or disk is full"))
    assert passing.status == 503 and passing.headers["Retry-After"] == "5"
    assert json.loads(passing.body)["detail"] == "database error: database or disk is full"
    refused = from_error(StorageError("database error: value too long", refused=True))
    assert refused.status == 500 and "Retry-After" not in refused.headers
