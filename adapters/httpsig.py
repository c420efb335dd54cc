"""RFC 9421 HTTP Message Signatures (Ed25519) for federation requests and responses.

Built on the ``http-message-signatures`` library, which builds the signature
base, signs, verifies and handles Content-Digest (RFC 9530, sha-256). This
module only fixes the profile that Simpul nodes speak and turns every failure
into :class:`node.errors.SignatureError` with a one-line reason.

Profile
- One signature per message, label ``simpul``, with the signed parameters
  ``created`` (unix seconds), ``keyid``, ``alg="ed25519"`` and ``tag``
  (``simpul-request`` or ``simpul-response``). The tag is signed, the label is
  not; the library selects a signature by both, so a stray signature added by
  a proxy is ignored and a request signature can never pass as a response one.
- Requests also carry a ``nonce`` and cover ``@method``, ``@target-uri`` (the
  full absolute URL, query included) and ``content-digest``.
- Responses cover ``@status`` and ``content-digest`` and are bound to their
  request with request-derived components (RFC 9421 section 2.4), which the
  library supports: ``"@method";req``, ``"@target-uri";req`` and, when the
  request was signed, ``"signature-input";key="simpul";req`` -- the request's
  own signature parameters, so its keyid, created time and nonce. A response
  thus cannot be replayed as the answer to another request. The
  ``simpul-request-nonce`` header fallback is not needed and not used.

Replay window: ``created`` must lie within ``REPLAY_WINDOW_S`` (300 s) of the
verifier's clock, in either direction. The clock is passed in (``now``); the
library's own wall-clock check is replaced. Nonce tracking is the CALLER's
job: remember ``Verified.nonce`` per key id for at least the window and reject
a nonce seen twice. A response's ``Verified.nonce`` is the nonce of the
request it answers (empty if that request was unsigned).

Key ids have the form ``"<node_id>#sig-<n>"``; ``resolve_key`` maps one to an
Ed25519 public key from the node directory, or returns None if unknown.
Everything here is pure: no I/O, no clock, no randomness.
"""
from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import http_sf
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    InvalidSignature,
    algorithms,
)
from http_message_signatures.structures import CaseInsensitiveDict

from node.errors import SignatureError, UnknownKeyError

REQUIRED_REQUEST_COMPONENTS = ("@method", "@target-uri", "content-digest")
REQUIRED_RESPONSE_COMPONENTS = ("@status", "content-digest", '"@method";req', '"@target-uri";req')
REQUEST_BINDING_COMPONENT = '"signature-input";key="simpul";req'
REPLAY_WINDOW_S = 300
SIGNATURE_LABEL = "simpul"
REQUEST_TAG = "simpul-request"
RESPONSE_TAG = "simpul-response"


@dataclass(frozen=True)
class Verified:
    key_id: str
    nonce: str
    created: int  # unix seconds


@dataclass
class _Request:  # the message shape the library's component resolver reads
    method: str
    url: str
    headers: CaseInsensitiveDict


@dataclass
class _Response:
    status_code: int
    headers: CaseInsensitiveDict
    request: _Request


class _Keys(HTTPSignatureKeyResolver):
    """Adapts a resolve_key callable (or one signing key) to the library."""

    def __init__(self, resolve_key=None, private_key=None):
        self._resolve_key, self._private_key = resolve_key, private_key
        self.unknown: str | None = None
        self.asked: str | None = None

    def resolve_public_key(self, key_id: str):
        self.asked = key_id
        key = self._resolve_key(key_id)
        if key is None:
            self.unknown = key_id
        return key

    def resolve_private_key(self, key_id: str):
        return self._private_key


class _ClockedVerifier(HTTPMessageVerifier):
    """The library's verifier with our clock and a symmetric window instead of
    its wall-clock ``max_age`` check."""

    def __init__(self, keys: _Keys, now: float, window_s: int):
        super().__init__(signature_algorithm=algorithms.ED25519, key_resolver=keys)
        self._now, self._window_s = now, window_s

    def validate_created_and_expires(self, sig_input, max_age=None):
        created, expires = sig_input.params.get("created"), sig_input.params.get("expires")
        if type(created) is not int:
            raise InvalidSignature('signature has no integer "created" parameter')
        if abs(self._now - created) > self._window_s:
            ahead = "ahead of" if created > self._now else "behind"
            raise InvalidSignature(
                f"created={created} is outside the {self._window_s}s window around now={int(self._now)}: the "
                f"signer's clock is {abs(int(self._now) - created)} s {ahead} this node's (check both clocks: NTP)")
        if expires is not None and (type(expires) is not int or expires < self._now):
            raise InvalidSignature(f"signature expired (expires={expires})")


