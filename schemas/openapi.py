"""The OpenAPI 3.1 document served at /api/openapi.json.

Request schemas come from the pydantic models, so the document cannot drift
from what the handlers accept.
"""
from __future__ import annotations

from schemas.complaints import ActionIn, ComplaintIn
from schemas.identity import IdentityOpenIn

PROBLEM = {"description": "RFC 9457 problem details",
           "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
ERRORS = {str(s): PROBLEM for s in (400, 401, 403, 404, 409, 413, 415, 422)}


def _op(summary: str, roles: str, ok: dict, body: str | None = None, params: list | None = None) -> dict:
    op = {"summary": summary, "description": f"Roles: {roles}.", "security": [{"bearer": []}],
          "responses": {**ok, **ERRORS}}
    if body:
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}}}
    if params:
        op["parameters"] = params
    return op


TICKET_ID = {"name": "ticket_id", "in": "path", "required": True, "schema": {"type": "string"}}
JSON_OK = {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}


def document(server_url: str) -> dict:
    list_params = [{"name": n, "in": "query", "schema": {"type": "string"}} for n in
                   ("status", "institution", "origin", "category", "report_type", "region", "tracking_id",
                    "awaiting_disposition")]
    dead_params = [{"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                   {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 5000}},
                   {"name": "all", "in": "query", "schema": {"type": "boolean"}}]
    list_params += [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}}]
    return {
        "openapi": "3.1.0",
        "info": {"title": "Simpul node API", "version": "1",
                 "description": "A Simpul node of the SP4N-LAPOR! federation."},
        "servers": [{"url": server_url}],
        "paths": {
            "/api/v1/complaints": {
                "post": {**_op("File a complaint", "intake, operator, admin",
                               {"201": JSON_OK, "200": {"description": "Replay of an Idempotency-Key"}}, "ComplaintIn"),
                         "parameters": [{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}]},
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
                        "responses": {"200": JSON_OK, "422": PROBLEM}}},
            "/api/v1/sync/status": {"get": _op("Per-peer sync state", "operator, admin", {"200": JSON_OK})},
            "/api/v1/dead-letters": {"get": _op("Dead letters, by id, a page at a time (next: the after of the "
                                                "next page)", "admin", {"200": JSON_OK}, params=dead_params)},
            "/api/v1/dead-letters/replay": {"post": _op("Replay dead letters", "admin", {"200": JSON_OK})},
            "/api/v1/conflicts": {"get": _op("Sync conflicts", "operator, admin", {"200": JSON_OK})},
            "/api/v1/conflicts/{id}/resolve": {"post": _op("Resolve a conflict", "admin", {"201": JSON_OK})},
            "/api/v1/admin/nodes": {"get": _op("Node directory (hub)", "admin", {"200": JSON_OK}),
                                    "post": _op("Enroll a node (hub)", "admin", {"201": JSON_OK})},
            "/api/v1/disposition": {"get": _op("Disposition queue (hub)", "admin", {"200": JSON_OK})},
            "/federation/v1/keys": {"get": {"summary": "This node's public keys", "responses": {"200": JSON_OK}}},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": JSON_OK}}},
            "/readyz": {"get": {"summary": "Readiness (database reachable)", "responses": {"200": JSON_OK}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "ComplaintIn": ComplaintIn.model_json_schema(ref_template="#/components/schemas/{model}"),
                "ActionIn": ActionIn.model_json_schema(ref_template="#/components/schemas/{model}"),
                "IdentityOpenIn": IdentityOpenIn.model_json_schema(ref_template="#/components/schemas/{model}"),
                "Reporter": ComplaintIn.model_json_schema(ref_template="#/components/schemas/{model}")["$defs"]["Reporter"],
                "Problem": {"type": "object", "required": ["type", "title", "status", "detail"],
                            "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                                           "status": {"type": "integer"}, "detail": {"type": "string"},
                                           "errors": {"type": "array"}}},
            },
        },
    }
