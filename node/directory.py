"""The node directory: enrolment at the hub, loading the federation file, and
the copy a district keeps of the hub's directory.

Enrolling is an explicit admin step (``simpul nodes enroll`` or
``POST /api/v1/admin/nodes``): the hub records the node's URL and public keys
(signing and sealing, each with a validity start). Revoking closes the
validity of its keys; a revoked or unknown node's requests are refused.
"""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError as PydanticError, model_validator

from node.errors import ConfigError, Conflict, NotFound, ValidationError
from node.inputs import first_error, read_json
from node.keys import check_signing_public, endorsed_keys, load_sealing_public
from schemas.directory import NODE_ID_PATTERN, EnrollIn, KeyIn, KeysFile


def _check_keys(node_id: str, keys: list[KeyIn]) -> None:
    if not any(k.kind == "signing" and k.current for k in keys):
        raise ValidationError(f"keys of {node_id}: no current signing key (the one its requests and events "
                              "are signed with)")
    for key in keys:
        if not key.key_id.startswith(node_id + "#"):
            raise ValidationError(f"key {key.key_id} does not belong to node {node_id}")
        try:
            (check_signing_public if key.kind == "signing" else load_sealing_public)(key.public)
        except ValueError as exc:
            raise ValidationError(f"key {key.key_id} is not a valid {key.kind} public key") from exc


def read_keys_file(path: str | Path, what: str = "keys file") -> KeysFile:
    """A ``simpul keys show --json`` file, checked whole: its shape and every key in it."""
    keys = read_json(path, what, KeysFile)
    try:
        _check_keys(keys.node_id, keys.keys)
    except ValidationError as exc:
        raise ValidationError(f"{what}: {path}: {exc}") from exc
    return keys


def enroll(tx, data: dict, now: float | None = None) -> dict:
    try:
        req = EnrollIn.model_validate(data)
    except PydanticError as exc:
        raise ValidationError(first_error(exc)) from exc
    now = time.time() if now is None else now
    _check_keys(req.node_id, req.keys)
    known = {k.key_id: tx.get_key(k.key_id) for k in req.keys}
    for key in req.keys:
        if known[key.key_id] is not None and known[key.key_id]["public"] != key.public:
            # Events signed under this id would no longer verify: a new key takes a new id (keys rotate).
            raise Conflict(f"key {key.key_id} is enrolled already, with another public key; a new key needs "
                           "a new id ('simpul keys rotate' gives it one)")
    existing = tx.get_node(req.node_id) or {}
    tx.put_node(req.node_id, role=req.role, name=req.name or existing.get("name", ""), url=req.url,
                region=req.region or existing.get("region"), enrolled_at=now)
    for key in req.keys:
        tx.put_key(key.key_id, node_id=req.node_id, kind=key.kind, public=key.public,
                   valid_from=known[key.key_id]["valid_from"] if known[key.key_id] else now)
    return tx.get_node(req.node_id)


def revoke(tx, node_id: str, *, role: str, self_id: str) -> dict:
    """Revoke ``node_id`` at the hub (``role``/``self_id``: the node doing it). A district's copy of the
    directory is the hub's, and its next refresh would undo a revocation made there; no node revokes
    itself (a hub that did would refuse its own answers)."""
    if role != "hub":
        raise NotFound("revoking a node happens at the hub; this node is a district")
    if node_id == self_id:
        raise ValidationError(f"{node_id} is this node; a node cannot revoke itself")
    if tx.get_node(node_id) is None:
        raise NotFound(f"node {node_id} is not in the directory")
    tx.revoke_node(node_id)
    return tx.get_node(node_id)


class FederationNode(BaseModel):
    model_config = ConfigDict(strict=True)
    node_id: str = Field(pattern=NODE_ID_PATTERN)
    role: Literal["district", "hub"] = "district"
    name: str = ""
    region: str | None = None


class FederationRegion(BaseModel):
    model_config = ConfigDict(strict=True)
    code: str = Field(min_length=1)
    name: str
    level: str
    parent: str | None = None


class FederationInstitution(BaseModel):
    model_config = ConfigDict(strict=True)
    id: str = Field(min_length=1)
    name: str
    node: str = Field(min_length=1)
    region: str | None = None
    competences: list[str] = []
    ppid: bool = False


class Federation(BaseModel):
    """A federation.json; its other keys (about, categories, kecamatan, ...) are for people and other tools.

    Checked whole, as one directory: every id once, and every reference (a region's parent, a node's or an
    institution's region, an institution's node) to something the file holds. Before, a second institution
    of the same id silently replaced the first, and one hosted on a node nobody runs was routed to."""
    nodes: list[FederationNode] = []
    regions: list[FederationRegion] = []
    institutions: list[FederationInstitution] = []

    @model_validator(mode="after")
    def _whole(self) -> "Federation":
        if not (self.nodes or self.regions or self.institutions):
            raise ValueError("holds no nodes, regions or institutions")
        for what, ids in (("node", [n.node_id for n in self.nodes]), ("region", [r.code for r in self.regions]),
                          ("institution", [i.id for i in self.institutions])):
            twice = sorted(i for i, n in Counter(ids).items() if n > 1)
            if twice:
                raise ValueError(f"{what} id(s) listed twice: {', '.join(twice)}")
        codes, nodes = {r.code for r in self.regions}, {n.node_id for n in self.nodes}
        refs = [(f"region {r.code}'s parent", r.parent, codes - {r.code}) for r in self.regions if r.parent]
        refs += [(f"node {n.node_id}'s region", n.region, codes) for n in self.nodes if n.region]
        refs += [(f"institution {i.id}'s region", i.region, codes) for i in self.institutions if i.region]
        refs += [(f"institution {i.id}'s node", i.node, nodes) for i in self.institutions]
        for where, ref, known in refs:
            if ref not in known:
                raise ValueError(f"{where} {ref} is not in the file")
        return self