def _ci(headers: Mapping[str, str]) -> CaseInsensitiveDict:
    """Case-insensitive copy; repeated field lines (multidicts) are joined with ', '."""
    out = CaseInsensitiveDict()
    for name, value in headers.items():
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def _simpul_params(signature_input: str | None) -> dict | None:
    """Signed parameters of the 'simpul' member of a Signature-Input value, or None."""
    if not signature_input:
        return None
    try:
        member = http_sf.parse(signature_input.encode(), tltype="dictionary").get(SIGNATURE_LABEL)
    except (ValueError, TypeError, UnicodeError) as exc:
        raise SignatureError(f"malformed Signature-Input: {exc}") from exc
    return None if member is None else dict(member[1])


def bindable(signature_input: str | None) -> str | None:
    """``signature_input`` if a response can cover it (it holds a well-formed 'simpul' member), else None:
    an answer refusing a request whose signature cannot be parsed is still signed, unbound."""
    try:
        return signature_input if _simpul_params(signature_input) is not None else None
    except SignatureError:
        return None


def _sign(message, *, key_id, private_key, now, nonce, tag, components, body) -> None:
    signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=_Keys(private_key=private_key))
    try:
        # The library takes a datetime and keeps int(created.timestamp()); a
        # fixed-offset datetime round-trips an int exactly.
        signer.sign(message, key_id=key_id, created=_as_datetime(now), nonce=nonce, label=SIGNATURE_LABEL,
                    tag=tag, covered_component_ids=components, body=body, use_existing_digest=True)
    except (HTTPMessageSignaturesException, ValueError, TypeError) as exc:
        raise SignatureError(f"cannot sign {tag}: {exc}") from exc


