"""The admin console at /admin/: server-rendered HTML (aiohttp-jinja2), no JS build, no CDN.

It is a sub-application mounted at /admin so that one middleware guards every
console URL, including unknown ones:

- a request without a valid session is redirected to /admin/login (GET) or
  refused with 403 (any other method); only the login page and /admin/static/
  are public;
- every state-changing request (POST) must carry the session's CSRF token in
  the form field ``csrf`` (the login form: a double-submit token from a
  cookie set with the form), and is refused if an Origin or Referer header
  names another site;
- responses carry a strict Content-Security-Policy (no inline script or
  style, no framing), ``no-store`` caching and ``nosniff``.

The only account is ``admin`` with the node's ``admin_password`` from its
configuration, compared in constant time; repeated failures from one address
are throttled. Labels are in Bahasa Indonesia; ``?lang=en`` switches to
English (kept in a cookie). The pages live in console_pages (dashboard,
tickets), console_ops (disposition, dead letters) and console_conflicts.
"""
from __future__ import annotations

import hmac
import logging
import secrets
from pathlib import Path
from urllib.parse import quote, urlsplit

import aiohttp_jinja2
import jinja2
from aiohttp import web

from adapters.http import console_conflicts, console_ops, console_pages
from adapters.http.console_base import (LANG, PREFIX, SESSION, SESSIONS, SessionStore, cookie_name, page_error,
                                        redirect, render, same_token, t)
from adapters.http.console_i18n import LANGS
from adapters.http.problems import read_form

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
LOGIN = PREFIX + "/login"
STATIC = PREFIX + "/static/"
LANG_COOKIE = "simpul_lang"
LOGIN_COOKIE_SUFFIX = "_login"
USER = "admin"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")

routes = web.RouteTableDef()


def setup(app: web.Application) -> None:
    """Mount the console at /admin on the node's application."""
    console = web.Application(middlewares=[console_middleware])
    console[SESSIONS] = SessionStore()
    aiohttp_jinja2.setup(console, loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                         undefined=jinja2.StrictUndefined)
    console.router.add_routes(routes)
    console.router.add_routes(console_pages.routes)
    console.router.add_routes(console_ops.routes)
    console.router.add_routes(console_conflicts.routes)
    console.router.add_static("/static/", HERE / "static", name="static")
    console.router.add_route("*", "/{tail:.*}", not_found)
    app.add_subapp(PREFIX, console)
    app.router.add_get(PREFIX, to_console)


async def to_console(request: web.Request) -> web.Response:
    return redirect(PREFIX + "/")


# ------------------------------------------------------------------ middleware
def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _own_origins(request: web.Request) -> set[str]:
    origins = {f"{request.scheme}://{request.host}".lower()}
    public = request.config_dict["node"].settings.public_url
    if public:
        origins.add(_origin(public))
    return origins


def cross_site(request: web.Request) -> str | None:
    """Why this request looks cross-site (Origin, else Referer, names another site), or None."""
    origin = request.headers.get("Origin")
    if origin is not None:
        return None if origin.lower() in _own_origins(request) else f"Origin {origin!r}"
    referer = request.headers.get("Referer")
    if referer:
        return None if _origin(referer) in _own_origins(request) else f"Referer {referer!r}"
    return None


def _pick_lang(request: web.Request) -> tuple[str, bool]:
    asked = request.query.get("lang")
    if asked in LANGS:
        return asked, True
    kept = request.cookies.get(LANG_COOKIE)
    return (kept if kept in LANGS else "id"), False


def _refuse(request: web.Request, why: str) -> web.Response:
    log.warning("console: refused %s %s from %s: %s", request.method, request.path, request.remote, why)
    return page_error(request, 403, t(request, "refused", why=why))


@web.middleware
async def console_middleware(request: web.Request, handler):
    lang, switched = _pick_lang(request)
    request[LANG] = lang
    store: SessionStore = request.config_dict[SESSIONS]
    request[SESSION] = store.get(request.cookies.get(cookie_name(request)))
    response = await _guarded(request, handler)
    _harden(response)
    if switched:
        response.set_cookie(LANG_COOKIE, lang, path=PREFIX, max_age=365 * 86400, samesite="Strict")
    return response


