"""The OpenAPI 3.1 document served at /api/openapi.json.

Request schemas come from the pydantic models, so the document cannot drift
from what the handlers accept; the two bodies checked by hand (a conflict's
resolution, a replay) are written out here. tests/integration/test_api.py
checks that every route of the API is in the document.
"""
from __future__ import annotations

import functools

from schemas.complaints import ActionIn, ComplaintIn
from schemas.directory import EnrollIn
from schemas.identity import IdentityOpenIn
from schemas.text import CONTROL_MESSAGE, ONE_LINE_SCHEMA, TEXT_SCHEMA

PROBLEM = {"description": "RFC 9457 problem details",
           "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
ERRORS = {str(s): PROBLEM for s in (400, 401, 403, 404, 409, 413, 415, 422)}


def _op(summary: str, roles: str, ok: dict, body: str | None = None, params: list | None = None,
        body_required: bool = True) -> dict:
    op = {"summary": summary, "description": f"Roles: {roles}.", "security": [{"bearer": []}],
          "responses": {**ok, **ERRORS}}
    if body:
        op["requestBody"] = {"required": body_required,
                             "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}}}
    if params:
        op["parameters"] = params
    return op


def _path(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, schema: dict | None = None) -> dict:
    return {"name": name, "in": "query", "schema": schema or {"type": "string"}}


def _page(max_limit: int, name: str = "offset", most: int = 10**9) -> list[dict]:
    return [_query("limit", {"type": "integer", "minimum": 1, "maximum": max_limit}),
            _query(name, {"type": "integer", "minimum": 0, "maximum": most})]


TICKET_ID = _path("ticket_id")
JSON_OK = {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
ONE_LINE = {"type": "string", "minLength": 1, "maxLength": 100, "description": "one line", **ONE_LINE_SCHEMA}
RESOLVE_IN = {
    "type": "object", "additionalProperties": False, "required": ["reason"],
    "description": "Either a winning side or a merged state, and why.",
    "oneOf": [{"required": ["winner"], "not": {"required": ["state"]}},
              {"required": ["state"], "not": {"required": ["winner"]}}],
    "properties": {
        "winner": {"enum": ["A", "B"]},
        "state": {"type": "object", "description": "the merged state: status, institution, title, body, ..."},
        "reason": {"type": "string", "minLength": 1, "maxLength": 2000, "description": CONTROL_MESSAGE, **TEXT_SCHEMA},
        "actor": ONE_LINE},
}
REPLAY_IN = {"type": "object", "additionalProperties": False,
             "description": "The dead letters to replay; no body (or {}) replays them all.",
             "properties": {"ids": {"type": "array", "minItems": 1,
                                    "items": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}}}


@functools.cache
def _model_schemas() -> dict[str, dict]:
    """The request bodies' schemas from their models, and the models they nest (``$defs``), once per process:
    pydantic takes about 20 ms to build them, which each request for the document used to spend."""
    out: dict[str, dict] = {}
    for model in (ComplaintIn, ActionIn, IdentityOpenIn, EnrollIn):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        out[model.__name__] = schema
        out.update(schema.get("$defs", {}))
    return out


def document(server_url: str) -> dict:
    list_params = [_query(n) for n in ("status", "institution", "origin", "category", "report_type", "region",
                                       "tracking_id", "awaiting_disposition")] + _page(500)
    dead_params = [*_page(5000, "after", 2**62), _query("all", {"type": "boolean"})]
    public_params = [_query(n) for n in ("status", "category", "region", "institution")] + _page(200)
    idempotency = {"name": "Idempotency-Key", "in": "header",
                   "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[ -~]+$"},
                   "description": "the channel's key for a retried filing: 1 to 200 printable ASCII characters"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Simpul node API", "version": "1",
                 "description": "A Simpul node of the SP4N-LAPOR! federation."},
        "servers": [{"url": server_url}],
        "paths": {
            "/api/v1/complaints": {
                "post": {**_op("File a complaint", "intake, operator, admin",
                               {"201": JSON_OK, "200": {"description": "Replay of an Idempotency-Key"}}, "ComplaintIn"),
                         "parameters": [idempotency]},
                "get": _op("List tickets", "operator, admin", {"200": JSON_OK}, params=list_params),
            },
            "/api/v1/complaints/{ticket_id}": {"get": _op("Read a ticket", "any", {"200": JSON_OK}, params=[TICKET_ID])},
            "/api/v1/complaints/{ticket_id}/events": {
                "get": _op("The ticket's signed events, exactly as stored", "any", {"200": JSON_OK}, params=[TICKET_ID]),
                "post": _op("An operator's action", "operator, admin", {"201": JSON_OK}, "ActionIn", [TICKET_ID]),
            },
            "/api/v1/complaints/{ticket_id}/identity": {
                "post": _op("Open the reporter's identity (audited)", "operator", {"200": JSON_OK}, "IdentityOpenIn",
                            [TICKET_ID])},
            "/api/v1/complaints/{ticket_id}/audit": {
                "get": _op("Who opened the identity, when and why", "admin", {"200": JSON_OK}, params=[TICKET_ID])},
            "/api/v1/complaints/{ticket_id}/messages": {
                "get": _op("Follow-ups for the reporter (origin node)", "intake, operator, admin", {"200": JSON_OK},
                           params=[TICKET_ID])},
            "/api/v1/public/complaints": {
                "get": {"summary": "Public listing: never rahasia reports, never identities", "security": [],
                        "parameters": public_params, "responses": {"200": JSON_OK, "422": PROBLEM}}},
            "/api/v1/sync/status": {"get": _op("Per-peer sync state", "operator, admin", {"200": JSON_OK})},
            "/api/v1/dead-letters": {"get": _op("Dead letters, by id, a page at a time (next: the after of the "
                                                "next page)", "admin", {"200": JSON_OK}, params=dead_params)},
            "/api/v1/dead-letters/replay": {"post": _op("Replay dead letters", "admin", {"200": JSON_OK}, "ReplayIn",
                                                        body_required=False)},
            "/api/v1/conflicts": {"get": _op("Sync conflicts", "operator, admin", {"200": JSON_OK},
                                             params=[_query("status", {"enum": ["open", "resolved"]})])},
            "/api/v1/conflicts/{id}": {"get": _op("A conflict and both of its sides", "operator, admin",
                                                  {"200": JSON_OK}, params=[_path("id")])},
            "/api/v1/conflicts/{id}/resolve": {"post": _op("Resolve a conflict", "admin", {"201": JSON_OK},
                                                           "ResolveIn", [_path("id")])},
            "/api/v1/admin/nodes": {"get": _op("Node directory (hub)", "admin", {"200": JSON_OK}),
                                    "post": _op("Enroll a node (hub)", "admin", {"201": JSON_OK}, "EnrollIn")},
            "/api/v1/admin/nodes/{node_id}/revoke": {"post": _op("Revoke a node: its keys are refused from now on",
                                                                 "admin", {"200": JSON_OK}, params=[_path("node_id")])},
            "/api/v1/disposition": {"get": _op("Disposition queue (hub)", "operator, admin", {"200": JSON_OK},
                                                params=_page(500))},
            "/federation/v1/keys": {"get": {"summary": "This node's public keys", "responses": {"200": JSON_OK}}},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": JSON_OK}}},
            "/readyz": {"get": {"summary": "Readiness (database reachable)", "responses": {"200": JSON_OK}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                **_model_schemas(),
                "ResolveIn": RESOLVE_IN,
                "ReplayIn": REPLAY_IN,
                "Problem": {"type": "object", "required": ["type", "title", "status", "detail"],
                            "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                                           "status": {"type": "integer"}, "detail": {"type": "string"},
                                           "errors": {"type": "array"}}},
            },
        },
    }
