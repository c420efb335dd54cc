"""Admin sub-commands: keys, nodes (enrolment), federation file, dead letters."""
from __future__ import annotations

import json
import time

import click

from node.cli_common import CONFIG, fail_cleanly, open_node
from node.errors import ValidationError


def register(main: click.Group) -> None:
    main.add_command(keys)
    main.add_command(nodes)
    main.add_command(federation)
    main.add_command(dead_letters)
    from node.cli_conflicts import conflicts
    main.add_command(conflicts)
    from node.cli_identity import institutions
    main.add_command(institutions)
    from node.cli_demo import demo
    main.add_command(demo)


@click.group()
def keys():
    """Show or rotate this node's keys."""


@keys.command("show")
@CONFIG
@click.option("--json", "as_json", is_flag=True, help="machine-readable, for 'nodes enroll --keys'")
@fail_cleanly
def keys_show(config_path, as_json):
    node = open_node(config_path)
    items = [k.__dict__ for k in node.keys.public_keys()]
    if as_json:
        click.echo(json.dumps({"node_id": node.node_id, "role": node.role, "url": node.settings.url, "keys": items},
                              indent=2))
        return
    for k in items:
        click.echo(f"{k['key_id']:<28}{k['kind']:<9}{'current' if k['current'] else 'old':<9}{k['public']}")


@keys.command("rotate")
@CONFIG
@click.option("--kind", type=click.Choice(["signing", "sealing"]), required=True)
@fail_cleanly
def keys_rotate(config_path, kind):
    """Create a new current key; old keys stay so history still verifies."""
    node = open_node(config_path)
    key_id = node.keys.rotate(kind)
    if node.role == "hub" and kind == "signing":
        click.echo(f"new signing key {key_id}, endorsed by the key it replaces; restart the hub to sign with "
                   f"it, and districts learn it the first time the hub answers or pushes to them with it")
        return
    click.echo(f"new {kind} key {key_id}; re-enroll at the hub so peers learn it "
               f"(simpul keys show --json | simpul nodes enroll ...)")


@click.group()
def nodes():
    """The hub's node directory: enroll, revoke, list."""


@nodes.command("enroll")
@CONFIG
@click.option("--keys", "keys_file", type=click.Path(exists=True, dir_okay=False), required=True,
              help="the node's 'simpul keys show --json' output")
@click.option("--url", default=None, help="the node's URL (default: the one in the keys file)")
@click.option("--name", default="")
@click.option("--region", default=None)
@fail_cleanly
def nodes_enroll(config_path, keys_file, url, name, region):
    from node import directory
    shown = directory.read_keys_file(keys_file)
    node = open_node(config_path)
    if node.role != "hub":
        raise ValidationError("enrolment happens at the hub; this node is a district")
    req = {"node_id": shown.node_id, "role": shown.role, "url": url or shown.url, "name": name, "region": region,
           "keys": [k.model_dump() for k in shown.keys]}
    with node.storage.transaction() as tx:
        entry = directory.enroll(tx, req)
    click.echo(f"enrolled {entry['node_id']} at {entry['url']}")


@nodes.command("revoke")
@CONFIG
@click.argument("node_id")
@fail_cleanly
def nodes_revoke(config_path, node_id):
    from node import directory
    node = open_node(config_path)
    with node.storage.transaction() as tx:
        directory.revoke(tx, node_id, role=node.role, self_id=node.node_id)
    click.echo(f"revoked {node_id}: its requests and keys are refused from now on")


@nodes.command("list")
@CONFIG
@fail_cleanly
def nodes_list(config_path):
    node = open_node(config_path)
    with node.storage.read() as tx:
        rows = tx.nodes()
    for n in rows:
        if n["node_id"] == node.node_id:
            state = "this node"
        elif n["revoked_at"]:
            state = "revoked"
        else:
            state = "enrolled" if n["enrolled_at"] else "not enrolled"
        click.echo(f"{n['node_id']:<18}{n['role']:<10}{state:<14}{n['url']}")


@click.group()
def federation():
    """Load regions, institutions and nodes from a federation.json."""


@federation.command("load")
@CONFIG
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@fail_cleanly
def federation_load(config_path, path):
    from node import directory
    fed = directory.read_federation(path)
    node = open_node(config_path)
    with node.storage.transaction() as tx:
        counts = directory.store_federation(tx, fed)
    click.echo(f"loaded {counts['regions']} regions, {counts['institutions']} institutions, {counts['nodes']} nodes")
    if counts["retired"]:
        click.echo(f"not in the file, so no longer routed to (their records and keys stay): "
                   f"{', '.join(counts['retired'])}")


@click.group("dead-letters")
def dead_letters():
    """Items that failed permanently: list and replay."""


@dead_letters.command("list")
@CONFIG
@fail_cleanly
def dead_list(config_path):
    node = open_node(config_path)
    with node.storage.read() as tx:
        rows = tx.dead_letters()
    if not rows:
        click.echo("no dead letters")
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["created_at"]))
        click.echo(f"#{r['id']:<5} to {r['dest']:<16} {when}  event {r['event_id'][:16]}…  {r['reason'][:120]}")


@dead_letters.command("replay")
@CONFIG
@click.option("--id", "ids", type=int, multiple=True, help="replay only these (default: all)")
@fail_cleanly
def dead_replay(config_path, ids):
    from node.sync import replay_dead_letters
    node = open_node(config_path)
    count = replay_dead_letters(node.storage, list(ids) or None)
    click.echo(f"queued {count} dead letter(s) again; the running node sends them at its next wake")