def read_federation(path: str | Path) -> Federation:
    """The federation file, checked whole before anything is stored."""
    return read_json(path, "federation_file", Federation, ConfigError)


def load_federation(tx, path: str | Path) -> dict:
    """Load nodes (not enrolled: that stays an admin step), regions and institutions."""
    return store_federation(tx, read_federation(path))


def store_federation(tx, fed: Federation) -> dict:
    """The file is where names and regions come from: a node already in the directory (enrolled before the
    file was loaded, say) takes the file's name and region where the file gives them, and keeps its role,
    URL, enrolment and keys. It is where the routing rules come from too: an institution in the directory
    that the file no longer lists keeps its record (tickets name it, and an institution on the hub keeps
    its sealing key) but loses its competences, so that no rule routes to it and a reporter's choice of it
    is returned as bukan wewenang. Before, it went on taking tickets, and the load's count left it out."""
    for node in fed.nodes:
        if tx.get_node(node.node_id) is None:
            tx.put_node(node.node_id, role=node.role, name=node.name, region=node.region)
        else:
            tx.describe_node(node.node_id, name=node.name or None, region=node.region)
    for region in fed.regions:
        tx.put_region(region.code, region.name, region.level, region.parent)
    for inst in fed.institutions:
        tx.put_institution({"id": inst.id, "name": inst.name, "node_id": inst.node, "region": inst.region,
                            "competences": inst.competences, "ppid": inst.ppid})
    listed = {inst.id for inst in fed.institutions}
    retired = [row for row in tx.institutions() if row["id"] not in listed and row["competences"]]
    for row in retired:
        tx.put_institution({**row, "competences": []})
    return {"nodes": len(fed.nodes), "regions": len(fed.regions), "institutions": len(fed.institutions),
            "retired": [row["id"] for row in retired]}


def snapshot(tx) -> dict:
    """The directory as the hub publishes it to enrolled nodes."""
    nodes = [{k: n[k] for k in ("node_id", "role", "name", "url", "region", "enrolled_at", "revoked_at")}
             for n in tx.nodes()]
    keys = [{k: r[k] for k in ("key_id", "node_id", "kind", "public", "valid_from", "valid_until")}
            for r in tx.node_keys()]
    insts = [{k: i.get(k) for k in ("id", "name", "node_id", "region", "competences", "ppid", "sealing_key_id",
                                     "sealing_public")} for i in tx.institutions()]
    return {"nodes": nodes, "keys": keys, "institutions": insts, "regions": tx.regions()}


def learn_endorsed(tx, node_id: str, offered: dict, now: float | None = None) -> list[str]:
    """Store the signing keys of ``node_id`` that ``offered`` (its ``GET /federation/v1/keys``) links by
    endorsements to a key trusted here for it (node.keys.endorsed_keys); return their ids."""
    now = time.time() if now is None else now
    node = tx.get_node(node_id)
    if node is None or node.get("revoked_at") or offered.get("node_id") != node_id:
        return []
    trusted = {k["key_id"]: k["public"] for k in tx.node_keys(node_id)
               if k["kind"] == "signing" and (k["valid_until"] is None or k["valid_until"] > now)}
    keys, endorsements = offered.get("keys"), offered.get("endorsements")
    learned = endorsed_keys(node_id, trusted, keys if isinstance(keys, list) else [],
                            endorsements if isinstance(endorsements, list) else [])
    for key_id, public in learned.items():
        tx.put_key(key_id, node_id=node_id, kind="signing", public=public, valid_from=now)
    return sorted(learned)


def apply_snapshot(tx, snap: dict, self_id: str) -> None:
    """A district stores the hub's directory (its own entry is left alone)."""
    for n in snap.get("nodes", []):
        if n["node_id"] != self_id:
            tx.put_node(n["node_id"], role=n["role"], name=n.get("name", ""), url=n.get("url", ""),
                        region=n.get("region"), enrolled_at=n.get("enrolled_at"))
            if n.get("revoked_at"):
                tx.revoke_node(n["node_id"], n["revoked_at"])
    for k in snap.get("keys", []):
        if not k["key_id"].startswith(self_id + "#"):
            tx.put_key(k["key_id"], node_id=k["node_id"], kind=k["kind"], public=k["public"],
                       valid_from=k["valid_from"], valid_until=k.get("valid_until"))
    for r in snap.get("regions", []):
        tx.put_region(r["code"], r["name"], r["level"], r.get("parent"))
    for i in snap.get("institutions", []):
        tx.put_institution(i)
