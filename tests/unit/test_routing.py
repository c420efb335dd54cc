"""Unit tests for node.routing: the hub's pure routing policy."""
from __future__ import annotations

import dataclasses
import json

import pytest

from node.routing import (
    Institution,
    Region,
    RoutingDecision,
    institutions_from_rows,
    matches,
    region_chain,
    regions_from_rows,
    route,
)
from node.samples import sample_dir


DATA = sample_dir()
FEDERATION_FILE = DATA / "federation.json"
COMPLAINTS_FILE = DATA / "complaints.jsonl"

FEDERATION = json.loads(FEDERATION_FILE.read_text(encoding="utf-8"))
COMPLAINTS = [json.loads(line) for line in COMPLAINTS_FILE.read_text(encoding="utf-8").splitlines()
              if line.strip()]
INSTITUTIONS = institutions_from_rows(FEDERATION["institutions"])
REGIONS = regions_from_rows(FEDERATION["regions"])
NODE_OF = {inst.id: inst.node_id for inst in INSTITUTIONS}


def route_sample(c: dict, excluded=frozenset(), **kw) -> RoutingDecision:
    return route(category=c["category"], topic=c.get("topic"), region=c["region"],
                 chosen_institution=c.get("chosen_institution"), excluded=excluded,
                 institutions=INSTITUTIONS, regions=REGIONS, **kw)


# --- the real sample federation --------------------------------------------------

def test_sample_sizes():
    assert len(COMPLAINTS) == 40
    assert len(INSTITUTIONS) == len(FEDERATION["institutions"])
    assert set(REGIONS) == {"64", "6401", "6409", "6471"}


@pytest.mark.parametrize("c", COMPLAINTS, ids=[c["ref"] for c in COMPLAINTS])
def test_first_hop_for_every_sample(c):
    d = route_sample(c)
    if c.get("chosen_institution"):
        assert (d.institution, d.rule) == (c["chosen_institution"], "chosen")
        assert d.reason == "dipilih pelapor"
    elif c.get("expected_institution") is None:
        assert (d.institution, d.node, d.rule) == (None, None, "none")
        assert d.reason.startswith("tidak ada aturan yang cocok")
    else:
        assert (d.institution, d.rule) == (c["expected_institution"], "competence")
        assert d.reason.startswith("aturan: ")
    if d.institution is not None:
        assert d.node == NODE_OF[d.institution]


@pytest.mark.parametrize("c", COMPLAINTS, ids=[c["ref"] for c in COMPLAINTS])
def test_rules_alone_reach_expected(c):
    """Ignoring the reporter's choice, the rules reach the expected institution."""
    d = route_sample(c, honour_choice=False)
    assert d.institution == c.get("expected_institution")
    assert d.rule == ("none" if d.institution is None else "competence")


def test_s004_chosen_then_rerouted_after_bukan_wewenang():
    s004 = next(c for c in COMPLAINTS if c["ref"] == "S004")
    first = route_sample(s004)
    assert first == RoutingDecision("paser-pupr", "kab-paser", "dipilih pelapor", "chosen")
    second = route_sample(s004, excluded={"paser-pupr"})
    assert (second.institution, second.node, second.rule) == (
        "kemenpu-bpjn-kaltim", "nasional", "competence")
    assert "infrastruktur/jalan_nasional" in second.reason and "64" in second.reason
    assert "paser-pupr" in second.reason  # says why the choice was not used
    # and if the national body also returns it, it goes to the manual queue
    third = route_sample(s004, excluded={"paser-pupr", "kemenpu-bpjn-kaltim"})
    assert (third.institution, third.rule) == (None, "none")
    assert "kemenpu-bpjn-kaltim" in third.reason


@pytest.mark.parametrize("ref, expected", [
    ("S008", "kaltim-disdikbud"),   # SMA: province, though filed at the regency
    ("S018", "bpjs-kesehatan"),     # national body (region None)
    ("S024", "paser-disdukcapil"),  # No Wrong Door: filed in PPU about Paser
    ("S032", "kaltim-pupr"),        # provincial road in a regency
    ("S013", "paser-dkisp"),        # wildcard informasi/*
])
def test_notable_samples(ref, expected):
    c = next(c for c in COMPLAINTS if c["ref"] == ref)
    assert route_sample(c).institution == expected


# --- synthetic federation ---------------------------------------------------------

REG = {
    "64": Region("64", "Provinsi", "provinsi", None),
    "6401": Region("6401", "Kabupaten A", "kabupaten", "64"),
    "6409": Region("6409", "Kabupaten B", "kabupaten", "64"),
}


