"""node.logfmt: what came from outside cannot write a log line of its own."""
from __future__ import annotations

import contextlib
import logging
import sys

from node.logfmt import FORMAT, OneLineFormatter


def record(msg: str, *args, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("node.sync", logging.ERROR, __file__, 1, msg, args, exc_info)


def test_a_line_break_or_escape_in_an_argument_is_escaped():
    line = OneLineFormatter(FORMAT).format(record(
        "event %s dead-lettered for %s: %s", "e1", "kab-ppu",
        "bad\n2026-11-28 00:00:00,000 WARNING node.identity: forged\r\x1b[2J\u2028end"))
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\u2028" not in line
    assert line.endswith("bad\\n2026-11-28 00:00:00,000 WARNING node.identity: forged\\r\\x1b[2J\\u2028end")


def test_tabs_and_other_text_are_kept():
    line = OneLineFormatter("%(message)s").format(record("pelapor %s", "Sri\tWahyuningsih, Tanah Grogot é"))
    assert line == "pelapor Sri\tWahyuningsih, Tanah Grogot é"


def test_a_traceback_keeps_its_lines():
    try:
        raise ValueError("boom")
    except ValueError:
        info = sys.exc_info()
    out = OneLineFormatter("%(message)s").format(record("sync loop for %s failed", "a\nb", exc_info=info))
    first, *rest = out.split("\n")
    assert first == "sync loop for a\\nb failed"
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "ValueError: boom"


@contextlib.contextmanager
def _aiohttp_server_log(name: str):
    """A logger filtered as ``aiohttp.server`` is; yields the (level, formatted line) pairs it logs."""
    from node.logfmt import MalformedRequests
    logger, lines = logging.getLogger(name), []
    handler = logging.Handler()
    handler.emit = lambda r: lines.append((r.levelname, OneLineFormatter("%(message)s").format(r)))
    logger.addHandler(handler)
    logger.addFilter(MalformedRequests())
    try:
        yield logger, lines
    finally:
        logger.removeHandler(handler)


def test_a_request_the_http_parser_refused_is_one_warning_without_traceback():
    """What aiohttp logs for a header with a NUL in it: an error with the parser's exception."""
    from aiohttp.http_exceptions import BadHttpMessage

    with _aiohttp_server_log("test.aiohttp.server") as (logger, lines):
        try:
            raise BadHttpMessage("Invalid header value char:\n\n  b'x\\x00'")
        except BadHttpMessage as exc:
            logger.exception("Error handling request from %s", "127.0.0.1", exc_info=exc)
        try:
            raise ValueError("a bug of ours")
        except ValueError as exc:
            logger.exception("Error handling request from %s", "127.0.0.1", exc_info=exc)
    (level, line), (bug_level, bug) = lines
    assert level == "WARNING" and "\n" not in line
    assert line == "malformed HTTP request from 127.0.0.1 refused (400): Invalid header value char:\\n\\n  b'x\\x00'"
    assert bug_level == "ERROR" and "Traceback" in bug and "ValueError: a bug of ours" in bug   # others untouched


def test_a_body_aiohttp_cannot_decode_is_one_warning_without_traceback():
    """What aiohttp logs when, after the handler's 400, it finds the rest of a body it cannot decode."""
    from aiohttp.http_exceptions import ContentEncodingError
    from aiohttp.web import RequestPayloadError

    with _aiohttp_server_log("test.aiohttp.server.payload") as (logger, lines):
        try:
            try:
                raise ContentEncodingError("Can not decode content-encoding: gzip")
            except ContentEncodingError as cause:
                raise RequestPayloadError(str(cause)) from cause
        except RequestPayloadError as exc:
            logger.exception("Unhandled exception", exc_info=exc)
    [(level, line)] = lines
    assert (level, line) == ("WARNING", "a request's body could not be decoded (Can not decode content-encoding: "
                                        "gzip); connection closed")
