"""Node configuration: a TOML file, every key overridable by a SIMPUL_ variable.

Nested keys use a double underscore: ``SIMPUL_SYNC__PULL_INTERVAL_S=5``
overrides ``[sync] pull_interval_s``. Environment beats the file. Any bad or
missing setting raises ConfigError with a one-line message naming the key.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from node import eventloop
from node.errors import ConfigError
from schemas.directory import NODE_ID_PATTERN, peer_url

DEFAULT_CONFIG = "simpul.toml"
DAY = 86400.0


class Tokens(BaseModel):
    model_config = {"extra": "forbid"}
    intake: str = Field(min_length=16)
    operator: str = Field(min_length=16)
    admin: str = Field(min_length=16)


class HubLink(BaseModel):
    """A district node's link to its hub."""
    model_config = {"extra": "forbid"}
    node_id: str = "nasional"
    url: str = ""
    signing_key_id: str = ""
    signing_public: str = ""

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return peer_url(v) if v else v


class SyncSettings(BaseModel):
    model_config = {"extra": "forbid"}
    # (Each duration has an upper bound: 1e300 passed, and the scheduler overflowed once the node served.)
    # 1,000, not 500: each batch costs both ends a request, a transaction and a commit; see scripts/PERFORMANCE.md
    batch_size: int = Field(1000, ge=1, le=5000)
    # 4, not 2: a hub's database thread stalls on the disk now and then, and a deeper window keeps its check
    # worker fed meanwhile (a 1,000,000-event drain: 0.49-0.53 of the ceiling against 0.45-0.47 with 2); a hub
    # takes in four pushes at once whoever sends them, so its memory is bounded as before (PERFORMANCE.md)
    inflight: int = Field(4, ge=1, le=8)   # batches sent before the first is answered
    push_gap_s: float = Field(0.5, ge=0, le=60)   # a batch less than full waits this long after the last push
    wake_interval_s: float = Field(5.0, gt=0, le=DAY)
    pull_interval_s: float = Field(30.0, gt=0, le=DAY)
    anti_entropy_interval_s: float = Field(120.0, gt=0, le=DAY)
    request_timeout_s: float = Field(15.0, gt=0, le=3600)
    retry_attempts: int = Field(3, ge=1, le=10)
    retry_initial_s: float = Field(0.2, gt=0, le=60)
    backoff_base_s: float = Field(1.0, gt=0, le=3600)
    backoff_cap_s: float = Field(300.0, gt=0, le=DAY)
    lease_ttl_s: float = Field(30.0, gt=0, le=3600)
    outbox_retention_s: float = Field(7 * DAY, gt=0, le=365 * DAY)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIMPUL_", env_nested_delimiter="__", extra="forbid")

    node_id: str = Field(pattern=NODE_ID_PATTERN)
    role: Literal["district", "hub"]
    name: str = ""
    region: str | None = None
    data_dir: Path
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = Field(8700, ge=1, le=65535)
    public_url: str = ""
    max_body_bytes: int = Field(256 * 1024, ge=1024)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    event_loop: Literal[eventloop.CHOICES] = "auto"
    tokens: Tokens
    admin_password: str = Field(min_length=8)
    hub: HubLink = HubLink()
    sync: SyncSettings = SyncSettings()
    auto_return_out_of_competence: bool = True
    federation_file: Path | None = None

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, v: str) -> str:
        return peer_url(v) if v else v

    @field_validator("database_url")
    @classmethod
    def _db(cls, v: str) -> str:
        if v and not (v.startswith("sqlite:") or v.startswith("postgresql")):
            raise ValueError("must start with sqlite: or postgresql")
        if v:
            from sqlalchemy.engine import make_url
            from sqlalchemy.exc import ArgumentError
            try:
                make_url(v)
            except ArgumentError as exc:   # ("sqlite:garbage")
                raise ValueError(f"is not a database URL ({exc})") from exc
        return v

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'simpul.db'}"

    @property
    def url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def not_syncing(self) -> str | None:
        """Why this node never syncs, or None. A district without its hub's URL runs, files and queues
        every event for the hub, and sends nothing: ``init``, ``run`` and ``status`` say so."""
        if self.role == "hub" or self.hub.url:
            return None
        return ("this district has no hub URL, so it does not sync: its events wait in its queue until "
                "[hub] url is set in its config (or SIMPUL_HUB__URL)")


def _first_error(exc: pydantic.ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "config"
    return f"{where}: {err['msg']}"


def load_settings(path: str | Path | None, overrides: dict[str, Any] | None = None) -> Settings:
    """Read the TOML file (``--config``, else $SIMPUL_CONFIG, else ./simpul.toml)."""
    path = Path(path or os.environ.get("SIMPUL_CONFIG") or DEFAULT_CONFIG)
    if not path.is_file():
        raise ConfigError(f"config: file {path} not found (create one with 'simpul init')")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config: {path} is not valid TOML: {exc}") from exc
    data.setdefault("data_dir", str(path.parent))
    if not isinstance(data["data_dir"], str) or "\x00" in data["data_dir"]:
        raise ConfigError(f"data_dir: must be a folder's path (a string), not {data['data_dir']!r}")
    if not Path(data["data_dir"]).is_absolute():
        data["data_dir"] = str((path.parent / data["data_dir"]).resolve())
    return parse_settings(data, overrides)


def parse_settings(data: dict[str, Any], overrides: dict[str, Any] | None = None) -> Settings:
    """Settings from a config's values (``data_dir`` absolute), the environment on top, as
    ``load_settings`` reads a file; ``init`` checks a config with it before writing it."""
    try:
        settings = Settings(**data)
    except pydantic.ValidationError as exc:
        raise ConfigError(_first_error(exc)) from exc
    except SettingsError as exc:   # (SIMPUL_SYNC=x: a section's variable that is not JSON)
        raise ConfigError(f"environment: {exc}") from exc
    # Command-line flags (--host, --port) beat both the file and the environment. model_copy does not
    # validate, so each flag is checked against its field's own rules first (--port 99999 served on 34463).
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    for name, value in flags.items():
        field = Settings.model_fields[name]
        try:
            kind = Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation
            pydantic.TypeAdapter(kind).validate_python(value)
        except pydantic.ValidationError as exc:
            raise ConfigError(f"--{name}: {exc.errors()[0]['msg']}") from exc
    return settings.model_copy(update=flags)
