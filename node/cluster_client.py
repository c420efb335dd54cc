"""A small, synchronous JSON client for one node's HTTP API (stdlib urllib).

Used by the cluster harness (node.cluster), ``simpul demo``, the acceptance
tests and scripts. It speaks only the public API with a bearer token; errors
come back as ``ApiError`` carrying the status and the RFC 9457 problem body.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

# Keys of a sample complaint (complaints.jsonl) that describe the test case, not the complaint.
SAMPLE_ONLY = ("filed_at", "expected_institution", "note")


class ApiError(Exception):
    def __init__(self, method: str, url: str, status: int, body):
        detail = body.get("detail") if isinstance(body, dict) else body
        super().__init__(f"{method} {url} -> {status}: {detail}")
        self.status = status
        self.body = body


def complaint_body(sample: dict) -> dict:
    """The API body for a sample complaint: drop the fields that only the test data has."""
    return {k: v for k, v in sample.items() if k not in SAMPLE_ONLY}


class NodeClient:
    def __init__(self, base_url: str, token: str, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, body: dict | None = None, headers: dict | None = None):
        """Return (status, parsed JSON or text); raise ApiError for 4xx/5xx."""
        url = self.base_url + path
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.status, _decode(resp.read())
        except urllib.error.HTTPError as exc:
            raise ApiError(method, url, exc.code, _decode(exc.read())) from None

    def get(self, path: str):
        return self.request("GET", path)[1]

    def post(self, path: str, body: dict | None = None, headers: dict | None = None):
        return self.request("POST", path, body if body is not None else {}, headers)[1]

    # -- the API, by name ----------------------------------------------------------
    def file(self, complaint: dict, idempotency_key: str | None = None) -> dict:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self.post("/api/v1/complaints", complaint_body(complaint), headers)

    def ticket(self, ticket_id: str) -> dict:
        return self.get(f"/api/v1/complaints/{ticket_id}")

    def find(self, ticket_id: str) -> dict | None:
        """The ticket, or None if this node does not hold it."""
        try:
            return self.ticket(ticket_id)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def events(self, ticket_id: str) -> list[dict]:
        return self.get(f"/api/v1/complaints/{ticket_id}/events")["events"]

    def event_ids(self, ticket_id: str) -> set[str]:
        try:
            return {e["id"] for e in self.events(ticket_id)}
        except ApiError as exc:
            if exc.status == 404:
                return set()
            raise

    def tickets(self, **filters) -> list[dict]:
        """Every ticket matching the filters (all pages)."""
        return list(self.iter_tickets(**filters))

    def iter_tickets(self, **filters) -> Iterator[dict]:
        offset = 0
        while True:
            query = "&".join(f"{k}={v}" for k, v in {**filters, "limit": 500, "offset": offset}.items())
            page = self.get(f"/api/v1/complaints?{query}")
            yield from page["items"]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return

    def act(self, ticket_id: str, action: str, **fields) -> dict:
        return self.post(f"/api/v1/complaints/{ticket_id}/events", {"action": action, **fields})

    def sync_status(self) -> dict:
        return self.get("/api/v1/sync/status")

    def disposition(self) -> list[dict]:
        return self.get("/api/v1/disposition")["items"]

    def healthy(self) -> bool:
        try:
            req = urllib.request.Request(self.base_url + "/healthz")
            with urllib.request.urlopen(req, timeout=1.0) as resp:
                return resp.status == 200
        except (OSError, urllib.error.URLError):
            return False


def _decode(raw: bytes):
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")
