"""RFC 9457 problem details: every error the HTTP side returns.

The middleware turns ``SimpulError`` (and aiohttp's own HTTP errors, such as an
oversized body) into ``application/problem+json`` with a type URI, a title, the
status and a ``detail`` that says what is wrong. Anything unexpected is logged
with its traceback and answered as a 500 problem without internals.
"""
from __future__ import annotations

import json
import logging
import re

import orjson
import pydantic
from aiohttp import web

from node.errors import BadRequest, PayloadTooLarge, SimpulError, UnsupportedMediaType, ValidationError
from node.logfmt import payload_reason

log = logging.getLogger(__name__)
PROBLEM_BASE = "https://simpul.example/problems/"
CONTENT_TYPE = "application/problem+json"


def problem(status: int, slug: str, title: str, detail: str, **extra) -> web.Response:
    body = {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail, **extra}
    return web.Response(status=status, body=json.dumps(body, ensure_ascii=False).encode(),
                        content_type=CONTENT_TYPE)


def from_error(exc: SimpulError) -> web.Response:
    extra = {"errors": exc.errors} if isinstance(exc, ValidationError) and exc.errors else {}
    response = problem(exc.status, exc.slug, exc.title, str(exc), **extra)
    if exc.status == 503:
        response.headers["Retry-After"] = "5"
    return response


def validation_error(exc: pydantic.ValidationError) -> ValidationError:
    errors = [{"field": ".".join(str(p) for p in e["loc"]) or "(body)", "message": e["msg"]} for e in exc.errors()]
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return ValidationError(summary, errors)


async def read_json(request: web.Request) -> object:
    """The request body as JSON, or a clear 400/413/415."""
    if request.content_length is not None and request.content_length > request.app["max_body_bytes"]:
        raise PayloadTooLarge(f"body of {request.content_length} bytes exceeds the limit of "
                              f"{request.app['max_body_bytes']} bytes")
    ctype = request.content_type
    if ctype not in ("application/json", "application/merge-patch+json"):
        raise UnsupportedMediaType(f"Content-Type must be application/json, not {ctype or 'missing'}")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise PayloadTooLarge(f"body exceeds the limit of {request.app['max_body_bytes']} bytes") from exc
    except web.RequestPayloadError as exc:
        raise unreadable(exc) from exc
    if len(raw) > request.app["max_body_bytes"]:  # chunked: no Content-Length to check up front
        raise PayloadTooLarge(f"body of {len(raw)} bytes exceeds the limit of {request.app['max_body_bytes']} bytes")
    try:
        return orjson.loads(raw)
    except (UnicodeDecodeError, orjson.JSONDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc


def unreadable(exc: web.RequestPayloadError) -> BadRequest:
    """aiohttp could not decode the body as it came (a Content-Encoding that does not match it, say)."""
    return BadRequest(f"the body cannot be read: {payload_reason(exc)}")


async def read_form(request: web.Request):
    """A console form's fields, or a clear 400 for a body that is not the form it claims to be (an unknown
    charset, a broken multipart, bytes that are not text). Any other content type gives no fields."""
    try:
        return await request.post()
    except web.RequestPayloadError as exc:
        raise unreadable(exc) from exc
    except (ValueError, LookupError) as exc:   # (UnicodeDecodeError is a ValueError)
        raise BadRequest(f"the form cannot be read: {exc}") from exc


_INTEGER = re.compile(r"-?[0-9]{1,19}")   # ASCII digits only: int() also takes "1_0", " 5" and "٣"


def query_int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    """Query parameter ``name`` as an integer in ``lo``..``hi``, ``default`` if absent, else a 422."""
    raw = request.query.get(name)
    if raw is None:
        return default
    if not _INTEGER.fullmatch(raw):
        raise ValidationError(f"{name} must be an integer, not {raw!r}")
    value = int(raw)
    if not lo <= value <= hi:
        raise ValidationError(f"{name} must be between {lo} and {hi}")
    return value


def only_query(request: web.Request, *allowed: str) -> None:
    """A 422 for a query parameter the route does not take: a misspelt filter must not return everything."""
    unknown = set(request.query) - set(allowed)
    if unknown:
        takes = f"it takes {', '.join(allowed)}" if allowed else "it takes none"
        raise ValidationError(f"unknown query parameter(s): {', '.join(sorted(unknown))}; {takes}")


def query_bool(request: web.Request, name: str) -> bool:
    """Query parameter ``name`` as a boolean (true/false, 1/0; absent is false), else a 422."""
    raw = request.query.get(name)
    if raw is None or raw in ("0", "false"):
        return False
    if raw in ("1", "true"):
        return True
    raise ValidationError(f"{name} must be true or false (or 1 or 0), not {raw!r}")


def parse(model: type[pydantic.BaseModel], data: object):
    if not isinstance(data, dict):
        raise ValidationError("body must be a JSON object")
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise validation_error(exc) from exc


@web.middleware
async def problem_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except SimpulError as exc:
        if exc.status >= 500:
            log.error("request %s %s failed: %s", request.method, request.path, exc)
        return from_error(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = problem(exc.status, "http-" + str(exc.status), exc.reason, exc.text or exc.reason)
        if "Allow" in exc.headers:   # a 405 must say which methods the resource has (RFC 9110)
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except ConnectionResetError as exc:   # the client left mid-request (a timed-out push): nobody to answer
        log.warning("%s %s: the client went away before the request was read: %s", request.method, request.path,
                    exc)
        return problem(400, "bad-request", "Bad Request", "the connection was lost before the request was read")
    except Exception:  # noqa: BLE001 - last line of defence: log it, never leak internals
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem(500, "internal", "Internal error", "an unexpected error occurred; see the node's log")
