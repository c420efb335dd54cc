"""Shared parts of the admin console: sessions, rendering, flash messages.

Sessions are server-side: the browser holds only a random token (cookie
``simpul_<node id>``, HttpOnly, SameSite=Strict, Path=/admin; the node id is in
the name because cookies ignore ports, so several nodes on one host keep
separate sessions). Each session has its own CSRF token, an idle timeout and
an absolute lifetime. The store is in memory: one process serves a node's
console (behind several hub processes, route /admin/ to one of them, or use
sticky sessions); a restart logs everyone out.
"""
from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import aiohttp_jinja2
from aiohttp import web

from adapters.http.console_i18n import LANGS, label, translate

PREFIX = "/admin"
# Typed keys where this aiohttp has them (AppKey since 3.9, RequestKey since 3.12).
_RequestKey = getattr(web, "RequestKey", None)
LANG = _RequestKey("console_lang", str) if _RequestKey else "console_lang"
SESSION = _RequestKey("console_session", object) if _RequestKey else "console_session"
IDLE_S = 30 * 60
MAX_AGE_S = 12 * 3600
LOGIN_FAILURES = 10          # per client address ...
LOGIN_WINDOW_S = 15 * 60     # ... within this window, then refused until they age out


@dataclass
class Session:
    token: str
    csrf: str
    user: str
    created: float
    seen: float
    flash: list[tuple[str, str]] = field(default_factory=list)


class SessionStore:
    """Live console sessions and recent login failures, in this process's memory."""

    def __init__(self, now: Callable[[], float] = time.time):
        self.now = now
        self._sessions: dict[str, Session] = {}
        self._failures: dict[str, list[float]] = {}

    def create(self, user: str) -> Session:
        self._prune()
        t = self.now()
        s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), user, t, t)
        self._sessions[s.token] = s
        return s

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        s = self._sessions.get(token)
        if s is None:
            return None
        t = self.now()
        if t - s.seen > IDLE_S or t - s.created > MAX_AGE_S:
            del self._sessions[token]
            return None
        s.seen = t
        return s

    def drop(self, token: str | None) -> None:
        self._sessions.pop(token or "", None)

    def _prune(self) -> None:
        t = self.now()
        for token in [k for k, s in self._sessions.items() if t - s.seen > IDLE_S or t - s.created > MAX_AGE_S]:
            del self._sessions[token]

    # -- login throttling ------------------------------------------------------------
    def locked_out(self, client: str) -> bool:
        t = self.now()
        recent = [f for f in self._failures.get(client, []) if t - f < LOGIN_WINDOW_S]
        self._failures[client] = recent
        return len(recent) >= LOGIN_FAILURES

    def failed_login(self, client: str) -> None:
        self._failures.setdefault(client, []).append(self.now())

    def logged_in(self, client: str) -> None:
        self._failures.pop(client, None)


SESSIONS = web.AppKey("console_sessions", SessionStore)


def whole_number(raw: object, hi: int) -> int | None:
    """A form or query value as an integer in 1..``hi``, else None (``str.isdigit`` alone also takes
    digits such as "²" that ``int`` refuses, and an unbounded number overflows the database's integers)."""
    text = str(raw)
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    value = int(text)
    return value if 1 <= value <= hi else None


def same_token(given: object, expected: str) -> bool:
    return isinstance(given, str) and bool(given) and hmac.compare_digest(given.encode(), expected.encode())


def cookie_name(request: web.Request) -> str:
    return f"simpul_{request.config_dict['node'].node_id}"


def lang_of(request: web.Request) -> str:
    return request.get(LANG, "id")


def t(request: web.Request, key: str, **fmt) -> str:
    return translate(lang_of(request), key, **fmt)


def flash(request: web.Request, kind: str, message: str) -> None:
    """A one-time message shown on the next page (kind: ok | error | info)."""
    session = request.get(SESSION)
    if session is not None:
        session.flash.append((kind, message))


def redirect(location: str) -> web.Response:
    """303 See Other: after a POST the browser GETs the result page."""
    return web.Response(status=303, headers={"Location": location})


def local_time(epoch_s: float | None) -> str:
    if not epoch_s:
        return ""
    return datetime.fromtimestamp(epoch_s).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def hlc_time(hlc: str | None) -> str:
    if not hlc:
        return ""
    return local_time(int(hlc.partition(".")[0]) / 1000)


def ago(request: web.Request, epoch_s: float | None) -> str:
    if not epoch_s:
        return t(request, "never")
    secs = max(0, int(time.time() - epoch_s))
    if secs < 60:
        return t(request, "ago_s", n=secs)
    if secs < 3600:
        return t(request, "ago_m", n=secs // 60)
    if secs < 86400:
        return t(request, "ago_h", n=secs // 3600)
    return t(request, "ago_d", n=secs // 86400)


def render(request: web.Request, template: str, context: dict | None = None, status: int = 200) -> web.Response:
    node = request.config_dict["node"]
    session = request.get(SESSION)
    messages = list(session.flash) if session else []
    if session:
        session.flash.clear()
    lang = lang_of(request)
    ctx = {
        "t": lambda key, **fmt: translate(lang, key, **fmt),
        "label": lambda prefix, value: label(lang, prefix, value),
        "lang": lang, "langs": LANGS, "path": request.path, "prefix": PREFIX,
        "node": {"id": node.node_id, "role": node.role, "name": node.settings.name},
        "session": session, "csrf": session.csrf if session else "", "messages": messages,
        "local_time": local_time, "hlc_time": hlc_time, "ago": lambda s: ago(request, s),
        **(context or {}),
    }
    return aiohttp_jinja2.render_template(template, request, ctx, status=status)


def page_error(request: web.Request, status: int, message: str) -> web.Response:
    return render(request, "message.html", {"title": t(request, f"http_{status}"), "message": message},
                  status=status)


def unavailable(request: web.Request, what: str) -> web.Response:
    return render(request, "message.html", {"title": t(request, "unavailable"),
                                            "message": t(request, "unavailable_detail", what=what)})
