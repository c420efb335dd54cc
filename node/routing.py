"""Hub routing policy: which institution a complaint goes to first.

Pure functions over frozen dataclasses; no I/O and no storage. The policy, from
``routing_note`` in the sample federation and "Routing at the hub" in the design:

1. **Reporter's choice.** A chosen institution that exists, is not in ``excluded``
   (institutions that already sent the ticket back as "bukan wewenang") and
   ``honour_choice`` is true is taken as is, even when its competences do not
   match: the wrong office returns it and the hub reroutes (rule ``"chosen"``).
2. **Competence.** Otherwise the candidates are the non-excluded institutions with a
   competence ``category/topic`` or ``category/*`` whose region covers the
   complaint's region: the same region or an ancestor of it, and ``None``
   (national) covers every region.
3. **Most specific region wins**: regency/city before province before national,
   measured by the length of the institution region's chain (rule ``"competence"``).
4. **Never guess.** No topic, no candidate, or several different institutions tied
   at the most specific level give ``institution=None`` (rule ``"none"``): the ticket
   waits in the hub admins' manual disposition queue, with a reason saying why.

The result depends only on the arguments (candidates are ordered by id).
"""
from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "Institution", "Region", "RoutingDecision", "institutions_from_rows",
    "regions_from_rows", "region_chain", "matches", "route",
]

# Kemendagri code lengths of a regency/city and of a province.
_PREFIX_LENGTHS = (2, 4)


@dataclass(frozen=True)
class Institution:
    id: str
    name: str
    node_id: str
    region: str | None  # None = national: covers every region
    competences: tuple[str, ...]  # "category/topic" or "category/*"


@dataclass(frozen=True)
class Region:
    code: str
    name: str
    level: str
    parent: str | None


@dataclass(frozen=True)
class RoutingDecision:
    institution: str | None  # None -> manual disposition queue
    node: str | None
    reason: str
    rule: str  # "chosen" | "competence" | "none"


def _code(value: object) -> str | None:
    """Normalise a region code: strip blanks and dots ("64.01" -> "6401"); "" -> None."""
    if value is None:
        return None
    text = str(value).strip().replace(".", "")
    return text or None


def institutions_from_rows(rows: Iterable[Mapping]) -> tuple[Institution, ...]:
    """Build institutions from federation.json rows (``node_id`` or ``node``)."""
    out = []
    for row in rows:
        node = row.get("node_id") or row.get("node") or ""
        out.append(Institution(
            id=str(row["id"]), name=str(row.get("name") or row["id"]), node_id=str(node),
            region=_code(row.get("region")),
            competences=tuple(str(c).strip() for c in row.get("competences") or ()),
        ))
    return tuple(out)


def regions_from_rows(rows: Iterable[Mapping]) -> dict[str, Region]:
    """Build a code -> Region map from federation.json rows (extra keys ignored)."""
    out: dict[str, Region] = {}
    for row in rows:
        code = _code(row["code"])
        if code is None:
            continue
        out[code] = Region(code=code, name=str(row.get("name") or code),
                           level=str(row.get("level") or ""), parent=_code(row.get("parent")))
    return out


def _prefix_parent(code: str, regions: Mapping[str, Region]) -> str | None:
    """Longest proper prefix that is a known region, else the regency/province prefix."""
    for n in range(len(code) - 1, 0, -1):
        if code[:n] in regions:
            return code[:n]
    shorter = [n for n in _PREFIX_LENGTHS if n < len(code)]
    return code[:shorter[-1]] if shorter else None


def region_chain(code: str | None, regions: Mapping[str, Region]) -> tuple[str, ...]:
    """The code and its ancestors, most specific first: "6401" -> ("6401", "64").

    Known regions follow their ``parent``. Unknown codes (or known ones without a
    parent) go to their longest known prefix, else to the Kemendagri regency and
    province prefixes: "6401012001" -> "6401" -> "64".
    """
    current = _code(code)
    chain: list[str] = []
    while current is not None and current not in chain:
        chain.append(current)
        known = regions.get(current)
        parent = known.parent if known is not None else None
        current = parent if parent is not None and parent not in chain else _prefix_parent(current, regions)
    return tuple(chain)


def _matching_competence(inst: Institution, category: str, topic: str | None) -> str | None:
    if not topic or not category:
        return None
    for wanted in (f"{category}/{topic}", f"{category}/*"):
        if wanted in inst.competences:
            return wanted
    return None


