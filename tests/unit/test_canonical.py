"""schemas.events.canonical must be byte-for-byte RFC 8785, fast path or not."""
import rfc8785
from hypothesis import given, settings, strategies as st

from schemas.events import canonical

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)
keys = st.one_of(st.text(max_size=8), text)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**53 - 1), 2**53 - 1), text)
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                            st.dictionaries(keys, inner, max_size=5)), max_leaves=25)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_canonical_is_rfc8785(value):
    assert canonical(value) == rfc8785.dumps(value)


def test_control_characters_and_non_ascii():
    value = {"b": "tab\t nl\n bell\x07 del\x7f", "a": "é ✓ \u2028 😀", "ä": 1, "z": [True, None, -0]}
    assert canonical(value) == rfc8785.dumps(value)


def test_integers_beyond_the_safe_range_are_refused_like_the_reference():
    import pytest
    with pytest.raises(rfc8785.IntegerDomainError):
        canonical({"n": 2**53})
