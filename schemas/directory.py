"""Wire formats of the node directory: a node's public keys, and its enrolment at the hub.

``KeysFile`` is what ``simpul keys show --json`` prints and ``simpul nodes
enroll --keys`` reads; ``EnrollIn`` is the body of ``POST /api/v1/admin/nodes``.
Both are strict: ``"current": "yes"`` is refused, not read as true.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# A node id: lower-case letters, digits and dashes. At most 48 characters: a tracking number is the id in
# capitals plus 11 ("-YYMM-NNNNN"), and must fit the 64 characters of its column (PostgreSQL enforces column
# widths; SQLite does not). Enrolment took up to 63 before: ids no node can be configured with.
NODE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,47}$"


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    key_id: str = Field(pattern=r"^[a-z0-9-]+#(sig|seal)-\d+$")
    kind: str = Field(pattern=r"^(signing|sealing)$")
    public: str = Field(min_length=40, max_length=60)
    current: bool = True


class EnrollIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    node_id: str = Field(pattern=NODE_ID_PATTERN)
    role: str = Field(default="district", pattern=r"^(district|hub)$")
    url: str = Field(pattern=r"^https?://")
    name: str = ""
    region: str | None = None
    keys: list[KeyIn] = Field(min_length=1)


class KeysFile(BaseModel):
    """A node's public keys as ``simpul keys show --json`` prints them."""
    model_config = ConfigDict(extra="forbid", strict=True)
    node_id: str = Field(pattern=NODE_ID_PATTERN)
    role: str = Field(default="district", pattern=r"^(district|hub)$")
    url: str = ""
    keys: list[KeyIn] = Field(min_length=1)