def matches(inst: Institution, category: str, topic: str | None) -> bool:
    """True if ``inst`` holds ``category/topic`` or ``category/*``; never without a topic."""
    return _matching_competence(inst, category, topic) is not None


def competent(inst: Institution, category: str, topic: str | None, region: str | None,
              regions: Mapping[str, Region]) -> bool:
    """True if ``inst`` holds the competence (``matches``) and serves the complaint's region: a national
    institution, or one whose region is in the complaint's region chain. Before, a district's check
    looked at the competence alone, and Balikpapan's education office kept a Paser school's ticket."""
    return matches(inst, category, topic) and (inst.region is None or inst.region in region_chain(region, regions))


def _none(reason: str) -> RoutingDecision:
    return RoutingDecision(institution=None, node=None, reason=reason, rule="none")


def route(*, category: str, topic: str | None, region: str,
          chosen_institution: str | None, excluded: Collection[str],
          institutions: Sequence[Institution], regions: Mapping[str, Region],
          honour_choice: bool = True, unavailable: Collection[str] = ()) -> RoutingDecision:
    """Decide the next hop for a complaint (see the module docstring for the policy). ``unavailable``:
    institutions whose node cannot take a ticket now (not enrolled, or revoked); a ticket they would get
    waits for them, visibly, instead of being queued for a node that may never come."""
    excluded, unavailable = frozenset(excluded), frozenset(unavailable)
    by_id: dict[str, Institution] = {}
    for inst in institutions:
        by_id.setdefault(inst.id, inst)

    note = ""
    if chosen_institution:
        chosen = by_id.get(chosen_institution)
        if chosen is None:
            note = f" (pilihan pelapor {chosen_institution} tidak dikenal)"
        elif chosen_institution in excluded:
            note = f" (pilihan pelapor {chosen_institution} sudah menyatakan bukan wewenang)"
        elif chosen_institution in unavailable:
            note = f" (pilihan pelapor {chosen_institution}: node {chosen.node_id} belum terdaftar atau dicabut)"
        elif not honour_choice:
            note = f" (pilihan pelapor {chosen_institution} tidak dipakai)"
        else:
            return RoutingDecision(institution=chosen.id, node=chosen.node_id,
                                   reason="dipilih pelapor", rule="chosen")

    topic = topic.strip() if isinstance(topic, str) and topic.strip() else None
    if topic is None:
        return _none(f"tidak ada aturan yang cocok: kategori {category} tanpa topik{note}")
    wanted = f"{category}/{topic}"
    chain = region_chain(region, regions)
    where = f"wilayah {_code(region) or '?'}"

    # (depth, id, matched competence); depth 0 = national.
    candidates: list[tuple[int, str, str]] = []
    skipped: list[str] = []
    for inst in by_id.values():
        competence = _matching_competence(inst, category, topic)
        if competence is None or (inst.region is not None and inst.region not in chain):
            continue
        if inst.id in excluded:
            skipped.append(inst.id)
            continue
        depth = 0 if inst.region is None else len(region_chain(inst.region, regions))
        candidates.append((depth, inst.id, competence))

    if not candidates:
        why = f"tidak ada aturan yang cocok: {wanted} di {where}"
        if skipped:
            why += f"; sudah bukan wewenang: {', '.join(sorted(skipped))}"
        return _none(why + note)

    best = max(depth for depth, _, _ in candidates)
    top = sorted((iid, comp) for depth, iid, comp in candidates if depth == best)
    if len(top) > 1:
        names = ", ".join(iid for iid, _ in top)
        return _none(f"aturan tidak tegas: {wanted} di {where} "
                     f"cocok untuk beberapa instansi setingkat ({names}); perlu disposisi manual{note}")

    iid, competence = top[0]
    inst = by_id[iid]
    if iid in unavailable:   # (the competent one waits for its node: never a less specific one meanwhile)
        return _none(f"aturan: {competence} untuk {iid}, tetapi node {inst.node_id} belum terdaftar atau "
                     f"dicabut; menunggu{note}")
    scope = f"wilayah {inst.region}" if inst.region is not None else "seluruh wilayah (nasional)"
    return RoutingDecision(institution=inst.id, node=inst.node_id,
                           reason=f"aturan: {competence} di {scope}{note}", rule="competence")