def inst(iid, region, *competences, node=None):
    return Institution(iid, iid.upper(), node or f"node-{iid}", region, tuple(competences))


PROV = inst("prov-x", "64", "kesehatan/rsud")
KAB = inst("kab-x", "6401", "kesehatan/rsud")
NAT = inst("nat-x", None, "kesehatan/rsud", "kesehatan/jkn")
WILD = inst("kab-wild", "6401", "lingkungan/*")
OTHER_KAB = inst("kab-b", "6409", "kesehatan/rsud")
TWIN_A = inst("twin-a", "6401", "sosial/bansos")
TWIN_B = inst("twin-b", "6401", "sosial/*")
ALL = (NAT, PROV, KAB, WILD, OTHER_KAB, TWIN_A, TWIN_B)


@pytest.mark.parametrize("name, kw, institution, rule", [
    ("regency beats province and national", dict(category="kesehatan", topic="rsud", region="6401"),
     "kab-x", "competence"),
    ("province beats national where no regency office",
     dict(category="kesehatan", topic="rsud", region="6471"), "prov-x", "competence"),
    ("sub-regency region is covered by its regency",
     dict(category="kesehatan", topic="rsud", region="6401012"), "kab-x", "competence"),
    ("other regency's own office", dict(category="kesehatan", topic="rsud", region="6409"),
     "kab-b", "competence"),
    ("national fallback", dict(category="kesehatan", topic="jkn", region="6401"),
     "nat-x", "competence"),
    ("national covers regions outside the province",
     dict(category="kesehatan", topic="rsud", region="7371"), "nat-x", "competence"),
    ("wildcard category/*", dict(category="lingkungan", topic="sampah", region="6401"),
     "kab-wild", "competence"),
    ("wildcard does not leak to other regency",
     dict(category="lingkungan", topic="sampah", region="6409"), None, "none"),
    ("excluded regency falls to province",
     dict(category="kesehatan", topic="rsud", region="6401", excluded={"kab-x"}),
     "prov-x", "competence"),
    ("excluded regency and province fall to national",
     dict(category="kesehatan", topic="rsud", region="6401", excluded={"kab-x", "prov-x"}),
     "nat-x", "competence"),
    ("everyone excluded -> none",
     dict(category="kesehatan", topic="rsud", region="6401", excluded={"kab-x", "prov-x", "nat-x"}),
     None, "none"),
    ("chosen honoured even if wrong",
     dict(category="kesehatan", topic="rsud", region="6401", chosen_institution="kab-wild"),
     "kab-wild", "chosen"),
    ("chosen honoured even without topic",
     dict(category="lainnya", topic=None, region="6401", chosen_institution="prov-x"),
     "prov-x", "chosen"),
    ("unknown chosen falls back to rules",
     dict(category="kesehatan", topic="rsud", region="6401", chosen_institution="nope"),
     "kab-x", "competence"),
    ("excluded chosen falls back to rules",
     dict(category="kesehatan", topic="rsud", region="6401", chosen_institution="prov-x",
          excluded={"prov-x"}), "kab-x", "competence"),
    ("choice not honoured when disabled",
     dict(category="kesehatan", topic="rsud", region="6401", chosen_institution="prov-x",
          honour_choice=False), "kab-x", "competence"),
    ("no topic -> none", dict(category="kesehatan", topic=None, region="6401"), None, "none"),
    ("blank topic -> none", dict(category="kesehatan", topic="  ", region="6401"), None, "none"),
    ("unknown category -> none", dict(category="pertanian", topic="pupuk", region="6401"),
     None, "none"),
    ("tie at same level -> none", dict(category="sosial", topic="bansos", region="6401"),
     None, "none"),
    ("tie broken by exclusion", dict(category="sosial", topic="bansos", region="6401",
                                     excluded={"twin-a"}), "twin-b", "competence"),
])
def test_route_table(name, kw, institution, rule):
    args = dict(chosen_institution=None, excluded=frozenset(), institutions=ALL, regions=REG)
    args.update(kw)
    d = route(**args)
    assert (d.institution, d.rule) == (institution, rule), d.reason
    assert d.node == (None if institution is None else f"node-{institution}")
    assert d.reason


def test_tie_reason_names_candidates():
    d = route(category="sosial", topic="bansos", region="6401", chosen_institution=None,
              excluded=(), institutions=ALL, regions=REG)
    assert d.rule == "none" and "twin-a" in d.reason and "twin-b" in d.reason


