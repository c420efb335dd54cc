"""The ``simpul`` command line (click). Every command takes ``--config``.

Errors print one line, ``simpul: <message>``, and exit non-zero; nothing is
changed when a command fails.
"""
from __future__ import annotations

import errno
import json
import logging
import secrets
import socket
import sys
from pathlib import Path

import click
import tomli_w

from node.cli_admin import register
from node.cli_common import CONFIG, fail_cleanly, open_node
from node.errors import ConfigError


@click.group()
def main() -> None:
    """Simpul: a federated sync node for SP4N-LAPOR! complaints."""


@main.command()
@click.option("--role", type=click.Choice(["district", "hub"]), required=True)
@click.option("--node-id", required=True)
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="default: ./var/<node-id>")
@CONFIG
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
    import re
    from adapters.storage import SqlStorage, migrate
    from node.config import NODE_ID_PATTERN, load_settings
    from node.keys import KeyRing
    if not re.match(NODE_ID_PATTERN, node_id):
        raise ConfigError(f"node_id: {node_id!r} must be lowercase letters, digits and dashes")
    data = Path(data_dir or Path("var") / node_id).resolve()
    cfg_path = Path(config_path or data / "simpul.toml").resolve()
    if cfg_path.exists():
        raise ConfigError(f"config: {cfg_path} already exists; refusing to overwrite it")
    data.mkdir(parents=True, exist_ok=True)
    cfg = {"node_id": node_id, "role": role, "name": name, "data_dir": str(data), "host": host, "port": port,
           "admin_password": secrets.token_urlsafe(12),
           "tokens": {r: secrets.token_urlsafe(24) for r in ("intake", "operator", "admin")}}
    if region:
        cfg["region"] = region
    if database_url:
        cfg["database_url"] = database_url
    if hub_url or hub_keys:
        cfg["hub"] = _hub_link(hub_url, hub_keys)
    cfg_path.parent.mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(tomli_w.dumps(cfg), encoding="utf-8")
    cfg_path.chmod(0o600)
    settings = load_settings(cfg_path)
    ring = KeyRing.create(node_id, settings.keys_dir)
    storage = SqlStorage(settings.db_url)
    migrate.upgrade(storage)
    if federation_file or hub_keys:
        from node import directory
        with storage.transaction() as tx:
            if federation_file:
                directory.load_federation(tx, Path(federation_file))
            if hub_keys:
                _trust_hub(tx, json.loads(Path(hub_keys).read_text()), hub_url)
    storage.dispose()
    click.echo(f"initialised {role} node {node_id}")
    click.echo(f"  config:   {cfg_path}")
    click.echo(f"  database: {settings.db_url}")
    click.echo(f"  keys:     {', '.join(k.key_id for k in ring.public_keys())}")
    click.echo(f"next: simpul run --config {cfg_path}")


def _hub_link(hub_url: str, hub_keys: str | None) -> dict:
    link = {"url": hub_url}
    if hub_keys:
        keys = json.loads(Path(hub_keys).read_text())
        sig = next(k for k in keys["keys"] if k["kind"] == "signing" and k["current"])
        link.update(node_id=keys["node_id"], signing_key_id=sig["key_id"], signing_public=sig["public"])
    return link


def _trust_hub(tx, keys: dict, url: str) -> None:
    import time
    tx.put_node(keys["node_id"], role="hub", url=url, enrolled_at=time.time())
    for k in keys["keys"]:
        tx.put_key(k["key_id"], node_id=keys["node_id"], kind=k["kind"], public=k["public"], valid_from=time.time())


@main.command()
@CONFIG
@click.option("--host", default=None)
@click.option("--port", type=int, default=None)
@fail_cleanly
def run(config_path, host, port):
    """Serve the node (API, federation, console, periodic jobs)."""
    from aiohttp import web
    from adapters.http.app import build_app
    from node.config import load_settings
    from node.core import Node
    s = load_settings(config_path, {"host": host, "port": port})
    sockets = _listen(s.host, s.port)
    node = Node(s)
    if s.federation_file:
        from node import directory
        with node.storage.transaction() as tx:
            directory.load_federation(tx, s.federation_file)
    logging.basicConfig(level=s.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    click.echo(f"simpul {s.role} {s.node_id} serving on http://{s.host}:{s.port} (database {node.storage.dialect})")
    web.run_app(build_app(node), sock=sockets, print=None, access_log=None)


def _listen(host: str, port: int) -> list[socket.socket]:
    """Bind the listening sockets before anything starts, the way aiohttp would (every address of
    ``host``, SO_REUSEADDR), so that a port in use or a host that is not this machine's is one line."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"host: cannot listen on {host!r}: {exc.strerror}") from exc
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        key = "host" if exc.errno == errno.EADDRNOTAVAIL else "port"
        raise ConfigError(f"{key}: cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sockets


@main.command()
@CONFIG
@fail_cleanly
def verify(config_path):
    """Re-hash the local log; check chains and signatures."""
    from node.verify import verify_log
    node = open_node(config_path)
    report = verify_log(node.storage, node.keys)
    for problem in report.problems:
        click.echo(f"FAIL {problem}")
    click.echo(f"checked {report.checked} events: {'ok' if report.ok else f'{len(report.problems)} problem(s)'}")
    sys.exit(0 if report.ok else 1)


@main.command()
@CONFIG
@click.option("--json", "as_json", is_flag=True)
@fail_cleanly
def status(config_path, as_json):
    """Per-peer sync state: last contact, checkpoint, queue, backoff, dead letters."""
    import time
    from node.status import sync_status
    node = open_node(config_path)
    with node.storage.read() as tx:
        st = sync_status(tx, node.node_id)
    if as_json:
        click.echo(json.dumps(st, indent=2))
        return
    click.echo(f"{node.role} {node.node_id}: {st['events']} events; tickets {st['tickets_by_status']}")
    click.echo(f"{'peer':<18}{'last contact':>14}{'acked':>9}{'cursor':>9}{'queue':>8}{'fails':>7}{'retry in':>10}"
               f"{'dead':>6}{'repairs':>9}")
    for p in st["peers"]:
        ago = f"{time.time() - p['last_contact']:.0f}s ago" if p["last_contact"] else "never"
        click.echo(f"{p['peer']:<18}{ago:>14}{p['checkpoint']['acked']:>9}{p['checkpoint']['cursor']:>9}"
                   f"{p['queue_depth']:>8}{p['backoff']['failures']:>7}{p['backoff']['retry_in_s']:>9}s"
                   f"{p['dead_letters']:>6}{p['repairs']:>9}")
        if p["backoff"]["last_error"]:
            click.echo(f"  last error: {p['backoff']['last_error'][:150]}")


register(main)

if __name__ == "__main__":
    main()
