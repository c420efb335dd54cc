"""Unit tests for adapters.httpsig: RFC 9421 signatures on federation messages."""
from __future__ import annotations

import datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from http_message_signatures import HTTPMessageSigner, HTTPSignatureKeyResolver, algorithms
from http_message_signatures.structures import CaseInsensitiveDict

from adapters import httpsig
from adapters.httpsig import (
    REPLAY_WINDOW_S,
    Verified,
    sign_request,
    sign_response,
    verify_request,
    verify_response,
)
from node.errors import SignatureError

NOW = 1_760_000_000.25  # fake clock, unix seconds
KEY_ID = "kab-paser#sig-1"
URL = "http://127.0.0.1:8701/federation/v1/events?since=3"
BODY = b'{"events":[{"id":"e1","ticket":"t1"}]}'
PRIV = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()
KEYS = {KEY_ID: PRIV.public_key()}


def resolve(key_id):
    return KEYS.get(key_id)


def signed_request(method="POST", url=URL, body=BODY, now=NOW, key=PRIV, key_id=KEY_ID, nonce="n-1"):
    headers = {"Content-Type": "application/json"}
    return sign_request(method, url, headers, body, key_id=key_id, private_key=key, now=now, nonce=nonce)


def signed_response(req_headers, status=200, body=b'{"accepted":1}', now=NOW, key=PRIV):
    return sign_response(status, {"Content-Type": "application/json"}, body, request_method="POST",
                         request_url=URL, request_signature_input=req_headers["Signature-Input"],
                         key_id=KEY_ID, private_key=key, now=now)


class _CIMulti(CaseInsensitiveDict):
    """Stand-in for aiohttp's CIMultiDict: different casing on the wire."""


# --- requests -----------------------------------------------------------------

def test_request_round_trip():
    original = {"Content-Type": "application/json"}
    headers = sign_request("POST", URL, original, BODY, key_id=KEY_ID, private_key=PRIV, now=NOW, nonce="n-1")
    assert original == {"Content-Type": "application/json"}  # input not mutated
    assert {"Content-Digest", "Signature-Input", "Signature"} <= set(headers)
    sig_input = headers["Signature-Input"]
    assert sig_input.startswith('simpul=("@method" "@target-uri" "content-digest")')
    for param in (f"created={int(NOW)}", f'keyid="{KEY_ID}"', 'alg="ed25519"', 'nonce="n-1"'):
        assert param in sig_input
    assert verify_request("POST", URL, headers, BODY, resolve_key=resolve, now=NOW) == Verified(
        key_id=KEY_ID, nonce="n-1", created=int(NOW))


def test_request_headers_are_case_insensitive():
    headers = signed_request()
    lowered = _CIMulti({k.lower(): v for k, v in headers.items()})
    assert verify_request("POST", URL, lowered, BODY, resolve_key=resolve, now=NOW).nonce == "n-1"
    upper = {k.upper(): v for k, v in headers.items()}
    assert verify_request("POST", URL, upper, BODY, resolve_key=resolve, now=NOW).key_id == KEY_ID


def test_empty_body_round_trip():
    headers = signed_request(method="GET", body=b"")
    assert verify_request("GET", URL, headers, b"", resolve_key=resolve, now=NOW).nonce == "n-1"


def test_altered_body_rejected():
    headers = signed_request()
    with pytest.raises(SignatureError, match="Content-Digest does not match"):
        verify_request("POST", URL, headers, BODY + b" ", resolve_key=resolve, now=NOW)


def test_headers_first_then_the_body():
    """A node verifies the signature from the headers before it reads the body (a push waits for a turn in
    between), then checks the body against the signed digest: an altered body is caught there."""
    headers = signed_request()
    assert verify_request("POST", URL, headers, None, resolve_key=resolve, now=NOW).nonce == "n-1"
    httpsig.verify_request_body(headers, BODY)
    with pytest.raises(SignatureError, match="Content-Digest does not match"):
        httpsig.verify_request_body(headers, BODY + b" ")
    with pytest.raises(SignatureError, match="Content-Digest"):
        httpsig.verify_request_body({k: v for k, v in headers.items() if k != "Content-Digest"}, BODY)


def test_altered_digest_header_rejected():
    headers = signed_request()
    tampered = sign_request("POST", URL, {}, b"other", key_id=KEY_ID, private_key=PRIV, now=NOW, nonce="x")
    headers["Content-Digest"] = tampered["Content-Digest"]
    with pytest.raises(SignatureError, match="bad signature"):
        verify_request("POST", URL, headers, b"other", resolve_key=resolve, now=NOW)


