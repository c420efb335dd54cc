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


ids = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)


@settings(max_examples=300, deadline=None)
@given(author=text.filter(bool), ticket=text.filter(bool), payload=st.dictionaries(keys, json_values, max_size=6),
       parents=st.lists(ids, max_size=3), prev=st.one_of(st.none(), ids), seq=st.integers(1, 2**40))
def test_the_wire_form_spliced_from_the_body_is_the_canonical_wire(author, ticket, payload, parents, prev, seq):
    """Event.canonical_wire inserts id and sig into the signed body's bytes instead of encoding again;
    authors, tickets and payloads full of quotes, commas and key names must not fool it."""
    from schemas.events import make_event
    event = make_event(ticket=ticket, author=author, seq=seq, prev=prev, parents=parents,
                       hlc="0001764270000000.0003", type="followed_up", payload=payload, key_id="k#1",
                       private_key=_KEY)
    assert event.canonical_wire() == rfc8785.dumps(event.to_wire()).decode("utf-8")


def test_splicing_survives_tricky_strings():
    from schemas.events import make_event
    tricky = ',"hlc":"x","ticket":"y",\\"ticket\\":"'
    event = make_event(ticket=tricky, author=tricky, seq=1, prev=None, parents=[], hlc="0001764270000000.0003",
                       type="created", payload={"ticket": tricky, "hlc": tricky, "z": {"ticket": tricky}},
                       key_id=tricky, private_key=_KEY)
    assert event.canonical_wire() == rfc8785.dumps(event.to_wire()).decode("utf-8")


def _key():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    return Ed25519PrivateKey.generate()


_KEY = _key()
