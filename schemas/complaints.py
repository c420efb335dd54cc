"""Wire formats of the public API: filing a complaint and an operator's action."""
from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.directory import REGION_PATTERN
from schemas.taxonomy import CATEGORIES
from schemas.text import CONTROL_MESSAGE, ONE_LINE_SCHEMA, TEXT_SCHEMA, has_control, one_line

REPORT_TYPES = ("pengaduan", "aspirasi", "permintaan_informasi")
CHANNELS = ("web", "sms", "whatsapp", "lapor-app", "walk-in", "email", "phone", "open311", "bundle", "api")
SLUG = r"^[a-z0-9_]{1,64}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)


def _text(v: str | None) -> str | None:
    """A free-text field: no control characters (schemas/text.py). The other string fields have patterns
    or fixed values that already exclude them; checking only these keeps intake's validation cheap."""
    if v is not None and has_control(v):
        raise ValueError(CONTROL_MESSAGE)
    return v


class Reporter(Strict):
    _free_text = field_validator("name", "email", "address")(_text)
    name: str = Field(min_length=1, max_length=200, json_schema_extra=TEXT_SCHEMA)
    nik: str | None = Field(default=None, pattern=r"^\d{16}$", description="16-digit national identity number")
    phone: str | None = Field(default=None, max_length=32, pattern=r"^\+?[0-9 ()-]{6,32}$")
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    address: str | None = Field(default=None, max_length=500, json_schema_extra=TEXT_SCHEMA)


def _reporter_required(schema: dict) -> None:
    """The document says what ``_reporter_needed`` enforces (the field is optional in the model only so that
    its absence gets that validator's message, not pydantic's)."""
    schema["properties"]["reporter"] = {"$ref": schema["properties"]["reporter"]["anyOf"][0]["$ref"]}
    schema["required"].append("reporter")


class ComplaintIn(Strict):
    """A complaint as a channel (web form, SMS gateway, walk-in desk...) files it."""
    model_config = ConfigDict(**Strict.model_config, json_schema_extra=_reporter_required)
    _free_text = field_validator("kecamatan", "title", "body", "ref")(_text)
    type: Literal["pengaduan", "aspirasi", "permintaan_informasi"]
    category: str = Field(pattern=SLUG, json_schema_extra={"enum": sorted(CATEGORIES)})
    topic: str | None = Field(default=None, pattern=SLUG)
    region: str = Field(pattern=REGION_PATTERN, description="Kemendagri region code")
    kecamatan: str | None = Field(default=None, max_length=100, json_schema_extra=TEXT_SCHEMA)
    title: str = Field(min_length=3, max_length=200, json_schema_extra=TEXT_SCHEMA)
    body: str = Field(min_length=10, max_length=20000, json_schema_extra=TEXT_SCHEMA)
    incident_date: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    anonim: bool = False
    rahasia: bool = False
    channel: Literal[CHANNELS] = "web"  # type: ignore[valid-type]
    chosen_institution: str | None = Field(default=None, pattern=r"^[a-z0-9-]{1,64}$")
    reporter: Reporter | None = None
    ref: str | None = Field(default=None, max_length=64, description="the channel's own reference",
                            json_schema_extra=TEXT_SCHEMA)

    @field_validator("category")
    @classmethod
    def _known_category(cls, v: str) -> str:
        if v not in CATEGORIES:
            raise ValueError(f"unknown category {v!r}; known: {', '.join(sorted(CATEGORIES))}")
        return v

    @field_validator("incident_date")
    @classmethod
    def _real_date(cls, v: str | None) -> str | None:
        if v is not None:
            date.fromisoformat(v)
        return v

    @model_validator(mode="after")
    def _reporter_needed(self) -> "ComplaintIn":
        if self.reporter is None:
            raise ValueError("reporter is required, anonymous or not: it stays sealed at the origin node "
                             "(anonim=true hides it from every handler)")
        return self


ACTIONS = ("verify", "accept", "follow_up", "status", "close", "reopen", "return", "reply", "archive", "route", "edit")


_ACTION_NEEDS = {"follow_up": "text", "reply": "text", "return": "reason", "status": "status", "route": "institution"}


def _action_rules(schema: dict) -> None:
    """The document states ``_fields_for_action``: what each action needs besides its name."""
    schema["allOf"] = [{"if": {"properties": {"action": {"const": a}}},
                        "then": {"required": [f], "properties": {f: {"type": "string", "minLength": 1}}}}
                       for a, f in _ACTION_NEEDS.items()] + [
        {"if": {"properties": {"action": {"const": "edit"}}}, "then": {"anyOf": [{"required": ["title"]},
                                                                                 {"required": ["body"]}]}}]


class ActionIn(Strict):
    """An operator's (or hub admin's) action on a ticket."""
    model_config = ConfigDict(**Strict.model_config, json_schema_extra=_action_rules)
    _free_text = field_validator("text", "reason", "title", "body")(_text)
    _actor = field_validator("actor")(one_line)
    action: Literal[ACTIONS]  # type: ignore[valid-type]
    text: str | None = Field(default=None, max_length=20000, json_schema_extra=TEXT_SCHEMA)
    reason: str | None = Field(default=None, max_length=2000, json_schema_extra=TEXT_SCHEMA)
    status: Literal["in_progress"] | None = None
    institution: str | None = Field(default=None, pattern=r"^[a-z0-9-]{1,64}$")
    title: str | None = Field(default=None, min_length=3, max_length=200, json_schema_extra=TEXT_SCHEMA)
    body: str | None = Field(default=None, min_length=10, max_length=20000, json_schema_extra=TEXT_SCHEMA)
    actor: str | None = Field(default=None, max_length=100, description="operator name, for the record",
                              json_schema_extra=ONE_LINE_SCHEMA)
    anonim: bool | None = Field(default=None, description="verify only: true hides the reporter's identity from "
                                "every other node from now on (a flag is raised, never lowered)")
    rahasia: bool | None = Field(default=None, description="verify only: true takes the report out of the public "
                                 "listing (a flag is raised, never lowered)")

    @model_validator(mode="after")
    def _fields_for_action(self) -> "ActionIn":
        field = _ACTION_NEEDS.get(self.action)
        if field and getattr(self, field) in (None, ""):
            raise ValueError(f"action '{self.action}' needs '{field}'")
        flags = [f for f in ("anonim", "rahasia") if getattr(self, f) is not None]
        if flags and self.action != "verify":
            raise ValueError(f"'{flags[0]}' is set by the verifying admin: with action 'verify' only")
        if any(getattr(self, f) is False for f in flags):
            raise ValueError("a privacy flag is raised, never lowered (what was public may have been copied): "
                             "give true, or leave it out")
        if self.action == "edit" and not (self.title or self.body):
            raise ValueError("action 'edit' needs 'title' or 'body'")
        return self