def test_same_institution_listed_twice_is_not_a_tie():
    d = route(category="kesehatan", topic="rsud", region="6401", chosen_institution=None,
              excluded=(), institutions=(KAB, KAB, PROV), regions=REG)
    assert d.institution == "kab-x"


def test_deterministic_regardless_of_order():
    kw = dict(category="kesehatan", topic="rsud", region="6401", chosen_institution=None,
              excluded=())
    a = route(institutions=ALL, regions=REG, **kw)
    b = route(institutions=tuple(reversed(ALL)), regions=REG, **kw)
    assert a == b
    tie = dict(kw, category="sosial", topic="bansos")
    assert route(institutions=ALL, regions=REG, **tie) == route(
        institutions=tuple(reversed(ALL)), regions=REG, **tie)


@pytest.mark.parametrize("inst_, category, topic, expected", [
    (KAB, "kesehatan", "rsud", True),
    (KAB, "kesehatan", "puskesmas", False),
    (KAB, "kesehatan", None, False),
    (WILD, "lingkungan", "apa_saja", True),
    (WILD, "lingkungan", None, False),
    (WILD, "lingkungan_hidup", "sampah", False),
])
def test_matches(inst_, category, topic, expected):
    assert matches(inst_, category, topic) is expected


@pytest.mark.parametrize("code, expected", [
    ("6401", ("6401", "64")),
    ("64", ("64",)),
    ("6471", ("6471", "64")),                            # known, from the sample
    ("6401012", ("6401012", "6401", "64")),              # unknown: by prefix
    ("640101", ("640101", "6401", "64")),                # unknown kecamatan
    ("6401012001", ("6401012001", "6401", "64")),        # unknown desa
    ("64.01.01", ("640101", "6401", "64")),              # dotted Kemendagri form
    ("6499", ("6499", "64")),                            # unknown regency, known province
    ("7371", ("7371", "73")),                            # unknown province too
    ("", ()),
])
def test_region_chain(code, expected):
    regions = regions_from_rows(FEDERATION["regions"])
    assert region_chain(code, regions) == expected


def test_region_chain_uses_longest_known_prefix():
    regions = dict(REGIONS, **{"640101": Region("640101", "Kec. Batu Sopang", "kecamatan", "6401")})
    assert region_chain("6401012001", regions) == ("6401012001", "640101", "6401", "64")
    kec = inst("kec-x", "640101", "kesehatan/rsud")
    d = route(category="kesehatan", topic="rsud", region="6401012001", chosen_institution=None,
              excluded=(), institutions=(PROV, KAB, kec), regions=regions)
    assert d.institution == "kec-x"


def test_region_chain_follows_explicit_parents_and_survives_cycles():
    odd = {"X1": Region("X1", "x1", "kabupaten", "P"), "P": Region("P", "p", "provinsi", None)}
    assert region_chain("X1", odd) == ("X1", "P")
    loop = {"6401": Region("6401", "a", "kabupaten", "6401")}
    assert region_chain("6401", loop) == ("6401", "64")


def test_rows_parsing():
    insts = institutions_from_rows([
        {"id": "a", "name": "A", "node_id": "n1", "region": "6401", "competences": ["x/y"]},
        {"id": "b", "name": "B", "node": "n2", "region": None, "competences": ["x/*"]},
    ])
    assert insts == (Institution("a", "A", "n1", "6401", ("x/y",)),
                     Institution("b", "B", "n2", None, ("x/*",)))
    assert REGIONS["6401"] == Region("6401", "Kabupaten Paser", "kabupaten", "64")
    assert REGIONS["64"].parent is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        insts[0].region = "64"  # type: ignore[misc]


def test_a_competent_institution_whose_node_cannot_take_it_makes_the_ticket_wait():
    """Never a less specific institution meanwhile (a national one with the same competence, say), and a
    reporter's choice of such an institution falls back to the rules."""
    s021 = next(c for c in COMPLAINTS if c["ref"] == "S021")   # ppu-disdik, at kab-ppu
    ppu = {i.id for i in INSTITUTIONS if i.node_id == "kab-ppu"}
    d = route_sample(s021, unavailable=ppu)
    assert (d.institution, d.rule) == (None, "none") and "ppu-disdik" in d.reason and "kab-ppu" in d.reason
    assert route_sample(s021, unavailable={"paser-disdikbud"}).institution == "ppu-disdik"
    chose = route_sample(dict(s021, chosen_institution="paser-disdikbud"), unavailable={"paser-disdikbud"})
    assert chose.institution == "ppu-disdik" and "paser-disdikbud" in chose.reason
