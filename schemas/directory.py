"""Wire formats of the node directory: a node's public keys, and its enrolment at the hub.

``KeysFile`` is what ``simpul keys show --json`` prints and ``simpul nodes
enroll --keys`` reads; ``EnrollIn`` is the body of ``POST /api/v1/admin/nodes``.
Both are strict: ``"current": "yes"`` is refused, not read as true.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.text import one_line

# A node id: lower-case letters, digits and dashes. At most 48 characters: a tracking number is the id in
# capitals plus 11 ("-YYMM-NNNNN"), and must fit the 64 characters of its column (PostgreSQL enforces column
# widths; SQLite does not). Enrolment took up to 63 before: ids no node can be configured with.
NODE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,47}$"


REGION_PATTERN = r"^\d{2}(\d{2}(\d{3}(\d{3})?)?)?$"   # a Kemendagri region code: 64, 6401, 6401010, ...


def peer_url(url: str) -> str:
    """A URL other nodes send requests to: absolute http(s) with a host, no spaces or control characters.
    (Enrolment took anything starting with http:// before; "http://" itself made every signed request to
    the node fail, and the hub's pulls from the nodes listed after it with them.)"""
    if len(url) > 2048 or any(c <= " " or c == "\x7f" for c in url):
        raise ValueError("must be an http(s) URL without spaces or control characters, at most 2048 long")
    try:
        parts = urlsplit(url)
        parts.port   # (raises for a port that is not a number in range)
    except ValueError as exc:
        raise ValueError(f"is not a usable URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http:// or https:// URL with a host")
    return url


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    key_id: str = Field(pattern=r"^[a-z0-9-]+#(sig|seal)-\d+$")
    kind: str = Field(pattern=r"^(signing|sealing)$")
    public: str = Field(min_length=40, max_length=60)
    current: bool = True

    @model_validator(mode="after")
    def _kind_matches_id(self) -> "KeyIn":
        if ("#sig-" in self.key_id) != (self.kind == "signing"):
            raise ValueError(f"key {self.key_id} is a {'signing' if '#sig-' in self.key_id else 'sealing'} key "
                             f"by its id, not {self.kind}")
        return self


class EnrollIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    node_id: str = Field(pattern=NODE_ID_PATTERN)
    role: str = Field(default="district", pattern=r"^(district|hub)$")
    url: str
    name: str = Field(default="", max_length=200)
    region: str | None = Field(default=None, pattern=REGION_PATTERN)
    keys: list[KeyIn] = Field(min_length=1)

    _url = field_validator("url")(peer_url)
    _name = field_validator("name")(one_line)


class KeysFile(BaseModel):
    """A node's public keys as ``simpul keys show --json`` prints them."""
    model_config = ConfigDict(extra="forbid", strict=True)
    node_id: str = Field(pattern=NODE_ID_PATTERN)
    role: str = Field(default="district", pattern=r"^(district|hub)$")
    url: str = ""
    keys: list[KeyIn] = Field(min_length=1)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return peer_url(v) if v else v
