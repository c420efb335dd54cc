"""``scripts/bench``: intake, drain, catch-up and memory against the machine's own ceiling.

Every figure comes from real ``simpul run`` processes on 127.0.0.1 (node.cluster),
each on its own SQLite file; with ``--postgres``, the hub of every drain on a
new database of a throwaway PostgreSQL cluster (``benchlib.pg``), the national
hub's production shape. See ``scripts/bench --help`` and the README.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from benchlib import ceiling, drain, intake, pg, setup
from benchlib.common import ROOT, hub_id, samples, say, table
from node.config import SyncSettings
from node.netlink import TcpLink

TARGET_DRAIN_RATIO = 0.5       # of the single-core verification ceiling
TARGET_INTAKE = 1000.0         # complaints per second
TARGET_RSS_MB = 200.0          # any node process, at any backlog


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=100_000, help="drain backlog size (default 100,000)")
    p.add_argument("--catchup-events", type=int, default=20_000, help="catch-up backlog size (default 20,000)")
    p.add_argument("--intake", type=int, default=5_000, help="complaints to file for the intake rate")
    p.add_argument("--concurrency", type=_levels, default=(32, 64, 128), metavar="N[,N...]",
                   help="intake client connections, one run per level (default 32,64,128); the intake figure "
                        "is the highest rate, the node's capacity")
    p.add_argument("--large", action="store_true", help="also drain 1,000,000 events (several minutes)")
    p.add_argument("--large-events", type=int, default=1_000_000, help=argparse.SUPPRESS)
    p.add_argument("--district", default="kab-paser", help="the district node of the sample federation")
    p.add_argument("--json", dest="json_path", default=str(ROOT / "artifacts" / "bench.json"))
    p.add_argument("--dir", default=None, help="work folder (default: a temporary one, removed afterwards)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per drain")
    p.add_argument("--profile", default=None, metavar="DIR",
                   help="record py-spy profiles of the node processes during intake and drain into DIR")
    p.add_argument("--rtt", type=float, default=0.0, metavar="MS",
                   help="also drain over a loopback link with this round-trip time, one batch and then "
                        "sync.inflight's default in flight (a district on a slow wide-area link)")
    p.add_argument("--rtt-events", type=int, default=10_000, help="backlog for --rtt (default 10,000)")
    p.add_argument("--skip", default="", help="comma-separated phases to skip: intake,drain,catchup")
    p.add_argument("--postgres", action="store_true",
                   help="put the hub of every drain on a throwaway PostgreSQL cluster (needs Debian's postgresql "
                        "package); the districts keep SQLite")
    return p.parse_args(argv)


def _levels(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(x) for x in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, not {text!r}") from exc
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("each level must be at least 1 connection")
    return levels


def phase_intake(args, base: Path) -> dict:
    """One node; one run per concurrency level, each with fresh complaints. The figure is the best level's
    (a server's capacity is its rate once the load saturates it); every level is kept under ``levels``."""
    c = setup.federation(base / "intake")   # all enrolled; only the district runs
    try:
        c.start(args.district)
        recorder = None
        if args.profile:
            from benchlib.profiling import Recorder
            recorder = Recorder(Path(args.profile) / "intake")
            recorder.start(args.district, c.proc(args.district).popen.pid)
        levels = []
        for k, conns in enumerate(args.concurrency):
            say(f"intake: {args.intake:,} complaints at {args.district}, {conns} connections ...")
            levels.append(intake.run(c, args.district, samples(), args.intake, conns, seed=5 + k, prefix=f"I{k}"))
            say(f"    {levels[-1]['per_s']:,.0f} complaints/s (p50 {levels[-1]['p50_ms']} ms, "
                f"p99 {levels[-1]['p99_ms']} ms)")
        out = dict(max(levels, key=lambda r: r["per_s"]), levels=levels)
        if recorder is not None:
            out["profile"] = recorder.stop()
        return out
    finally:
        c.close()


def phase_drain(args, base: Path, n: int, name: str, with_catchup: bool) -> dict:
    say(f"drain: {n:,} events from {args.district} to the hub ...")
    c = setup.federation(base / name, database_urls=_hub_database(args, name))  # all enrolled; hub + district run
    recorder = None
    try:
        if args.profile:
            from benchlib.profiling import Recorder
            recorder = Recorder(Path(args.profile) / name)
            _start_profiles_after_start(c, recorder, args.district)
        out = {"drain": drain.drain(c, args.district, samples(), n, args.timeout)}
        if recorder is not None:
            out["profile"] = recorder.stop()
        say(f"    drained {n:,} in {out['drain']['seconds']}s: {out['drain']['per_s']:,.0f} events/s")
        if with_catchup:
            say(f"catch-up: {args.catchup_events:,} events queued while the hub is down ...")
            out["catch_up"] = drain.catch_up(c, args.district, samples(), args.catchup_events, args.timeout)
            say(f"    caught up in {out['catch_up']['seconds']}s after the hub came back")
        return out
    finally:
        c.close()


def phase_link(args, base: Path, inflight: int) -> dict:
    """The drain with the district reaching the hub through a TcpLink that delays each direction."""
    say(f"drain over a {args.rtt:g} ms round-trip link, {inflight} batch(es) in flight: "
        f"{args.rtt_events:,} events ...")
    c = setup.federation(base / f"link-{inflight}", database_urls=_hub_database(args, f"link-{inflight}"))
    link = TcpLink(c.proc(c.hub_id).port, delay_s=args.rtt / 2000)
    try:
        c.proc(args.district).env.update({"SIMPUL_HUB__URL": link.url, "SIMPUL_SYNC__INFLIGHT": str(inflight)})
        out = drain.drain(c, args.district, samples(), args.rtt_events, args.timeout)
        say(f"    drained {out['events']:,} in {out['seconds']}s: {out['per_s']:,.0f} events/s")
        return out
    finally:
        c.close()
        link.close()


def _hub_database(args, name: str) -> dict[str, str] | None:
    """With ``--postgres``, a new database for this phase's hub."""
    if args.pg is None:
        return None
    return {hub_id(): args.pg.database("simpul_" + name.replace("-", "_"))}


def _start_profiles_after_start(cluster, recorder, district: str) -> None:
    """Attach py-spy to each process as soon as the harness has started it."""
    original = cluster.start

    def start(name=None, env=None, wait=True):
        original(name, env=env, wait=wait)
        for n in ([name] if name else list(cluster.procs)):
            if n not in recorder.procs and cluster.proc(n).running:
                recorder.start(n, cluster.proc(n).popen.pid)
    cluster.start = start


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def report(args, res: dict) -> tuple[str, bool]:
    v, ins = res["ceiling"]["verify_per_s"], res["ceiling"]["insert_rows_per_s"]
    rows, ok = [], True

    def row(name, value, unit, ratio_of=None, target=None, passed=None):
        nonlocal ok
        ratio = f"{value / ratio_of:.2f}" if ratio_of else ""
        verdict = "" if passed is None else ("PASS" if passed else "MISS")
        ok = ok and passed is not False
        rows.append((name, fmt(value), unit, ratio, target or "", verdict))

    row("Ed25519 verify, 1 core (ceiling; libsodium)", v, "verif/s")
    if "verify_openssl_per_s" in res["ceiling"]:
        row("  the same with OpenSSL (cryptography)", res["ceiling"]["verify_openssl_per_s"], "verif/s")
    row("SQLite batch insert, Core (ceiling)", ins, "rows/s")
    if "pg_insert_rows_per_s" in res["ceiling"]:
        row("PostgreSQL batch insert, Core (the hub's ceiling)", res["ceiling"]["pg_insert_rows_per_s"], "rows/s")
    if "intake" in res:
        i = res["intake"]
        levels = i.get("levels", [i])
        row(f"intake, best of {len(levels)} level(s) ({i['concurrency']} conns)", i["per_s"], "complaints/s", ins,
            ">= 1,000/s", i["per_s"] >= TARGET_INTAKE and all(r["created"] == r["complaints"] for r in levels))
        for r in levels:
            row(f"  {r['concurrency']} conns: rate, p50 / p99 latency", f"{r['per_s']:,.0f}/s, "
                f"{r['p50_ms']} / {r['p99_ms']}", "ms")
        row("  intake CPU per complaint: node / client", f"{i['server_cpu_ms_per_complaint']:.2f} / "
            f"{i.get('client_cpu_ms_per_complaint', 0):.2f}", "ms")
    for key, d in res.get("drains", {}).items():
        dr = d["drain"]
        near = dr["verify_ceiling"]
        row(f"drain {dr['events']:,} events", dr["per_s"], "events/s", near["mean"], ">= 0.50 x verify",
            dr["per_s"] >= TARGET_DRAIN_RATIO * near["mean"] and dr["hub_holds"] == dr["events"])
        row("  verify ceiling just before / after it", f"{near['before']:,.0f} / {near['after']:,.0f}", "verif/s")
        if "district_startup_s" in dr:
            row("  district start-up before it (not counted)", dr["district_startup_s"], "s")
        hub, dist = dr["processes"][res["hub"]], dr["processes"][args.district]
        row("  drain CPU: hub / district", f"{hub['cpu_s']} / {dist['cpu_s']}", "cpu-s")
        if "catch_up" in d:
            cu = d["catch_up"]
            row(f"catch-up {cu['events']:,} events after outage", cu["seconds"], "s", None, "", None)
            row("  catch-up rate (incl. hub start-up)", cu["per_s"], "events/s", v)
        for name, p in dr["processes"].items():
            peak = max(p.get("vmhwm_mb", 0.0), d.get("catch_up", {}).get("processes", {}).get(name, {})
                       .get("vmhwm_mb", 0.0))
            row(f"  peak RSS {name} ({dr['events']:,} backlog)", peak, "MB", None, "<= 200 MB",
                peak <= TARGET_RSS_MB)
            helpers = [h["vmhwm_mb"] for h in p.get("helpers", [])]
            if helpers:   # (a hub's check worker and multiprocessing's resource tracker)
                row(f"    its {len(helpers)} worker processes", " / ".join(f"{h:.1f}" for h in helpers), "MB", None,
                    "<= 200 MB", max(helpers) <= TARGET_RSS_MB)
                row(f"    {name}, all its processes (sum of peaks)", round(peak + sum(helpers), 1), "MB")
    if "intake" in res:
        row("  peak RSS intake node", res["intake"]["memory_mb"].get("VmHWM", 0.0), "MB", None, "<= 200 MB",
            res["intake"]["memory_mb"].get("VmHWM", 0.0) <= TARGET_RSS_MB)
    for inflight, dr in res.get("links", {}).items():
        row(f"drain {dr['events']:,} over {args.rtt:g} ms RTT, {inflight} in flight", dr["per_s"], "events/s")
    head = ("figure", "value", "unit", "ratio", "target", "")
    return table(rows, head), ok


def main(argv=None) -> int:
    args = parse(argv)
    skip = set(filter(None, args.skip.split(",")))
    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="simpul-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    res: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                             "python": platform.python_version(), "load_avg_start": os.getloadavg()},
                 "args": dict(vars(args)), "hub": hub_id()}
    say(f"scripts/bench: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; folder {base}")
    args.pg = None
    try:
        if args.postgres:
            args.pg = pg.Throwaway("simpul_bench")
            res["hub_storage"] = "postgresql"
            say(f"the hub of every drain on PostgreSQL ({args.pg.url.rsplit('/', 1)[0]}/...)")
        say("ceiling: Ed25519 verification (1 core, ~2 s each with libsodium and OpenSSL) and batch inserts ...")
        res["ceiling"] = {"verify_per_s": round(ceiling.verify_per_s(), 1),
                          "verify_openssl_per_s": round(ceiling.verify_per_s(library="openssl"), 1),
                          "insert_rows_per_s": round(ceiling.insert_per_s(), 1)}
        if args.pg:
            res["ceiling"]["pg_insert_rows_per_s"] = round(ceiling.insert_per_s(
                url=args.pg.database("simpul_ceiling")), 1)
        say(f"    {res['ceiling']['verify_per_s']:,.0f} verifications/s (OpenSSL: "
            f"{res['ceiling']['verify_openssl_per_s']:,.0f}), "
            f"{res['ceiling']['insert_rows_per_s']:,.0f} rows/s (SQLite)"
            + (f", {res['ceiling']['pg_insert_rows_per_s']:,.0f} rows/s (PostgreSQL)" if args.pg else ""))
        if "intake" not in skip:
            res["intake"] = phase_intake(args, base)
        res["drains"] = {}
        if "drain" not in skip:
            res["drains"][str(args.events)] = phase_drain(args, base, args.events, "drain",
                                                          with_catchup="catchup" not in skip)
        if args.large:
            res["drains"][str(args.large_events)] = phase_drain(args, base, args.large_events, "drain-large",
                                                                with_catchup=False)
        if args.rtt:
            res["links"] = {str(k): phase_link(args, base, k) for k in (1, SyncSettings().inflight)}
        res["machine"]["load_avg_end"] = os.getloadavg()
        res["seconds"] = round(time.monotonic() - t0, 1)
        text, ok = report(args, res)
        res["ok"] = ok
        say("")
        say(text)
        if args.large and len(res["drains"]) == 2:
            small, large = (res["drains"][k]["drain"]["processes"][args.district]["vmhwm_mb"]
                            for k in (str(args.events), str(args.large_events)))
            say(f"memory with backlog: district peak {small:.0f} MB at {args.events:,} events, "
                f"{large:.0f} MB at {args.large_events:,}")
        profiles = [(f"intake at {label}", prof) for label, prof in res.get("intake", {}).get("profile", {}).items()]
        profiles += [(f"{label} during drain of {key}", prof) for key, d in res.get("drains", {}).items()
                     for label, prof in d.get("profile", {}).items()]
        for what, prof in profiles:
            say(f"\nprofile {what} ({prof['samples']} samples), top self frames:")
            for frame, pct in prof["self"][:10]:
                say(f"    {pct:5.1f}%  {frame}")
        say(f"\n{'all targets met' if ok else 'some targets missed'}; {res['seconds']}s; "
            f"load average {os.getloadavg()[0]:.2f} at the end")
        out = Path(args.json_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=2, default=str))
        say(f"figures written to {out}")
        return 0 if ok else 1
    except pg.SetupError as exc:
        say(f"scripts/bench: {exc}")
        return 2
    finally:
        if args.pg is not None:
            args.pg.stop()
        if not args.dir and not args.keep:
            shutil.rmtree(base, ignore_errors=True)
