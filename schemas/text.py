"""The one rule every piece of free text on the wire follows: no control characters.

Tab and line breaks are text; the other C0 control characters (U+0000-U+001F) are
not. NUL in particular cannot be stored in a PostgreSQL text column, so a complaint
carrying one would be refused by the database instead of by validation (and,
filed together with others, hold them up). JSON can carry them all as ``\\u00XX``
escapes, so they are refused here, with a 422 that names the field.
"""
from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
CONTROL_MESSAGE = "must not contain control characters (other than tab and line breaks)"


def has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None
