"""A sample federation set up as an operator would, for the bench and the soak.

Every node of ``federation.json`` is initialised and enrolled at the hub (so
the directory is complete, as in production), and each institution hosted on
the hub gets its sealing key (``simpul institutions keygen``), so reporters'
identities can be sealed to it. Which processes then run is up to the caller.
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from benchlib.common import federation_file


def federation(folder: Path, node_ids: list[str] | None = None, env: dict | None = None,
               database_urls: dict[str, str] | None = None):
    """Initialise the hub and ``node_ids`` (default: every district) and enrol them; ``database_urls``:
    node id -> an empty database for that node (else its SQLite file)."""
    from node.cluster import Cluster, ClusterError, simpul
    c = Cluster(folder, federation_file(), node_ids=node_ids, env=env, database_urls=database_urls)
    c.init()
    passphrase = folder / "institutions.passphrase"
    passphrase.write_text(secrets.token_urlsafe(24))
    os.chmod(passphrase, 0o600)
    hub_config = str(c.proc(c.hub_id).config)
    fed = json.loads(federation_file().read_text(encoding="utf-8"))
    for inst in fed["institutions"]:
        if (inst.get("node") or inst.get("node_id")) == c.hub_id:
            code, out = simpul("institutions", "keygen", "--config", hub_config, "--id", inst["id"],
                               "--passphrase-file", str(passphrase))
            if code:
                raise ClusterError(f"institutions keygen {inst['id']} failed: {out.strip()}")
    return c
