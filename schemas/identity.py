"""Wire format of an operator's request to open a reporter's identity."""
from __future__ import annotations

import unicodedata

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from schemas.text import CONTROL_MESSAGE, ONE_LINE_SCHEMA, TEXT_SCHEMA, has_control


def _visible(text: str) -> str:
    """``text`` without spaces and invisible characters (a zero-width space, say: "\u200bx\u200b" was a reason)."""
    return "".join(c for c in text if unicodedata.category(c) not in ("Zs", "Cf", "Cc", "Zl", "Zp"))


class IdentityOpenIn(BaseModel):
    """POST /api/v1/complaints/{ticket_id}/identity.

    ``reason`` is required and goes into the audit log. ``passphrase`` is only
    for institutions hosted on the hub; it is used in memory to unwrap the
    institution's key and is never stored or logged (nor stripped: it is taken
    byte for byte, as ``simpul institutions keygen`` took it). That ``actor`` is
    one line is checked by the identity service, for the console's requests too.
    """
    model_config = ConfigDict(extra="forbid", strict=True, hide_input_in_errors=True)
    reason: str = Field(min_length=3, max_length=500, description="why the identity is needed (audited)",
                        json_schema_extra=TEXT_SCHEMA)
    actor: str | None = Field(default=None, max_length=80, description="the operator's name, for the audit",
                              json_schema_extra=ONE_LINE_SCHEMA)
    passphrase: str | None = Field(default=None, min_length=1, max_length=1000, repr=False,
                                   json_schema_extra={"format": "password", "writeOnly": True})

    @field_validator("reason", "actor")
    @classmethod
    def _stripped(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return v
        v = v.strip()
        if not v:
            raise ValueError("must not be blank")
        if has_control(v):
            raise ValueError(CONTROL_MESSAGE)
        if info.field_name == "reason" and len(_visible(v)) < 3:   # (min_length counted spaces, and invisibles)
            raise ValueError("must be at least 3 characters, not counting spaces or invisible characters")
        return v
