"""``simpul init``: a new node's config, keys and database, all or nothing.

Everything init uses is checked before anything is created: the node id, the
settings exactly as ``load_settings`` will read them back (the config's values
with the SIMPUL_ environment on top), the hub's keys file and the federation
file. Only then does it create the data folder, the keys and the database and
load the files into it. The config is written last, to a temporary file linked
into place, so a config file exists only for a node that is complete: a
refused init can simply be run again.

If a step fails anyway (the database cannot be created, say), what this init
created is removed again, newest first; nothing that existed before is
touched. A PostgreSQL database keeps the tables ``migrate.upgrade`` made
(running init again completes it).
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path

import click
import tomli_w

from node.cli_common import fail_cleanly
from node.errors import ConfigError, ValidationError


class Created:
    """What one init created, so that a failed init can remove exactly that."""

    def __init__(self) -> None:
        self._undo: list[tuple[Path, frozenset[str] | None]] = []

    def mkdir(self, folder: Path) -> None:
        missing = [p for p in (folder, *folder.parents) if not p.exists()]
        folder.mkdir(parents=True, exist_ok=True)
        self._undo += [(p, None) for p in reversed(missing)]

    def watch(self, path: Path) -> None:
        """``path`` is a file or folder about to be made: remove it if it is new; a folder that exists
        loses only the entries that are new in it."""
        if not path.exists():
            self._undo.append((path, None))
        elif path.is_dir():
            self._undo.append((path, frozenset(os.listdir(path))))

    def undo(self) -> None:
        for path, kept in reversed(self._undo):
            if kept is not None and not path.is_dir():
                continue
            targets = [path] if kept is None else [path / n for n in os.listdir(path) if n not in kept]
            for target in targets:
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target, ignore_errors=True)
                else:
                    target.unlink(missing_ok=True)


@click.command()
@click.option("--role", type=click.Choice(["district", "hub"]), required=True)
@click.option("--node-id", required=True)
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="default: ./var/<node-id>")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="where to write the config (default: <data-dir>/simpul.toml)")
@click.option("--name", default="")
@click.option("--region", default=None)
@click.option("--host", default="127.0.0.1")
@click.option("--port", type=int, default=8700)
@click.option("--database-url", default="", help="default: SQLite in the data dir")
@click.option("--hub-url", default="", help="district: the hub's URL")
@click.option("--hub-keys", type=click.Path(exists=True, dir_okay=False), default=None,
              help="district: the hub's public keys (JSON from 'simpul keys show --json')")
@click.option("--federation", "federation_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="load regions, institutions and nodes from a federation.json")
@fail_cleanly
def init(role, node_id, data_dir, config_path, name, region, host, port, database_url, hub_url, hub_keys,
         federation_file):
    """Write a config, generate keys, create and migrate the database."""
    from node import directory
    from node.config import parse_settings
    from schemas.directory import NODE_ID_PATTERN
    if not re.match(NODE_ID_PATTERN, node_id):
        raise ConfigError(f"node_id: {node_id!r} must be 2 to 48 lowercase letters, digits and dashes, "
                          "not starting with a dash")
    data = Path(data_dir or Path("var") / node_id).resolve()
    cfg_path = Path(config_path or data / "simpul.toml").resolve()
    if cfg_path.exists():
        raise ConfigError(f"config: {cfg_path} already exists; refusing to overwrite it")
    hub = directory.read_keys_file(hub_keys, "hub_keys") if hub_keys else None
    fed = directory.read_federation(federation_file) if federation_file else None
    cfg = {"node_id": node_id, "role": role, "name": name, "data_dir": str(data), "host": host, "port": port,
           "admin_password": secrets.token_urlsafe(12),
           "tokens": {r: secrets.token_urlsafe(24) for r in ("intake", "operator", "admin")}}
    if region:
        cfg["region"] = region
    if database_url:
        cfg["database_url"] = database_url
    if hub_url or hub:
        cfg["hub"] = _hub_link(hub_url, hub, hub_keys)
    settings = parse_settings(cfg)
    _refuse_another_nodes(settings)
    created = Created()
    try:
        keys = _create(created, data, cfg_path, settings, cfg, fed, hub, hub_url)
    except BaseException:
        created.undo()
        raise
    click.echo(f"initialised {role} node {node_id}")
    click.echo(f"  config:   {cfg_path}")
    click.echo(f"  database: {settings.db_url}")
    click.echo(f"  keys:     {', '.join(k.key_id for k in keys)}")
    if settings.not_syncing:
        click.echo(f"warning: {settings.not_syncing}")
    click.echo(f"next: simpul run --config {cfg_path}")


def _create(created: Created, data: Path, cfg_path: Path, settings, cfg: dict, fed, hub, hub_url: str) -> list:
    """Data folder, keys, database (and what the files bring into it), then the config; returns the public keys."""
    from adapters.storage import SqlStorage, migrate
    from node import directory
    from node.keys import KeyRing
    created.mkdir(data)
    # The database holds reporters' identities in clear (at their origin): owner only, like the keys and
    # the config. Before, with the usual umask, any local user could read them.
    os.chmod(data, 0o700)
    created.mkdir(settings.keys_dir.parent)
    created.watch(settings.keys_dir)
    ring = KeyRing.create(settings.node_id, settings.keys_dir)
    for path in _sqlite_files(settings.db_url):
        created.watch(path)
    for path in _sqlite_files(settings.db_url)[:1]:   # (SQLite gives its -wal and -shm files the same mode)
        if path.parent.is_dir():   # (a folder that is not there: the database cannot be created, said below)
            path.touch(mode=0o600)
    storage = SqlStorage(settings.db_url)
    try:
        migrate.upgrade(storage)
        if fed or hub:
            with storage.transaction() as tx:
                if fed:
                    directory.store_federation(tx, fed)
                if hub:
                    _trust_hub(tx, hub, hub_url)
    finally:
        storage.dispose()
    _write_config(created, cfg_path, cfg)
    return ring.public_keys()


def _refuse_another_nodes(settings) -> None:
    """A data folder that holds keys or a database already is another node's (or this one's, its config
    lost): init would take them over under a new id. Before, it did."""
    from node.keys import holds_keys
    keys = settings.keys_dir
    if holds_keys(keys):
        raise ConfigError(f"data_dir: {keys} holds keys already (another node's?); a new node needs a folder "
                          "of its own")
    for path in _sqlite_files(settings.db_url):
        if path.exists():
            raise ConfigError(f"database_url: {path} exists already (another node's?); a new node needs a "
                              "database of its own")


def _sqlite_files(db_url: str) -> list[Path]:
    from sqlalchemy.engine import make_url
    url = make_url(db_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return []
    db = Path(url.database)
    return [db, *(db.with_name(db.name + suffix) for suffix in ("-wal", "-shm", "-journal"))]


def _write_config(created: Created, cfg_path: Path, cfg: dict) -> None:
    """Write to a temporary file (mode 0600) and link it into place: never half a config, never over one."""
    created.mkdir(cfg_path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{cfg_path.name}.", dir=cfg_path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(tomli_w.dumps(cfg))
        try:
            os.link(tmp, cfg_path)
        except FileExistsError as exc:
            raise ConfigError(f"config: {cfg_path} already exists; refusing to overwrite it") from exc
    finally:
        os.unlink(tmp)


def _hub_link(hub_url: str, hub, hub_keys: str) -> dict:
    link = {"url": hub_url}
    if hub:
        if hub.role != "hub":
            raise ValidationError(f"hub_keys: {hub_keys} holds the keys of {hub.node_id}, a {hub.role}, not of "
                                  "the hub")
        sig = next((k for k in hub.keys if k.kind == "signing" and k.current), None)
        if sig is None:
            raise ValidationError(f"hub_keys: {hub_keys} holds no current signing key")
        link.update(node_id=hub.node_id, signing_key_id=sig.key_id, signing_public=sig.public)
    return link


def _trust_hub(tx, hub, url: str) -> None:
    tx.put_node(hub.node_id, role="hub", url=url, enrolled_at=time.time())
    for k in hub.keys:
        tx.put_key(k.key_id, node_id=hub.node_id, kind=k.kind, public=k.public, valid_from=time.time())
