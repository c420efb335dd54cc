"""``simpul conflicts list|show|resolve``."""
from __future__ import annotations

import json

import click
import orjson

from node.cli_common import CONFIG, fail_cleanly, open_node


@click.group()
def conflicts():
    """Sync conflicts that no merge rule settles."""


@conflicts.command("list")
@CONFIG
@click.option("--status", type=click.Choice(["open", "resolved"]), default=None)
@fail_cleanly
def conflicts_list(config_path, status):
    node = open_node(config_path)
    items = node.conflicts.list(status)
    if not items:
        click.echo("no conflicts")
    for c in items:
        click.echo(f"{c['id']}  {c['status']:<9}{c['kind']:<22}{c['tracking_id']:<24}"
                   f"provisional winner {c['provisional_winner']}")


@conflicts.command("show")
@CONFIG
@click.argument("conflict_id")
@click.option("--json", "as_json", is_flag=True)
@fail_cleanly
def conflicts_show(config_path, conflict_id, as_json):
    node = open_node(config_path)
    c = node.conflicts.get(conflict_id)
    if as_json:
        click.echo(json.dumps(c, indent=2, ensure_ascii=False))
        return
    click.echo(f"conflict {c['id']} ({c['kind']}) on {c['tracking_id']}: {c['status']}")
    for side in c["sides"]:
        mark = " (provisional winner)" if side["label"] == c["provisional_winner"] else ""
        click.echo(f"side {side['label']} by {side['author']}{mark}:")
        for e in side["events"]:
            click.echo(f"    {e['type']:<14}{e['hlc']}  {json.dumps(e['payload'], ensure_ascii=False)[:90]}")
        for k, v in side["state"].items():
            flag = "*" if k in c["differs"] else " "
            click.echo(f"  {flag} {k:<12}{str(v)[:100]}")
    if c["resolution"]:
        r = c["resolution"]
        click.echo(f"resolved by {r['author']}: {r['winner']} ({r['reason']})")


@conflicts.command("resolve")
@CONFIG
@click.argument("conflict_id")
@click.option("--winner", type=click.Choice(["A", "B"]), default=None)
@click.option("--state", "state_json", default=None, help='merged state as JSON, e.g. \'{"status": "closed"}\'')
@click.option("--reason", required=True)
@fail_cleanly
def conflicts_resolve(config_path, conflict_id, winner, state_json, reason):
    from node.errors import ValidationError
    try:
        state = orjson.loads(state_json) if state_json else None   # (nested past 1024 levels: a ValueError)
    except ValueError as exc:
        raise ValidationError(f"--state is not valid JSON: {exc}") from exc
    node = open_node(config_path)
    c = node.conflicts.resolve(conflict_id, winner=winner, state=state, reason=reason, actor="cli")
    click.echo(f"resolved {c['id']}: {c['resolution']['winner'] if c['resolution'] else ''}; "
               "the running node sends the resolution at its next wake")
