"""The hub's node directory (nodes, their keys with validity), institutions and regions.

District nodes keep a copy of the directory, fetched from the hub, so that they
know other nodes' sealing keys and which institutions they host.

A transaction that writes an institution, a region or a node also counts up
``topology_version`` (in ``meta``), once, so that a process can keep the
routing topology it read and know from one small read whether it is still
current (``node.reactions.TopologyCache``). Those writes are made only here.
"""
from __future__ import annotations

import json
import time

from sqlalchemy import select, update

from adapters.storage.common import upsert
from adapters.storage.tables import InstitutionRow, NodeKeyRow, NodeRow, RegionRow

N, K, INS, R = NodeRow.__table__, NodeKeyRow.__table__, InstitutionRow.__table__, RegionRow.__table__


TOPOLOGY_VERSION = "topology_version"


class DirectoryRepo:
    conn: object
    dialect: str
    meta_get: object      # EventRepo's
    next_counter: object

    def put_node(self, node_id: str, *, role: str, name: str = "", url: str = "", region: str | None = None,
                 enrolled_at: float | None = None) -> None:
        values = {"node_id": node_id, "role": role, "name": name, "url": url, "region": region}
        if enrolled_at is not None:
            values["enrolled_at"] = enrolled_at
            values["revoked_at"] = None
        upsert(self.conn, self.dialect, N, ["node_id"], values)
        self._topology_changed()   # (enrolled or not, a node's institutions can take tickets or not)

    def describe_node(self, node_id: str, *, name: str | None = None, region: str | None = None) -> None:
        """Set a node's name and region, those given; nothing else of it changes."""
        values = {k: v for k, v in (("name", name), ("region", region)) if v is not None}
        if values:
            self.conn.execute(update(N).where(N.c.node_id == node_id).values(**values))

    def get_node(self, node_id: str) -> dict | None:
        row = self.conn.execute(select(N).where(N.c.node_id == node_id)).first()
        return dict(row._mapping) if row else None

    def nodes(self) -> list[dict]:
        return [dict(r._mapping) for r in self.conn.execute(select(N).order_by(N.c.node_id))]

    def revoke_node(self, node_id: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.conn.execute(update(N).where(N.c.node_id == node_id).values(revoked_at=now))
        self._topology_changed()
        self.conn.execute(update(K).where(K.c.node_id == node_id, K.c.valid_until.is_(None)).values(valid_until=now))

    def put_key(self, key_id: str, *, node_id: str, kind: str, public: str, valid_from: float,
                valid_until: float | None = None) -> None:
        upsert(self.conn, self.dialect, K, ["key_id"], {
            "key_id": key_id, "node_id": node_id, "kind": kind, "public": public,
            "valid_from": valid_from, "valid_until": valid_until})

    def get_key(self, key_id: str) -> dict | None:
        row = self.conn.execute(select(K).where(K.c.key_id == key_id)).first()
        return dict(row._mapping) if row else None

    def node_keys(self, node_id: str | None = None) -> list[dict]:
        q = select(K).order_by(K.c.key_id)
        if node_id:
            q = q.where(K.c.node_id == node_id)
        return [dict(r._mapping) for r in self.conn.execute(q)]

    def put_institution(self, inst: dict) -> None:
        values = {k: inst.get(k) for k in ("id", "name", "node_id", "region", "ppid", "sealing_key_id",
                                            "sealing_public", "wrapped_private")}
        values["competences"] = json.dumps(list(inst.get("competences", [])))
        values["ppid"] = bool(values["ppid"])
        values = {k: v for k, v in values.items() if v is not None or k in ("region",)}
        upsert(self.conn, self.dialect, INS, ["id"], values)
        self._topology_changed()

    def institutions(self) -> list[dict]:
        out = []
        for r in self.conn.execute(select(INS).order_by(INS.c.id)):
            d = dict(r._mapping)
            d["competences"] = json.loads(d["competences"])
            out.append(d)
        return out

    def put_region(self, code: str, name: str, level: str, parent: str | None) -> None:
        upsert(self.conn, self.dialect, R, ["code"], {"code": code, "name": name, "level": level, "parent": parent})
        self._topology_changed()

    def topology_version(self) -> int:
        """Counts the transactions that wrote an institution or a region (see the module docstring)."""
        return int(self.meta_get(TOPOLOGY_VERSION, "0"))

    def _topology_changed(self) -> None:
        # Once per transaction: a district stores the whole directory at every refresh from the hub.
        if not self.__dict__.get("_topology_counted"):
            self.__dict__["_topology_counted"] = True
            self.next_counter(TOPOLOGY_VERSION)

    def regions(self) -> list[dict]:
        return [dict(r._mapping) for r in self.conn.execute(select(R).order_by(R.c.code))]