@pytest.mark.parametrize("method, url", [
    ("PUT", URL),
    ("POST", "http://127.0.0.1:8701/federation/v1/inbox?since=3"),
    ("POST", "http://127.0.0.1:8701/federation/v1/events?since=4"),
    ("POST", "http://127.0.0.1:8702/federation/v1/events?since=3"),
])
def test_altered_method_or_target_rejected(method, url):
    headers = signed_request()
    with pytest.raises(SignatureError, match="bad signature"):
        verify_request(method, url, headers, BODY, resolve_key=resolve, now=NOW)


def test_other_key_under_same_key_id_rejected():
    headers = signed_request(key=OTHER)
    with pytest.raises(SignatureError, match=f"bad signature for key id '{KEY_ID}'"):
        verify_request("POST", URL, headers, BODY, resolve_key=resolve, now=NOW)


def test_unknown_key_id_rejected():
    headers = signed_request(key_id="rogue-node#sig-1")
    with pytest.raises(SignatureError, match="unknown key id 'rogue-node#sig-1'"):
        verify_request("POST", URL, headers, BODY, resolve_key=resolve, now=NOW)


@pytest.mark.parametrize("signed_at", [NOW - REPLAY_WINDOW_S - 2, NOW + REPLAY_WINDOW_S + 2])
def test_created_outside_window_rejected(signed_at):
    headers = signed_request(now=signed_at)
    with pytest.raises(SignatureError, match="outside the 300s window") as raised:
        verify_request("POST", URL, headers, BODY, resolve_key=resolve, now=NOW)
    # (before, the message never said that a clock is the likely cause, nor which way it is off)
    way = "ahead of" if signed_at > NOW else "behind"
    assert f"clock is {REPLAY_WINDOW_S + 2} s {way} this node's (check both clocks" in str(raised.value)


@pytest.mark.parametrize("signed_at", [NOW - REPLAY_WINDOW_S + 1, NOW + REPLAY_WINDOW_S - 1])
def test_created_inside_window_accepted(signed_at):
    headers = signed_request(now=signed_at)
    assert verify_request("POST", URL, headers, BODY, resolve_key=resolve, now=NOW).created == int(signed_at)


def test_custom_window():
    headers = signed_request(now=NOW - 60)
    with pytest.raises(SignatureError, match="outside the 30s window"):
        verify_request("POST", URL, headers, BODY, resolve_key=resolve, now=NOW, window_s=30)


@pytest.mark.parametrize("drop", [("Signature",), ("Signature-Input",), ("Signature", "Signature-Input")])
def test_missing_signature_headers_rejected(drop):
    headers = signed_request()
    for name in drop:
        del headers[name]
    with pytest.raises(SignatureError, match="request is not signed: missing"):
        verify_request("POST", URL, headers, BODY, resolve_key=resolve, now=NOW)


def test_nonce_reuse_is_left_to_caller():
    headers = signed_request(nonce="same")
    first = verify_request("POST", URL, headers, BODY, resolve_key=resolve, now=NOW)
    second = verify_request("POST", URL, headers, BODY, resolve_key=resolve, now=NOW + 1)
    assert first.nonce == second.nonce == "same"


class _OneKey(HTTPSignatureKeyResolver):
    def resolve_private_key(self, key_id):
        return PRIV


def _library_signed(components, *, nonce="n-1", tag=httpsig.REQUEST_TAG, body=None):
    """Craft a signature directly with the library, outside our profile."""
    message = httpsig._Request("POST", URL, CaseInsensitiveDict({"Content-Type": "application/json"}))
    signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=_OneKey())
    signer.sign(message, key_id=KEY_ID, created=datetime.datetime.fromtimestamp(int(NOW), datetime.timezone.utc),
                nonce=nonce, label="simpul", tag=tag, covered_component_ids=components, body=body)
    return dict(message.headers.items())


def test_signature_covering_only_method_rejected():
    headers = _library_signed(("@method",))
    with pytest.raises(SignatureError, match="not covered"):
        verify_request("POST", URL, headers, b"", resolve_key=resolve, now=NOW)


def test_signature_without_digest_coverage_rejected_even_with_digest_header():
    headers = _library_signed(("@method", "@target-uri"))
    headers["Content-Digest"] = signed_request()["Content-Digest"]
    with pytest.raises(SignatureError, match="content-digest"):
        verify_request("POST", URL, headers, BODY, resolve_key=resolve, now=NOW)


def test_signature_without_nonce_rejected():
    headers = _library_signed(httpsig.REQUIRED_REQUEST_COMPONENTS[:2], nonce=None, body=BODY)
    with pytest.raises(SignatureError, match="no nonce"):
        verify_request("POST", URL, headers, BODY, resolve_key=resolve, now=NOW)


