"""The one rule every piece of free text on the wire follows: no control characters.

Tab and line breaks are text; the other C0 control characters (U+0000-U+001F) are
not. NUL in particular cannot be stored in a PostgreSQL text column, so a complaint
carrying one would be refused by the database instead of by validation (and,
filed together with others, hold them up). JSON can carry them all as ``\\u00XX``
escapes, so they are refused here, with a 422 that names the field.

A name (an operator's, in ``actor``) is one line: no control character at all,
nor Unicode's line separators.
"""
from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
CONTROL_MESSAGE = "must not contain control characters (other than tab and line breaks)"
_NOT_ONE_LINE = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")
ONE_LINE_MESSAGE = "must be one line, without control characters"
# The same two rules for the OpenAPI document (ECMA-262 patterns; the validators above enforce them).
TEXT_SCHEMA = {"pattern": r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f]*$"}
ONE_LINE_SCHEMA = {"pattern": r"^[^\u0000-\u001f\u007f\u0085\u2028\u2029]*$"}


def has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def not_one_line(text: str) -> bool:
    return _NOT_ONE_LINE.search(text) is not None


def one_line(v: str | None) -> str | None:
    """A pydantic field validator for a name: one line (``ONE_LINE_MESSAGE`` otherwise)."""
    if v is not None and not_one_line(v):
        raise ValueError(ONE_LINE_MESSAGE)
    return v
