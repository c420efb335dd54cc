"""schemas.text: the rules for free text, and the patterns the OpenAPI document states them with."""
from __future__ import annotations

import re

import pytest

from schemas.text import ONE_LINE_SCHEMA, TEXT_SCHEMA, has_control, not_one_line

CODE_POINTS = [*range(0x100), 0x2028, 0x2029, 0xfeff, 0x1f600]


@pytest.mark.parametrize("schema, rule", [(TEXT_SCHEMA, has_control), (ONE_LINE_SCHEMA, not_one_line)])
def test_the_documented_pattern_refuses_exactly_what_the_validator_refuses(schema, rule):
    pattern = re.compile(schema["pattern"])   # (\uXXXX means the same in Python's re as in ECMA-262)
    for cp in CODE_POINTS:
        text = f"a{chr(cp)}b"
        assert (pattern.fullmatch(text) is None) == rule(text), hex(cp)


def test_free_text_keeps_tabs_and_line_breaks_and_a_name_does_not():
    assert not has_control("baris satu\nbaris dua\tdan tab\r\n")
    assert not_one_line("Budi\nAni") and not_one_line("Budi\tAni") and not_one_line("Budi\u2028Ani")
    assert not not_one_line("Budi Santoso, S.Kom.")
