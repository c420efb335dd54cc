"""node.logfmt: what came from outside cannot write a log line of its own."""
from __future__ import annotations

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