def _as_datetime(now: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(int(now), tz=datetime.timezone.utc)


def _verify(message, *, what, tag, required, body, resolve_key, now, window_s):
    headers = message.headers
    missing = [h for h in ("Signature-Input", "Signature") if h not in headers]
    if missing:
        raise SignatureError(f"{what} is not signed: missing header(s) {', '.join(missing)}")
    keys = _Keys(resolve_key=resolve_key)
    verifier = _ClockedVerifier(keys, now, window_s)
    try:
        result = verifier.verify(message, max_age=None, expect_tag=tag, expect_label=SIGNATURE_LABEL,
                                 require_components=required, body=body)[0]
    except HTTPMessageSignaturesException as exc:
        if keys.unknown is not None:
            raise UnknownKeyError(f"{what} signature rejected: unknown key id {keys.unknown!r}",
                                  keys.unknown) from exc
        if isinstance(exc.__cause__, CryptoInvalidSignature):
            raise SignatureError(
                f"{what} signature rejected: bad signature for key id {keys.asked!r}") from exc
        raise SignatureError(f"{what} signature rejected: {exc}") from exc
    return result


def sign_request(method: str, url: str, headers: dict[str, str], body: bytes, *, key_id: str,
                 private_key: Ed25519PrivateKey, now: float, nonce: str) -> dict[str, str]:
    """Return a NEW dict = headers + Content-Digest + Signature-Input + Signature (label 'simpul'),
    covering @method, @target-uri, content-digest, with created=int(now), keyid, alg='ed25519',
    nonce and tag='simpul-request'. An existing Content-Digest must match ``body``."""
    if not nonce:
        raise SignatureError("cannot sign request: nonce must be a non-empty string")
    message = _Request(method.upper(), url, _ci(headers))
    _sign(message, key_id=key_id, private_key=private_key, now=now, nonce=nonce, tag=REQUEST_TAG,
          components=REQUIRED_REQUEST_COMPONENTS, body=body)
    return dict(message.headers.items())


def verify_request(method: str, url: str, headers: Mapping[str, str], body: bytes | None, *,
                   resolve_key: Callable[[str], Ed25519PublicKey | None], now: float,
                   window_s: int = REPLAY_WINDOW_S) -> Verified:
    """Verify a signed federation request; raise SignatureError on any failure.

    Checks: a signature labelled 'simpul' with tag 'simpul-request' is present; it
    covers at least @method, @target-uri and content-digest; it has created, keyid
    and nonce parameters; |now - created| <= window_s; the key id resolves (None ->
    unknown key); the signature verifies; Content-Digest matches ``body``. With ``body`` None, that last
    check is left out: the headers say who signed, before the body is read, and ``verify_request_body``
    checks the body once it is.

    Replay protection is the CALLER's job: keep the returned ``Verified.nonce``
    (per key id) for at least ``window_s`` seconds and reject a repeat. ``url``
    must be the full absolute URL as the client signed it (scheme, host, port,
    path and query).
    """
    message = _Request(method.upper(), url, _ci(headers))
    result = _verify(message, what="request", tag=REQUEST_TAG, required=REQUIRED_REQUEST_COMPONENTS,
                     body=body, resolve_key=resolve_key, now=now, window_s=window_s)
    if not result.nonce:
        raise SignatureError("request signature rejected: no nonce parameter")
    return Verified(key_id=str(result.parameters["keyid"]), nonce=result.nonce,
                    created=int(result.parameters["created"]))


def verify_request_body(headers: Mapping[str, str], body: bytes) -> None:
    """Check ``body`` against the Content-Digest of a request whose signature ``verify_request`` verified
    from its headers alone (``body`` None); the signature covers that digest, so this binds the body to
    it. Raise SignatureError if it does not match."""
    try:
        HTTPMessageVerifier.content_digest_class.verify(_ci(headers).get("Content-Digest", ""), body)
    except HTTPMessageSignaturesException as exc:
        raise SignatureError(f"request signature rejected: {exc}") from exc


def sign_response(status: int, headers: dict[str, str], body: bytes, *, request_method: str, request_url: str,
                  request_signature_input: str | None, key_id: str, private_key: Ed25519PrivateKey,
                  now: float) -> dict[str, str]:
    """Return a NEW dict = headers + Content-Digest + Signature-Input + Signature (label 'simpul',
    tag 'simpul-response') covering @status, content-digest, "@method";req, "@target-uri";req
    and, when ``request_signature_input`` (the request's Signature-Input header) is given,
    "signature-input";key="simpul";req. It must then hold a 'simpul' member; pass None when
    answering an unsigned or unparseable request (e.g. a 401)."""
    req_headers = CaseInsensitiveDict()
    components = REQUIRED_RESPONSE_COMPONENTS
    if request_signature_input is not None:
        req_headers["Signature-Input"] = request_signature_input
        components += (REQUEST_BINDING_COMPONENT,)
    message = _Response(status, _ci(headers), _Request(request_method.upper(), request_url, req_headers))
    _sign(message, key_id=key_id, private_key=private_key, now=now, nonce=None, tag=RESPONSE_TAG,
          components=components, body=body)
    return dict(message.headers.items())


def verify_response(status: int, headers: Mapping[str, str], body: bytes, *, request_method: str, request_url: str,
                    request_headers: Mapping[str, str], resolve_key: Callable[[str], Ed25519PublicKey | None],
                    now: float, window_s: int = REPLAY_WINDOW_S) -> Verified:
    """Verify a signed federation response against the request we sent; raise SignatureError.

    Same checks as verify_request (minus the nonce parameter), with the response
    components. If our request carried a 'simpul' signature, the response must also
    cover it ("signature-input";key="simpul";req); ``Verified.nonce`` is then that
    request's nonce, otherwise ''.
    """
    req = _Request(request_method.upper(), request_url, _ci(request_headers))
    request_params = _simpul_params(req.headers.get("Signature-Input"))
    required = REQUIRED_RESPONSE_COMPONENTS
    if request_params is not None:
        required += (REQUEST_BINDING_COMPONENT,)
    message = _Response(status, _ci(headers), req)
    result = _verify(message, what="response", tag=RESPONSE_TAG, required=required, body=body,
                     resolve_key=resolve_key, now=now, window_s=window_s)
    nonce = "" if request_params is None else str(request_params.get("nonce", ""))
    return Verified(key_id=str(result.parameters["keyid"]), nonce=nonce,
                    created=int(result.parameters["created"]))
