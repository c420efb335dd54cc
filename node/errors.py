"""One exception hierarchy for the whole node.

Adapters translate driver and transport exceptions into these; the HTTP layer
maps each class to an RFC 9457 problem type and status, the CLI to a one-line
message and a non-zero exit.
"""
from __future__ import annotations


class SimpulError(Exception):
    """Base of every error the node raises on purpose."""

    status = 500
    slug = "internal"
    title = "Internal error"


class ConfigError(SimpulError):
    slug = "config"
    title = "Invalid configuration"


class ValidationError(SimpulError):
    """Input that does not match its schema (unknown field, wrong type, ...)."""

    status = 422
    slug = "validation"
    title = "Invalid input"

    def __init__(self, message: str, errors: list[dict] | None = None):
        super().__init__(message)
        self.errors = errors or []


class BadRequest(SimpulError):
    status = 400
    slug = "bad-request"
    title = "Bad request"


class PayloadTooLarge(SimpulError):
    status = 413
    slug = "payload-too-large"
    title = "Request body too large"


class RequestTimeout(SimpulError):
    """The request's body did not arrive in the time a node waits for it."""

    status = 408
    slug = "request-timeout"
    title = "Request body too slow"


class UnsupportedMediaType(SimpulError):
    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class NotFound(SimpulError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Unauthorized(SimpulError):
    status = 401
    slug = "unauthorized"
    title = "Authentication required"


class Forbidden(SimpulError):
    status = 403
    slug = "forbidden"
    title = "Not allowed"


class Conflict(SimpulError):
    """The request is well formed but clashes with stored state (e.g. an
    Idempotency-Key reused with a different body)."""

    status = 409
    slug = "conflict"
    title = "Conflict with the current state"


class IllegalTransition(SimpulError):
    """The status lifecycle forbids this change."""

    status = 422
    slug = "illegal-transition"
    title = "Status change not allowed"


class IntegrityError(SimpulError):
    """A stored or received event fails its hash, chain or signature check."""

    status = 422
    slug = "integrity"
    title = "Event integrity check failed"


class SignatureError(SimpulError):
    """A federation request or response whose RFC 9421 signature is missing,
    forged, replayed, expired or from an unknown or revoked key."""

    status = 401
    slug = "signature"
    title = "HTTP message signature rejected"


class UnknownKeyError(SignatureError):
    """A signature by a key id that is not in the directory (``key_id``): a key rotated since, perhaps."""

    def __init__(self, message: str, key_id: str):
        super().__init__(message)
        self.key_id = key_id


class Busy(SimpulError):
    """The node has as much of this kind of work under way as it takes at once; the caller retries later."""

    status = 503
    slug = "busy"
    title = "Busy: try again later"


class SealingError(SimpulError):
    """A sealed identity that cannot be opened (tampered, wrong key, bad passphrase)."""

    status = 422
    slug = "sealing"
    title = "Sealed identity cannot be opened"


class StorageError(SimpulError):
    """``refused``: the database refused what it was given (a constraint, a value it cannot store), as
    opposed to being unreachable, locked or failing: the same statements would fail again."""
    slug = "storage"
    title = "Storage failure"

    def __init__(self, message: str, *, refused: bool = False):
        super().__init__(message)
        self.refused = refused
        # A database that is unreachable, locked or full is a passing state: 503, and the client retries
        # (a channel, a peer). Before, a full disk answered every complaint with a 500.
        self.status = 500 if refused else 503


class PeerError(SimpulError):
    """A federation peer answered with an error or could not be reached.

    ``retryable`` follows the policy in node.backoff: timeouts, 408, 429 and
    5xx are retried at once; 400, 401, 403, 422 are not. ``refused``: the peer
    verifiably refused what was sent (400, 404, 409, 413, 422 in a signed
    answer), so sending the same again cannot help; anything else (an
    unreachable peer, a refusal of who we are, 401 or 403, an answer we cannot
    verify) is about the link, not the content, and only waits for a retry.
    """

    slug = "peer"
    title = "Federation peer error"

    def __init__(self, message: str, status: int | None = None, retryable: bool = True, refused: bool = False,
                 unknown_key: str | None = None):
        super().__init__(message)
        self.peer_status = status
        self.retryable = retryable
        self.refused = refused
        self.unknown_key = unknown_key   # the answer was signed with this key id, unknown here
