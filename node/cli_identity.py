"""``simpul institutions``: sealing keys of institutions hosted on the hub.

An institution that runs no node of its own (PLN, BPJS Kesehatan, a ministry's
regional office) has its inbox on the hub. Identities for it are sealed to a
key of its own, not to the hub's: ``keygen`` makes an X25519 key, stores the
private part only wrapped by a passphrase that the institution's operators
hold (node.sealing.wrap_private_key: scrypt + ChaCha20-Poly1305), and the
public part in the directory, which the hub publishes to the origin nodes.

The passphrase is read from ``--passphrase-file`` or the environment variable
``SIMPUL_INSTITUTION_PASSPHRASE``, never from a command-line argument (those
show up in ``ps`` and shell history). The hub keeps no copy of it.
"""
from __future__ import annotations

import json
import os

import click
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from node.cli_common import CONFIG, fail_cleanly, open_node
from node.errors import ConfigError, NotFound, ValidationError
from node.inputs import read_text
from node.sealing import public_b64, wrap_private_key

PASSPHRASE_ENV = "SIMPUL_INSTITUTION_PASSPHRASE"
MIN_PASSPHRASE = 12


def read_passphrase(passphrase_file: str | None) -> str:
    if passphrase_file:
        text = read_text(passphrase_file, "passphrase", ConfigError)
        passphrase = text[:-1] if text.endswith("\n") else text
        passphrase = passphrase[:-1] if passphrase.endswith("\r") else passphrase
    else:
        passphrase = os.environ.get(PASSPHRASE_ENV, "")
    if not passphrase and passphrase_file:
        raise ConfigError(f"passphrase: {passphrase_file} is empty")
    if not passphrase:
        raise ConfigError(f"passphrase: give --passphrase-file or set {PASSPHRASE_ENV}")
    if len(passphrase) < MIN_PASSPHRASE:
        raise ValidationError(f"passphrase: at least {MIN_PASSPHRASE} characters")
    return passphrase


@click.group()
def institutions():
    """Institutions hosted on the hub: their own sealing keys."""


@institutions.command("keygen")
@CONFIG
@click.option("--id", "institution_id", required=True, help="institution id, e.g. pln-uid-kaltimra")
@click.option("--passphrase-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help=f"file holding the passphrase (default: ${PASSPHRASE_ENV})")
@fail_cleanly
def keygen(config_path, institution_id, passphrase_file):
    """Give a hub-hosted institution a passphrase-wrapped sealing key."""
    passphrase = read_passphrase(passphrase_file)
    node = open_node(config_path)
    if node.role != "hub":
        raise ValidationError("institution keys live at the hub; this node is a district")
    private = X25519PrivateKey.generate()
    with node.storage.transaction() as tx:
        inst = next((i for i in tx.institutions() if i["id"] == institution_id), None)
        if inst is None:
            raise NotFound(f"institution {institution_id} is not in the directory (simpul federation load ...)")
        if inst["node_id"] != node.node_id:
            raise ValidationError(f"institution {institution_id} is hosted by node {inst['node_id']}, whose own "
                                  "sealing key protects its identities; only hub-hosted institutions get keys here")
        if inst.get("sealing_key_id"):
            raise ValidationError(f"institution {institution_id} already has sealing key {inst['sealing_key_id']}; "
                                  "rotating institution keys is not supported yet")
        key_id = f"{institution_id}#seal-1"
        tx.put_institution({**inst, "sealing_key_id": key_id, "sealing_public": public_b64(private.public_key()),
                            "wrapped_private": json.dumps(wrap_private_key(private, passphrase))})
    click.echo(f"new sealing key {key_id} for {institution_id}; its private part is wrapped by the passphrase "
               "(keep it with the institution's operators: without it no identity sealed to it can be opened)")


@institutions.command("list")
@CONFIG
@fail_cleanly
def list_institutions(config_path):
    """Institutions hosted on this hub and whether they have a sealing key."""
    node = open_node(config_path)
    with node.storage.read() as tx:
        rows = [i for i in tx.institutions() if i["node_id"] == node.node_id]
    for i in rows:
        click.echo(f"{i['id']:<24}{i.get('sealing_key_id') or 'NO SEALING KEY (identities stay pending)'}")
