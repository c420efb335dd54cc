"""Acceptance: ``simpul demo``, the README's first command, run as a user runs it (issue 7, "done when").

The real ``simpul`` executable in a process of its own, which starts the hub
and the four districts as processes of their own on 127.0.0.1. Its temporary
folder goes under this test's ``TMPDIR``, so that the test can see it removed.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.acceptance
SIMPUL = str(Path(sys.executable).with_name("simpul"))


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "TMPDIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting to be reaped."""
    try:
        return not Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except FileNotFoundError:
        return False


def _pids(output: str) -> list[int]:
    return [int(p) for p in re.findall(r"\(pid (\d+)\)", output)]


def _gone(pids: list[int], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while any(_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _clean_up(demo: subprocess.Popen, manifest: Path) -> None:
    """After a failure: stop the demo as an operator would (SIGTERM cleans up), and leave no node behind."""
    if demo.poll() is None:
        demo.terminate()
        try:
            demo.wait(timeout=30)
        except subprocess.TimeoutExpired:
            demo.kill()
    for p in json.loads(manifest.read_text())["processes"] if manifest.exists() else ():
        if p["pid"] and _alive(p["pid"]):
            os.kill(p["pid"], signal.SIGKILL)


def test_the_demo_routes_every_sample_and_leaves_nothing_behind(tmp_path):
    manifest = tmp_path / "manifest.json"   # (only for cleaning up after a failure)
    demo = subprocess.Popen([SIMPUL, "demo", "--manifest", str(manifest)], env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = demo.communicate(timeout=120)
    except BaseException:
        _clean_up(demo, manifest)
        raise
    assert demo.returncode == 0, out
    assert "40/40 tickets where they belong" in out
    assert len(re.findall(r"^S0\d\d .* ✓$", out, re.MULTILINE)) == 40
    consoles = re.findall(r"^  (\S+) +(http://127\.0\.0\.1:\d+/admin/) +password \S+$", out, re.MULTILINE)
    assert sorted(n for n, _ in consoles) == ["kab-paser", "kab-ppu", "kota-balikpapan", "nasional", "prov-kaltim"]
    assert "resolved at the hub" in out and "closed" in out
    assert "temporary folder" in out and "is removed" in out
    pids = _pids(out)
    assert len(pids) == 5 and _gone(pids)
    assert not list(tmp_path.glob("simpul-demo-*"))


def test_the_demo_with_keep_serves_what_its_manifest_says_until_ctrl_c(tmp_path):
    manifest, log = tmp_path / "manifest.json", tmp_path / "demo.out"
    with log.open("w") as sink:
        demo = subprocess.Popen([SIMPUL, "demo", "--keep", "--manifest", str(manifest)], env=_env(tmp_path),
                                stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while "--keep: the federation keeps running" not in log.read_text():
            assert demo.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        described = json.loads(manifest.read_text())
        procs = described["processes"]
        assert {p["node_id"] for p in procs} == {"nasional", "kab-paser", "kab-ppu", "kota-balikpapan", "prov-kaltim"}
        for p in procs:   # each is up, at its URL, as what the manifest says it is
            assert _alive(p["pid"]) and Path(p["config"]).is_file() and Path(p["data_dir"]).is_dir()
            with urllib.request.urlopen(f"{p['url']}/healthz", timeout=5) as resp:
                assert json.loads(resp.read())["node_id"] == p["node_id"]
            with urllib.request.urlopen(p["console"] + "login", timeout=5) as resp:
                assert resp.status == 200 and b"password" in resp.read()
            request = urllib.request.Request(f"{p['url']}/api/v1/complaints?limit=1",
                                             headers={"Authorization": f"Bearer {p['tokens']['admin']}"})
            with urllib.request.urlopen(request, timeout=5) as resp:
                assert resp.status == 200
        assert "40/40 tickets where they belong" in log.read_text()
        demo.send_signal(signal.SIGINT)                       # Ctrl-C
        assert demo.wait(timeout=60) == 0
    except BaseException:
        _clean_up(demo, manifest)
        raise
    assert _gone([p["pid"] for p in procs])
    assert not Path(described["base_dir"]).exists()
