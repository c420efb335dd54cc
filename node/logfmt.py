"""Log lines stay lines: what a peer or a client wrote cannot start a line of its own.

Log messages carry text that came from outside: a peer's reason for refusing
an event, an operator's name, an event id someone claims. A line break in one
would let its author write what looks like a line of ours (a forged warning,
a forged "identity opened"), and a terminal escape would reach the screen of
whoever tails the log. The formatter escapes control characters in the
message (``\\n``, ``\\r``, ``\\x1b``, ...), whichever field brought them; a
traceback, which ``logging`` appends after the message, keeps its lines.

A request that is not valid HTTP (a NUL in a header, a header line over
8 KiB, a bad Content-Length) is refused by aiohttp's parser with a 400 before
any handler runs, and aiohttp logs it as an error with a traceback. It is the
client's mistake, not the node's: ``MalformedRequests`` makes it one warning
line that says what was wrong. So is a body aiohttp cannot decode (a
Content-Encoding that does not match it): the handler answers it 400, and
aiohttp, finding the rest of it unreadable, logs that and closes the
connection.
"""
from __future__ import annotations

import logging
import re

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import RequestPayloadError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_BREAKING = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")   # C0 but tab, DEL, and Unicode's line breaks
_NAMED = {"\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match) -> str:
    c = match.group()
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


class OneLineFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = _BREAKING.sub(_escape, record.message)
        return super().formatMessage(record)


def payload_reason(exc: RequestPayloadError) -> str:
    """What aiohttp found wrong with a body, in one line ("Can not decode content-encoding: gzip")."""
    return str(getattr(exc.__cause__, "message", "") or exc).strip().splitlines()[-1].strip()


class MalformedRequests(logging.Filter):
    """On ``aiohttp.server``: a request refused by the HTTP parser, or whose body cannot be decoded, becomes
    one warning, without traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg, record.args = "malformed HTTP request from %s refused (%s): %s", (remote, exc.code,
                                                                                           exc.message)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        elif isinstance(exc, RequestPayloadError):
            record.msg, record.args = ("a request's body could not be decoded (%s); connection closed",
                                       (payload_reason(exc),))
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        return True


def configure(level: str | int) -> None:
    """The node's logging: one line per message, on standard error."""
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter(FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
    logging.getLogger("aiohttp.server").addFilter(MalformedRequests())
