"""The ``simpul`` command line (click). Every command takes ``--config``.

Errors print one line, ``simpul: <message>``, and exit non-zero; nothing is
changed when a command fails.
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import socket
import sys
from pathlib import Path

import click

from node import collector, logfmt
from node.cli_admin import register
from node.cli_common import CONFIG, OneLineErrors, fail_cleanly, open_node
from node.cli_init import init
from node.errors import ConfigError, SimpulError, StorageError


@click.group(cls=OneLineErrors)
def main() -> None:
    """Simpul: a federated sync node for SP4N-LAPOR! complaints."""


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
    from node.eventloop import new_loop
    s = load_settings(config_path, {"host": host, "port": port})
    running = _data_lock(s.data_dir, fcntl.LOCK_SH)   # (held while this process lives: see 'migrate')
    loop, kind = new_loop(s.event_loop)
    sockets = _listen(s.host, s.port)
    node = Node(s)
    if s.federation_file:
        from node import directory
        with node.storage.transaction() as tx:
            directory.load_federation(tx, s.federation_file)
    logfmt.configure(s.log_level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    click.echo(f"simpul {s.role} {s.node_id} serving on http://{s.host}:{s.port} "
               f"(database {node.storage.dialect}, event loop {kind})")
    if s.not_syncing:
        logging.getLogger("simpul").warning("%s", s.not_syncing)
    app = build_app(node)
    collector.tune()
    web.run_app(app, sock=sockets, print=None, access_log=None, loop=loop)
    logging.getLogger("simpul").info("%s %s stopped", s.role, s.node_id)
    del running   # (the lock is held until here)


def _data_lock(data_dir: Path, how: int):
    """A lock on ``<data_dir>/simpul.lock``: shared by every ``simpul run`` of the node (a hub may run in
    several processes), exclusive for ``simpul migrate``, which must not change the schema under a running
    node (before, an old node serving through a migration wrote where the new schema no longer reads, and
    a pending identity was lost). The open file, to keep; None where the folder is not writable."""
    try:
        fh = open(data_dir / "simpul.lock", "a")   # noqa: SIM115 - held for the process's life
    except OSError:
        return None
    try:
        fcntl.flock(fh, how)
    except BlockingIOError:
        fh.close()
        raise ConfigError(f"data_dir: a node is running with {data_dir} (simpul run); stop it, every process "
                          "of it, before 'simpul migrate'") from None
    return fh


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
def migrate(config_path):
    """Bring this node's database to the schema of this version of Simpul (after an upgrade)."""
    from adapters.storage import SqlStorage
    from adapters.storage import migrate as migrations
    from node.config import load_settings
    settings = load_settings(config_path)
    lock = _data_lock(settings.data_dir, fcntl.LOCK_EX | fcntl.LOCK_NB)
    storage = SqlStorage(settings.db_url)
    try:
        was = migrations.behind(storage)
        if was is None:
            click.echo(f"database already at revision {migrations.head_revision()}; nothing to do")
            return
        try:
            migrations.upgrade(storage)
        except SimpulError:
            raise
        except Exception as exc:   # (a migration's own check of the data: one line, as for any command)
            now = migrations.current_revision(storage)
            raise StorageError(f"migrating to revision {migrations.head_revision()} failed ({exc}); the database "
                               f"is at revision {now}") from exc
        click.echo(f"database migrated from revision {was} to {migrations.head_revision()}")
    finally:
        storage.dispose()
        if lock is not None:
            lock.close()


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
    if node.settings.not_syncing:
        click.echo(f"warning: {node.settings.not_syncing}")
    click.echo(f"{'peer':<18}{'last contact':>14}{'acked':>9}{'cursor':>9}{'queue':>8}{'fails':>7}{'retry in':>10}"
               f"{'dead':>6}{'repairs':>9}")
    for p in st["peers"]:
        ago = f"{time.time() - p['last_contact']:.0f}s ago" if p["last_contact"] else "never"
        click.echo(f"{p['peer']:<18}{ago:>14}{p['checkpoint']['acked']:>9}{p['checkpoint']['cursor']:>9}"
                   f"{p['queue_depth']:>8}{p['backoff']['failures']:>7}{p['backoff']['retry_in_s']:>9}s"
                   f"{p['dead_letters']:>6}{p['repairs']:>9}")
        if p["backoff"]["last_error"]:
            click.echo(f"  last error: {p['backoff']['last_error'][:150]}")
    if st["chain_recovery"]:
        r = st["chain_recovery"]
        click.echo(f"chain recovered from the hub at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(r['at']))}: "
                   f"{r['recovered']} event(s) taken back, {r['resigned']} signed again, "
                   f"{len(r['renumbered'])} tracking number(s) changed, {len(r['dropped'])} action(s) dropped")
        for _, old, new in r["renumbered"]:
            click.echo(f"  tracking number {old} is now {new}")


main.add_command(init)
register(main)

if __name__ == "__main__":
    main()