async def _guarded(request: web.Request, handler) -> web.StreamResponse:
    session = request[SESSION]
    if request.method not in SAFE_METHODS:
        why = cross_site(request)
        if why:
            return _refuse(request, why)
        if request.path != LOGIN:
            if session is None:
                return _refuse(request, t(request, "no_session"))
            form = await read_form(request)
            if not same_token(form.get("csrf"), session.csrf):
                return _refuse(request, t(request, "bad_csrf"))
    elif session is None and request.path != LOGIN and not request.path.startswith(STATIC):
        target = request.path_qs if request.path.startswith(PREFIX + "/") else PREFIX + "/"
        return redirect(f"{LOGIN}?next={quote(target, safe='')}")
    return await handler(request)


def _harden(response: web.StreamResponse) -> None:
    h = response.headers
    h.setdefault("Content-Security-Policy", CSP)
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("Referrer-Policy", "same-origin")
    if not isinstance(response, web.FileResponse):
        h.setdefault("Cache-Control", "no-store")


# ------------------------------------------------------------------ login / logout
def _secure(request: web.Request) -> bool:
    return request.secure or request.config_dict["node"].settings.public_url.startswith("https:")


def _safe_next(value: str | None) -> str:
    """Only a path inside the console (never another site, nor //host)."""
    if value and value.startswith(PREFIX + "/") and not value.startswith("//") and "\\" not in value:
        return value
    return PREFIX + "/"


def _login_page(request: web.Request, error: str = "", status: int = 200, next_path: str | None = None
                ) -> web.Response:
    token = secrets.token_urlsafe(32)
    target = _safe_next(next_path if next_path is not None else request.query.get("next"))
    response = render(request, "login.html", {"login_csrf": token, "error": error, "next": target},
                      status=status)
    response.set_cookie(cookie_name(request) + LOGIN_COOKIE_SUFFIX, token, path=LOGIN, httponly=True,
                        samesite="Strict", secure=_secure(request), max_age=3600)
    return response


@routes.get("/login")
async def login_form(request: web.Request) -> web.Response:
    if request.get(SESSION) is not None:
        return redirect(PREFIX + "/")
    return _login_page(request)


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    form = await read_form(request)
    expected = request.cookies.get(cookie_name(request) + LOGIN_COOKIE_SUFFIX, "")
    if not expected or not same_token(form.get("csrf"), expected):
        return _refuse(request, t(request, "bad_csrf"))
    store: SessionStore = request.config_dict[SESSIONS]
    client = request.remote or "?"
    if store.locked_out(client):
        log.warning("console: login from %s throttled after repeated failures", client)
        return _login_page(request, t(request, "login_throttled"), 429, str(form.get("next", "")))
    node = request.config_dict["node"]
    user_ok = hmac.compare_digest(str(form.get("username", "")).encode(), USER.encode())
    pass_ok = hmac.compare_digest(str(form.get("password", "")).encode(), node.settings.admin_password.encode())
    if not (user_ok and pass_ok):
        store.failed_login(client)
        log.warning("console: failed login from %s", client)
        return _login_page(request, t(request, "login_failed"), 401, str(form.get("next", "")))
    store.logged_in(client)
    old = request.get(SESSION)
    if old is not None:
        store.drop(old.token)
    session = store.create(USER)
    log.info("console: admin logged in from %s", client)
    response = redirect(_safe_next(str(form.get("next", ""))))
    response.set_cookie(cookie_name(request), session.token, path=PREFIX, httponly=True, samesite="Strict",
                        secure=_secure(request))
    response.del_cookie(cookie_name(request) + LOGIN_COOKIE_SUFFIX, path=LOGIN)
    return response


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    request.config_dict[SESSIONS].drop(request[SESSION].token)
    response = redirect(LOGIN)
    response.del_cookie(cookie_name(request), path=PREFIX)
    return response


async def not_found(request: web.Request) -> web.Response:
    return page_error(request, 404, t(request, "not_found", path=request.path))