def test_signature_with_other_tag_rejected():
    headers = _library_signed(httpsig.REQUIRED_REQUEST_COMPONENTS[:2], tag="someone-else", body=BODY)
    with pytest.raises(SignatureError, match="tag or label"):
        verify_request("POST", URL, headers, BODY, resolve_key=resolve, now=NOW)


def test_garbage_signature_header_rejected():
    headers = signed_request()
    headers["Signature"] = "simpul=not-bytes"
    with pytest.raises(SignatureError, match="request signature rejected"):
        verify_request("POST", URL, headers, BODY, resolve_key=resolve, now=NOW)


def test_sign_request_rejects_bad_url_and_mismatching_digest():
    with pytest.raises(SignatureError, match="cannot sign"):
        signed_request(url="/federation/v1/events")
    headers = {"Content-Digest": signed_request(body=b"x")["Content-Digest"]}
    with pytest.raises(SignatureError, match="cannot sign"):
        sign_request("POST", URL, headers, BODY, key_id=KEY_ID, private_key=PRIV, now=NOW, nonce="n")


# --- responses ----------------------------------------------------------------

def test_response_round_trip():
    req = signed_request(nonce="req-nonce")
    resp = signed_response(req, now=NOW + 1)
    assert 'simpul=("@status" "content-digest" "@method";req "@target-uri";req' in resp["Signature-Input"]
    assert '"signature-input";key="simpul";req' in resp["Signature-Input"]
    got = verify_response(200, resp, b'{"accepted":1}', request_method="POST", request_url=URL,
                          request_headers=req, resolve_key=resolve, now=NOW + 2)
    assert got == Verified(key_id=KEY_ID, nonce="req-nonce", created=int(NOW + 1))


def test_response_to_unsigned_request_round_trip():
    resp = sign_response(401, {}, b"", request_method="GET", request_url=URL, request_signature_input=None,
                         key_id=KEY_ID, private_key=PRIV, now=NOW)
    got = verify_response(401, resp, b"", request_method="GET", request_url=URL, request_headers={},
                          resolve_key=resolve, now=NOW)
    assert got.nonce == "" and got.key_id == KEY_ID


def _verify_resp(resp, req, *, status=200, body=b'{"accepted":1}', method="POST", url=URL, now=NOW):
    return verify_response(status, resp, body, request_method=method, request_url=url, request_headers=req,
                           resolve_key=resolve, now=now)


def test_response_altered_body_rejected():
    req = signed_request()
    with pytest.raises(SignatureError, match="Content-Digest does not match"):
        _verify_resp(signed_response(req), req, body=b'{"accepted":2}')


@pytest.mark.parametrize("change", [
    {"status": 201}, {"method": "PUT"}, {"url": "http://127.0.0.1:8701/federation/v1/events?since=9"},
])
def test_response_altered_status_or_request_rejected(change):
    req = signed_request()
    with pytest.raises(SignatureError, match="bad signature"):
        _verify_resp(signed_response(req), req, **change)


def test_response_bound_to_its_request():
    req_a, req_b = signed_request(nonce="a"), signed_request(nonce="b")
    with pytest.raises(SignatureError, match="bad signature"):
        _verify_resp(signed_response(req_a), req_b)


def test_response_without_request_binding_rejected_when_request_was_signed():
    req = signed_request()
    resp = sign_response(200, {}, b"", request_method="POST", request_url=URL, request_signature_input=None,
                         key_id=KEY_ID, private_key=PRIV, now=NOW)
    with pytest.raises(SignatureError, match="not covered"):
        _verify_resp(resp, req, body=b"")


def test_response_other_key_unknown_key_and_stale_rejected():
    req = signed_request()
    with pytest.raises(SignatureError, match="bad signature"):
        _verify_resp(signed_response(req, key=OTHER), req)
    with pytest.raises(SignatureError, match="outside the 300s window"):
        _verify_resp(signed_response(req, now=NOW - 301), req)
    resp = sign_response(200, {}, b"", request_method="POST", request_url=URL,
                         request_signature_input=req["Signature-Input"], key_id="hub#sig-9",
                         private_key=PRIV, now=NOW)
    with pytest.raises(SignatureError, match="unknown key id 'hub#sig-9'"):
        _verify_resp(resp, req, body=b"")


def test_request_signature_is_not_a_response_signature():
    req = signed_request()
    with pytest.raises(SignatureError, match="response signature rejected"):
        _verify_resp(req, req, body=BODY)


def test_response_missing_signature_headers_rejected():
    with pytest.raises(SignatureError, match="response is not signed"):
        _verify_resp({"Content-Type": "application/json"}, signed_request())
