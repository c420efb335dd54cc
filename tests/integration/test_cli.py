"""The ``simpul`` command line as district IT uses it: real processes, real files."""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import tomli_w

from adapters.storage import SqlStorage, migrate
from node.config import load_settings

VENV_SIMPUL = Path(sys.executable).parent / "simpul"
SIMPUL = [str(VENV_SIMPUL)] if VENV_SIMPUL.exists() else [sys.executable, "-m", "node.cli"]


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMPUL_")}
    env.update(extra)
    return env


def simpul(*args, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*SIMPUL, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=env or clean_env())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init(data_dir: Path, *extra, role: str = "district", node_id: str = "kab-paser") -> Path:
    """``simpul init`` in-process (the same click command, real files; saves a process start).
    The tests of ``init`` itself run it as a process."""
    from click.testing import CliRunner
    from node.cli import main
    args = ["init", "--role", role, "--node-id", node_id, "--data-dir", str(data_dir), *map(str, extra)]
    res = CliRunner().invoke(main, args, env={k: None for k in os.environ if k.startswith("SIMPUL_")},
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return data_dir / "simpul.toml"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def file_in_process(config: Path, complaints: list[dict]) -> list[str]:
    """File complaints through the node's own service (the API's code path, no server)."""
    from node.core import Node
    from schemas.complaints import ComplaintIn
    node = Node(load_settings(config))
    try:
        return [node.complaints.file(ComplaintIn.model_validate(c)).state.ticket_id for c in complaints]
    finally:
        node.close()


def assert_one_line_error(res: subprocess.CompletedProcess, *words: str) -> None:
    assert res.returncode != 0
    assert "Traceback" not in res.stderr + res.stdout
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("simpul: ")
    for word in words:
        assert word in lines[0], (word, lines[0])


# -------------------------------------------------------------------- init
def test_init_writes_config_keys_and_migrated_database(tmp_path):
    data = tmp_path / "kab-paser"
    res = simpul("init", "--role", "district", "--node-id", "kab-paser", "--data-dir", data, "--port", "8711",
                 "--region", "6401")
    assert res.returncode == 0, res.stderr
    assert "initialised district node kab-paser" in res.stdout
    config = data / "simpul.toml"
    assert mode(config) == 0o600
    cfg = tomllib.loads(config.read_text())
    assert (cfg["node_id"], cfg["role"], cfg["port"], cfg["region"]) == ("kab-paser", "district", 8711, "6401")
    assert set(cfg["tokens"]) == {"intake", "operator", "admin"} and len(set(cfg["tokens"].values())) == 3
    keys = sorted(p.name for p in (data / "keys").iterdir())
    assert keys == ["sealing-1.pem", "signing-1.pem"]
    assert mode(data / "keys") == 0o700
    for name in keys:
        assert mode(data / "keys" / name) == 0o600
        assert (data / "keys" / name).read_text().startswith("-----BEGIN PRIVATE KEY-----")
    settings = load_settings(config)
    assert settings.db_url == f"sqlite:///{data / 'simpul.db'}"
    storage = SqlStorage(settings.db_url)
    try:
        migrate.check(storage)
        with storage.read() as tx:
            assert tx.count_events() == 0
    finally:
        storage.dispose()
    with sqlite3.connect(data / "simpul.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.execute("SELECT count(*) FROM events").fetchone()   # (a reader in WAL mode opens -wal and -shm)
        side_files = sorted(data.glob("simpul.db-*"))
        # the database holds reporters' identities: owner only (before, 0o755 and 0o644 with the usual umask)
        assert (mode(data), mode(data / "simpul.db")) == (0o700, 0o600)
        assert [p.name for p in side_files] == ["simpul.db-shm", "simpul.db-wal"]
        assert all(mode(p) == 0o600 for p in side_files)


def test_a_district_without_its_hubs_url_is_told_it_will_not_sync(tmp_path):
    """Before, such a district ran, filed and queued for the hub without a word, and ``status`` listed no
    peer at all. ``init`` and ``status`` now say why nothing syncs (``run`` logs it); with the URL, nothing."""
    res = simpul("init", "--role", "district", "--node-id", "kab-paser", "--data-dir", tmp_path / "n")
    assert res.returncode == 0, res.stderr
    assert "warning: this district has no hub URL, so it does not sync" in res.stdout
    status = simpul("status", "--config", tmp_path / "n" / "simpul.toml")
    assert status.returncode == 0 and "[hub] url is set in its config" in status.stdout
    linked = simpul("init", "--role", "district", "--node-id", "kab-paser", "--data-dir", tmp_path / "m",
                    "--hub-url", "http://127.0.0.1:9")
    assert linked.returncode == 0 and "warning" not in linked.stdout
    assert "warning" not in simpul("status", "--config", tmp_path / "m" / "simpul.toml").stdout


def test_init_twice_refuses_and_changes_nothing(tmp_path):
    res = simpul("init", "--role", "district", "--node-id", "kab-paser", "--data-dir", tmp_path / "n")
    assert res.returncode == 0, res.stderr
    config = tmp_path / "n" / "simpul.toml"
    before = {p: p.read_bytes() for p in [config, *(tmp_path / "n" / "keys").iterdir()]}
    res = simpul("init", "--role", "district", "--node-id", "kab-paser", "--data-dir", tmp_path / "n")
    assert_one_line_error(res, "already exists")
    assert {p: p.read_bytes() for p in [config, *(tmp_path / "n" / "keys").iterdir()]} == before


@pytest.mark.parametrize("args, words", [
    (["dead-letters", "list", "--limit", "0"], ["No such option '--limit'", "'simpul dead-letters list --help'"]),
    (["nodes", "enrol"], ["Did you mean 'enroll'?"]),
    (["conflicts", "resolve", "x", "--winner", "C", "--reason", "r"], ["'--winner'", "'A', 'B'"]),
    (["init", "--role", "kantor", "--node-id", "kab-x", "--data-dir", "{tmp}"], ["'--role'", "'district', 'hub'"]),
])
def test_a_usage_error_is_one_line_too(tmp_path, args, words):
    """Click's usage errors, not only ours: one line that says what is wrong and where the help is, exit 2."""
    res = simpul(*[str(tmp_path / "n") if a == "{tmp}" else a for a in args])
    assert_one_line_error(res, *words)
    assert res.returncode == 2 and not (tmp_path / "n").exists()


def test_a_bare_group_and_help_still_show_the_usage():
    """What the one-line usage errors must not take away (once, not per bad invocation above)."""
    bare = simpul("nodes")                                   # a group alone still shows its help
    assert "Usage: simpul nodes" in bare.stdout + bare.stderr and "enroll" in bare.stdout + bare.stderr
    assert simpul("status", "--help").returncode == 0


def test_init_rejects_a_bad_node_id(tmp_path):
    res = simpul("init", "--role", "district", "--node-id", "Kab Paser!", "--data-dir", tmp_path / "n")
    assert_one_line_error(res, "node_id")
    assert not (tmp_path / "n" / "simpul.toml").exists()


def _hub_keys(*kinds: str) -> str:
    """A hub's 'simpul keys show --json' with fresh keys of these kinds."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from node.keys import raw_public
    make = {"signing": ("sig", Ed25519PrivateKey), "sealing": ("seal", X25519PrivateKey)}
    keys = [{"key_id": f"nasional#{make[k][0]}-1", "kind": k, "public": raw_public(make[k][1].generate().public_key()),
             "current": True} for k in kinds]
    return json.dumps({"node_id": "nasional", "role": "hub", "url": "http://127.0.0.1:8700", "keys": keys})


GOOD_FEDERATION = json.dumps({"regions": [{"code": "64", "name": "Provinsi Kalimantan Timur", "level": "provinsi"}]})
REFUSED_INITS = [
    # (id, bad arguments, the corrected ones, input files {name: contents}, words the one line must hold)
    ("port-out-of-range", ["--port", "70000"], ["--port", "8702"], {}, ["port"]),
    ("database-url-scheme", ["--database-url", "bogus://x"], [], {}, ["database_url"]),
    ("database-cannot-be-created", ["--database-url", "sqlite:////nonexistent-simpul-dir/x.db"], [], {},
     ["database_url"]),
    ("federation-a-list", ["--federation", "{fed.json}"], ["--federation", "{good-fed.json}"],
     {"fed.json": "[1]", "good-fed.json": GOOD_FEDERATION}, ["federation_file", "JSON object"]),
    ("federation-region-without-code", ["--federation", "{fed.json}"], ["--federation", "{good-fed.json}"],
     {"fed.json": '{"regions": [{"name": "x"}]}', "good-fed.json": GOOD_FEDERATION}, ["regions.0.code"]),
    ("hub-keys-not-json", ["--hub-keys", "{hub.json}"], ["--hub-keys", "{good-hub.json}"],
     {"hub.json": "{bad", "good-hub.json": _hub_keys("signing", "sealing")}, ["hub_keys", "not valid JSON"]),
    ("hub-keys-empty", ["--hub-keys", "{hub.json}"], ["--hub-keys", "{good-hub.json}"],
     {"hub.json": '{"node_id": "x", "keys": []}', "good-hub.json": _hub_keys("signing", "sealing")}, ["hub_keys"]),
    ("hub-keys-without-a-signing-key", ["--hub-keys", "{hub.json}"], ["--hub-keys", "{good-hub.json}"],
     {"hub.json": _hub_keys("sealing"), "good-hub.json": _hub_keys("signing", "sealing")},
     ["hub_keys", "no current signing key"]),
    ("hub-keys-of-a-district", ["--hub-keys", "{hub.json}"], ["--hub-keys", "{good-hub.json}"],
     {"hub.json": _hub_keys("signing", "sealing").replace('"role": "hub"', '"role": "district"'),
      "good-hub.json": _hub_keys("signing", "sealing")}, ["hub_keys", "a district, not of the hub"]),
    ("hub-url-not-a-url", ["--hub-url", "not a url"], [], {}, ["hub.url"]),
]


@pytest.mark.parametrize("case", REFUSED_INITS, ids=[c[0] for c in REFUSED_INITS])
def test_a_refused_init_leaves_nothing_behind_and_the_corrected_one_succeeds(tmp_path, case):
    _, bad, good, files, words = case
    for name, contents in files.items():
        (tmp_path / name).write_text(contents)

    def args(extra):
        return ["init", "--role", "district", "--node-id", "kab-paser", "--data-dir", tmp_path / "n", "--hub-url",
                "http://127.0.0.1:8700", *[str(tmp_path / a[1:-1]) if a.startswith("{") else a for a in extra]]
    res = simpul(*args(bad))
    assert_one_line_error(res, *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(files)   # no n/, nothing in it
    res = simpul(*args(good))
    assert res.returncode == 0, res.stderr
    assert load_settings(tmp_path / "n" / "simpul.toml").node_id == "kab-paser"
    assert not [p for p in (tmp_path / "n").iterdir() if p.name.startswith(".simpul.toml")]  # no temporary file


@pytest.mark.parametrize("lost", ["config-elsewhere", "config-deleted"])
def test_init_refuses_a_data_folder_that_holds_another_nodes_keys(tmp_path, lost):
    """Before, init took the keys and database over under a new node id (their events then failed verify
    at every peer, signed by a key it did not know under that id)."""
    config = init(tmp_path / "n")
    before = {p: p.read_bytes() for p in (tmp_path / "n").rglob("*") if p.is_file() and p.name != "simpul.toml"}
    args = ["init", "--role", "hub", "--node-id", "intruder", "--data-dir", tmp_path / "n"]
    if lost == "config-deleted":
        config.unlink()
    else:
        args += ["--config", tmp_path / "intruder.toml"]
    assert_one_line_error(simpul(*args), "keys", "holds keys already")
    after = {p: p.read_bytes() for p in (tmp_path / "n").rglob("*") if p.is_file() and p.name != "simpul.toml"}
    assert after == before and not (tmp_path / "intruder.toml").exists()


def test_a_refused_init_removes_only_what_it_created(tmp_path):
    data = tmp_path / "n"
    (data / "keys").mkdir(parents=True)
    (data / "notes.txt").write_text("the operator's own file")
    (data / "keys" / "README").write_text("also theirs")
    res = simpul("init", "--role", "district", "--node-id", "kab-paser", "--data-dir", data,
                 "--database-url", "sqlite:////nonexistent-simpul-dir/x.db")  # fails after the keys are made
    assert_one_line_error(res, "database_url")
    assert sorted(str(p.relative_to(data)) for p in data.rglob("*")) == ["keys", "keys/README", "notes.txt"]
    res = simpul("init", "--role", "district", "--node-id", "kab-paser", "--data-dir", data)
    assert res.returncode == 0, res.stderr
    assert (data / "notes.txt").read_text() == "the operator's own file"


# --------------------------------------------------------------- settings
def _drop_tokens(config: Path) -> None:
    cfg = tomllib.loads(config.read_text())
    del cfg["tokens"]
    config.write_text(tomli_w.dumps(cfg))


def _short_token(config: Path) -> None:
    cfg = tomllib.loads(config.read_text())
    cfg["tokens"]["operator"] = "short"
    config.write_text(tomli_w.dumps(cfg))


def _broken_toml(config: Path) -> None:
    config.write_text(config.read_text() + "\nport = = 1\n")


def _data_dir(config: Path, value: str) -> None:
    config.write_text("\n".join(f"data_dir = {value}" if line.startswith("data_dir =") else line
                                 for line in config.read_text().splitlines()))


BAD_SETTINGS = [
    ("port-not-a-number", {"SIMPUL_PORT": "abc"}, None, ["port"]),
    ("port-out-of-range", {"SIMPUL_PORT": "70000"}, None, ["port"]),
    ("bad-role", {"SIMPUL_ROLE": "province"}, None, ["role"]),
    ("database-url-scheme", {"SIMPUL_DATABASE_URL": "mysql://root@localhost/simpul"}, None, ["database_url"]),
    ("database-not-migrated", {"SIMPUL_DATABASE_URL": "sqlite:///{tmp}/empty.db"}, None, ["database_url"]),
    ("nested-sync-setting", {"SIMPUL_SYNC__BATCH_SIZE": "0"}, None, ["sync", "batch_size"]),
    ("missing-tokens", {}, _drop_tokens, ["tokens"]),
    ("short-token", {}, _short_token, ["tokens.operator"]),
    ("broken-toml", {}, _broken_toml, ["TOML"]),
    # each of these was a traceback before
    ("data-dir-a-number", {}, lambda c: _data_dir(c, "5"), ["data_dir", "5"]),
    ("data-dir-with-nul", {}, lambda c: _data_dir(c, '"/tmp/a\\u0000b"'), ["data_dir"]),
    ("a-section-as-one-variable", {"SIMPUL_SYNC": "x"}, None, ["environment", "sync"]),
    ("an-interval-past-a-day", {"SIMPUL_SYNC__PULL_INTERVAL_S": "1e300"}, None, ["sync.pull_interval_s", "86400"]),
    ("an-interval-infinite", {"SIMPUL_SYNC__WAKE_INTERVAL_S": "inf"}, None, ["sync.wake_interval_s"]),
    ("database-url-unparsable", {"SIMPUL_DATABASE_URL": "sqlite:garbage"}, None, ["database_url", "not a database URL"]),
    ("signing-key-a-folder", {}, lambda c: (c.parent / "keys" / "signing-9.pem").mkdir(), ["signing-9.pem"]),
]


@pytest.mark.parametrize("case", BAD_SETTINGS, ids=[c[0] for c in BAD_SETTINGS])
def test_run_with_a_bad_setting_stops_with_one_line(tmp_path, case):
    _, env, edit, words = case
    config = init(tmp_path / "n", "--port", str(free_port()))
    if edit:
        edit(config)
    env = {k: v.replace("{tmp}", str(tmp_path)) for k, v in env.items()}
    started = time.monotonic()
    res = simpul("run", "--config", config, env=clean_env(**env), timeout=30)
    assert_one_line_error(res, *words)
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("port", ["99999", "0"])
def test_run_with_a_port_flag_out_of_range_stops_with_one_line(tmp_path, port):
    """The flag beats the file and the environment, and is held to the same rule (99999 served on 34463)."""
    config = init(tmp_path / "n", "--port", str(free_port()))
    res = simpul("run", "--config", config, "--port", port, timeout=30)
    assert_one_line_error(res, "--port", "65535" if port != "0" else "1")


def test_run_without_a_config_file(tmp_path):
    res = simpul("run", "--config", tmp_path / "nowhere.toml")
    assert_one_line_error(res, "config", "nowhere.toml")


def test_environment_overrides_the_file(tmp_path, monkeypatch):
    config = init(tmp_path / "n", "--port", "8711")
    for k in [k for k in os.environ if k.startswith("SIMPUL_")]:
        monkeypatch.delenv(k)
    assert load_settings(config).port == 8711
    monkeypatch.setenv("SIMPUL_PORT", "8799")
    monkeypatch.setenv("SIMPUL_SYNC__PULL_INTERVAL_S", "1.5")
    monkeypatch.setenv("SIMPUL_TOKENS__INTAKE", "an-intake-token-from-the-environment")
    s = load_settings(config)
    assert (s.port, s.sync.pull_interval_s) == (8799, 1.5)
    assert s.tokens.intake == "an-intake-token-from-the-environment"
    assert s.tokens.operator == tomllib.loads(config.read_text())["tokens"]["operator"]  # rest of [tokens] kept
    assert load_settings(config, {"port": 8800, "host": None}).port == 8800  # --port beats both


# ------------------------------------------------------------------ verify
def test_verify_passes_then_names_a_hand_edited_event(tmp_path, sample_complaints):
    config = init(tmp_path / "n")
    ids = file_in_process(config, sample_complaints[:5])
    res = simpul("verify", "--config", config)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "checked 5 events: ok" in res.stdout

    db = sqlite3.connect(tmp_path / "n" / "simpul.db")
    with db:
        event_id = db.execute("SELECT id FROM events WHERE ticket = ?", (ids[0],)).fetchone()[0]
        cur = db.execute("UPDATE events SET raw = replace(raw, 'Pungutan', 'Pungutun') WHERE id = ?", (event_id,))
        assert cur.rowcount == 1
        assert "Pungutun" in db.execute("SELECT raw FROM events WHERE id = ?", (event_id,)).fetchone()[0]
    db.close()
    res = simpul("verify", "--config", config)
    assert res.returncode != 0
    assert "Traceback" not in res.stdout + res.stderr
    failures = [line for line in res.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failures) == 1 and event_id in failures[0]
    assert "1 problem" in res.stdout


def test_verify_names_a_gap_in_the_chain(tmp_path, sample_complaints):
    config = init(tmp_path / "n")
    file_in_process(config, sample_complaints[:3])
    with sqlite3.connect(tmp_path / "n" / "simpul.db") as db:
        db.execute("DELETE FROM events WHERE seq = 2")
        third = db.execute("SELECT id FROM events WHERE seq = 3").fetchone()[0]
    res = simpul("verify", "--config", config)
    assert res.returncode != 0
    assert third in res.stdout


def test_verify_names_a_cut_tail_of_the_chain(tmp_path, sample_complaints):
    """Deleting our newest events leaves no gap: only the recorded chain head shows it."""
    config = init(tmp_path / "n")
    file_in_process(config, sample_complaints[:3])
    with sqlite3.connect(tmp_path / "n" / "simpul.db") as db:
        newest = db.execute("SELECT id FROM events WHERE seq = 3").fetchone()[0]
        db.execute("DELETE FROM events WHERE seq = 3")
    res = simpul("verify", "--config", config)
    assert res.returncode == 1
    assert "Traceback" not in res.stdout + res.stderr
    failures = [line for line in res.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failures) == 1 and newest in failures[0] and "seq 2" in failures[0]
    assert "checked 2 events: 1 problem(s)" in res.stdout


def test_keys_rotate_then_old_and_new_events_verify(tmp_path, sample_complaints):
    config = init(tmp_path / "n")
    file_in_process(config, sample_complaints[:2])
    res = simpul("keys", "rotate", "--kind", "signing", "--config", config)
    assert res.returncode == 0, res.stderr
    assert "kab-paser#sig-2" in res.stdout
    assert mode(tmp_path / "n" / "keys" / "signing-2.pem") == 0o600
    file_in_process(config, sample_complaints[2:4])
    res = simpul("verify", "--config", config)
    assert res.returncode == 0, res.stdout
    assert "checked 4 events: ok" in res.stdout
    with sqlite3.connect(tmp_path / "n" / "simpul.db") as db:
        used = [json.loads(r)["key"] for (r,) in db.execute("SELECT raw FROM events ORDER BY seq")]
    assert used == ["kab-paser#sig-1"] * 2 + ["kab-paser#sig-2"] * 2
    res = simpul("keys", "show", "--json", "--config", config)
    shown = json.loads(res.stdout)
    current = {k["key_id"]: k["current"] for k in shown["keys"] if k["kind"] == "signing"}
    assert current == {"kab-paser#sig-1": False, "kab-paser#sig-2": True}


# --------------------------------------------------------------------- run
def _http(method: str, url: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize("event_loop, kind", [("auto", "uvloop"), ("asyncio", "asyncio")])
def test_run_serves_files_a_complaint_and_stops_on_sigterm(tmp_path, sample_complaints, event_loop, kind):
    config = init(tmp_path / "n", "--port", str(free_port()))
    port = free_port()  # SIMPUL_PORT beats the file's port
    env = clean_env(SIMPUL_PORT=str(port), SIMPUL_SYNC__WAKE_INTERVAL_S="0.5", SIMPUL_EVENT_LOOP=event_loop)
    # (--host is checked as the file's host is; that check raised a TypeError for every value before)
    proc = subprocess.Popen([*SIMPUL, "run", "--config", str(config), "--host", "127.0.0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                if _http("GET", base + "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "node did not answer /healthz within 30 s"
            time.sleep(0.1)
        tokens = tomllib.loads(config.read_text())["tokens"]
        status, filed = _http("POST", base + "/api/v1/complaints", sample_complaints[0], tokens["intake"])
        assert status == 201, filed
        status, got = _http("GET", f"{base}/api/v1/complaints/{filed['ticket_id']}", token=tokens["operator"])
        assert status == 200 and got["title"] == sample_complaints[0]["title"]
        assert _http("GET", base + "/readyz")[0] == 200
        if kind == "uvloop":   # (once) the schema does not change under a running node
            assert_one_line_error(simpul("migrate", "--config", config), "a node is running with", "stop it")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"simpul run did not stop on SIGTERM:\n{err}")
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert f"serving on http://127.0.0.1:{port}" in out and f"event loop {kind})" in out
    assert "INFO simpul: district kab-paser stopped" in err.splitlines()[-1]
    res = simpul("verify", "--config", config)
    assert res.returncode == 0 and "checked 1 events: ok" in res.stdout
    assert "nothing to do" in simpul("migrate", "--config", config).stdout   # (once it stopped)


def test_an_institution_a_new_federation_file_leaves_out_is_no_longer_routed_to(tmp_path, sample_dir):
    """Before, 'federation load' of a file without paser-dinsos said "31 institutions" while the hub still
    held 32, and went on routing social-aid tickets to it."""
    from node.reactions import Topology
    from node.routing import route
    hub = init(tmp_path / "hub", role="hub", node_id="nasional")
    fed = json.loads((sample_dir / "federation.json").read_text())
    fed["institutions"] = [i for i in fed["institutions"] if i["id"] != "paser-dinsos"]
    smaller = tmp_path / "federation.json"
    smaller.write_text(json.dumps(fed))
    for path, said in ((sample_dir / "federation.json", None), (smaller, "no longer routed to (their records and "
                                                                         "keys stay): paser-dinsos")):
        loaded = simpul("federation", "load", path, "--config", hub)
        assert loaded.returncode == 0 and (said is None or said in loaded.stdout), loaded.stdout + loaded.stderr
    storage = SqlStorage(load_settings(hub).db_url)
    try:
        with storage.read() as tx:
            topo = Topology(tx)
            dinsos = next(i for i in tx.institutions() if i["id"] == "paser-dinsos")
    finally:
        storage.dispose()
    assert dinsos["name"] and dinsos["competences"] == []          # (the record stays; no rule routes to it)
    decision = route(category="sosial", topic="bansos", region="6401", chosen_institution=None, excluded=(),
                     institutions=topo.institutions, regions=topo.regions)
    assert decision.institution != "paser-dinsos"


def test_a_federation_loaded_after_enrolment_names_the_enrolled_nodes(tmp_path, sample_dir):
    """The README's order: enrol each district at the hub, then load the federation file. The file brings the
    names and regions (a keys file has neither), and the enrolment, URL and keys stay as they were."""
    hub = init(tmp_path / "hub", role="hub", node_id="nasional")
    district = init(tmp_path / "paser")
    keys = tmp_path / "kab-paser.json"
    keys.write_text(simpul("keys", "show", "--json", "--config", district).stdout)
    enrolled = simpul("nodes", "enroll", "--config", hub, "--keys", keys, "--url", "http://127.0.0.1:8702")
    assert enrolled.returncode == 0, enrolled.stderr
    loaded = simpul("federation", "load", sample_dir / "federation.json", "--config", hub)
    assert loaded.returncode == 0, loaded.stderr
    storage = SqlStorage(load_settings(hub).db_url)
    try:
        with storage.read() as tx:
            paser, ppu = tx.get_node("kab-paser"), tx.get_node("kab-ppu")
            paser_keys = tx.node_keys("kab-paser")
    finally:
        storage.dispose()
    assert (paser["name"], paser["region"]) == ("Pemerintah Kabupaten Paser", "6401")
    assert paser["url"] == "http://127.0.0.1:8702" and paser["enrolled_at"] and not paser["revoked_at"]
    assert {k["key_id"] for k in paser_keys} == {k["key_id"] for k in json.loads(keys.read_text())["keys"]}
    assert (ppu["region"], ppu["enrolled_at"]) == ("6409", None)       # in the file, not enrolled
    listed = {line.split()[0]: line for line in simpul("nodes", "list", "--config", hub).stdout.splitlines()}
    assert "this node" in listed["nasional"] and "not enrolled" not in listed["nasional"]
    assert " enrolled " in listed["kab-paser"] and "not enrolled" in listed["kab-ppu"]


def _at_revision_0002(config: Path, meta_pending: str | None = None) -> None:
    """The node's database as the Simpul before 0003 left it (and, given, its 'identity:pending' meta row)."""
    from alembic import command
    from alembic.config import Config
    storage = SqlStorage(load_settings(config).db_url)
    try:
        cfg = Config()
        cfg.set_main_option("script_location", str(migrate.SCRIPTS))
        with storage.engine.connect() as conn:
            conn.info["write"] = True
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0002")
            if meta_pending is not None:
                conn.exec_driver_sql("INSERT INTO meta (key, value) VALUES ('identity:pending', ?)",
                                     (meta_pending,))
            conn.commit()
    finally:
        storage.dispose()


def test_a_node_upgraded_to_a_newer_schema_is_migrated_by_simpul_migrate(tmp_path, sample_complaints):
    """Before, every command refused a database behind the code's schema and named 'simpul migrate', which
    did not exist: a node could not take a Simpul with a new migration."""
    config = init(tmp_path / "n")
    file_in_process(config, sample_complaints[:2])
    _at_revision_0002(config)
    assert_one_line_error(simpul("status", "--config", config), "revision 0002", "run 'simpul migrate'")
    migrated = simpul("migrate", "--config", config)
    assert migrated.returncode == 0 and f"from revision 0002 to {migrate.head_revision()}" in migrated.stdout
    again = simpul("migrate", "--config", config)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert simpul("verify", "--config", config).stdout.strip() == "checked 2 events: ok"


def test_a_migration_that_fails_is_one_line_and_leaves_the_database_where_it_was(tmp_path):
    """0003 refuses a pending-identity row that is not JSON. Before, 'simpul migrate' printed its traceback."""
    config = init(tmp_path / "n")
    _at_revision_0002(config, meta_pending="{not json")
    assert_one_line_error(simpul("migrate", "--config", config), f"migrating to revision {migrate.head_revision()}"
                          " failed", "not JSON", "the database is at revision 0002")


def test_a_config_whose_database_is_missing_creates_none(tmp_path):
    """Before, 'simpul status --config typo.toml' refused, and left an empty typo.db behind."""
    config = init(tmp_path / "n")
    other = tmp_path / "typo.toml"
    other.write_text(config.read_text().replace("[tokens]", f'database_url = "sqlite:///{tmp_path}/typo.db"\n'
                                                             "[tokens]", 1))
    for command in ("status", "migrate", "verify"):
        assert_one_line_error(simpul(command, "--config", other), f"{tmp_path}/typo.db does not exist")
    assert not list(tmp_path.glob("typo.db*"))


# ------------------------------------------------------------ bad input files
def _rows(config: Path, snapshot) -> dict:
    storage = SqlStorage(load_settings(config).db_url)
    try:
        return snapshot(storage)
    finally:
        storage.dispose()


REGION = {"code": "64", "name": "Provinsi Kalimantan Timur", "level": "provinsi"}


def _federation(change) -> str:
    """The sample federation file, changed by ``change(data)``."""
    from node.samples import sample_dir
    data = json.loads((sample_dir() / "federation.json").read_text(encoding="utf-8"))
    change(data)
    return json.dumps(data)
BAD_INPUT_FILES = [
    # (id, command with {file}, file contents, words the one line must hold)
    ("enroll-keys-not-json", ["nodes", "enroll", "--keys", "{file}"], "{bad", ["keys file", "not valid JSON"]),
    ("enroll-keys-a-list", ["nodes", "enroll", "--keys", "{file}"], "[1]", ["keys file", "JSON object"]),
    ("enroll-keys-without-keys", ["nodes", "enroll", "--keys", "{file}"], '{"node_id": "kab-ppu"}',
     ["keys file", "keys"]),
    ("enroll-keys-small-order", ["nodes", "enroll", "--keys", "{file}"], json.dumps({
        "node_id": "kab-ppu", "keys": [{"key_id": "kab-ppu#sig-1", "kind": "signing",
                                        "public": "AQ" + "A" * 41}]}),   # the identity point: signs everything
     ["keys file", "kab-ppu#sig-1", "not a valid signing public key"]),
    ("federation-a-list", ["federation", "load", "{file}"], "[1]", ["federation_file", "JSON object"]),
    ("federation-region-without-code", ["federation", "load", "{file}"],
     json.dumps({"regions": [REGION, {"name": "x"}]}), ["federation_file", "regions.1.code"]),
    ("federation-institution-not-an-object", ["federation", "load", "{file}"],
     json.dumps({"regions": [REGION], "institutions": ["pln"]}), ["federation_file", "institutions.0"]),
    ("federation-empty", ["federation", "load", "{file}"], "{}", ["holds no nodes, regions or institutions"]),
    ("federation-institution-twice", ["federation", "load", "{file}"],
     _federation(lambda d: d["institutions"].append(dict(d["institutions"][0], node="kab-paser"))),
     ["institution id(s) listed twice", "kemenpu-bpjn-kaltim"]),
    ("federation-institution-on-an-unknown-node", ["federation", "load", "{file}"],
     _federation(lambda d: d["institutions"][1].update(node="kab-kutai")), ["node kab-kutai is not in the file"]),
    ("federation-unknown-parent-region", ["federation", "load", "{file}"],
     _federation(lambda d: d["regions"][1].update(parent="99")), ["parent 99 is not in the file"]),
    ("federation-node-id-with-a-space", ["federation", "load", "{file}"],
     _federation(lambda d: d["nodes"][1].update(node_id="Bad Node")), ["nodes.1.node_id"]),
    ("federation-ppid-a-string", ["federation", "load", "{file}"],
     _federation(lambda d: d["institutions"][0].update(ppid="yes")), ["institutions.0.ppid"]),
    ("passphrase-not-utf8", ["institutions", "keygen", "--id", "pln-uid-kaltimra", "--passphrase-file", "{file}"],
     "rahasia-sekali-".encode() + b"\xff\xfe", ["passphrase", "UTF-8"]),
    ("passphrase-empty", ["institutions", "keygen", "--id", "pln-uid-kaltimra", "--passphrase-file", "{file}"],
     "\n", ["passphrase", "is empty"]),
]


@pytest.mark.parametrize("case", BAD_INPUT_FILES, ids=[c[0] for c in BAD_INPUT_FILES])
def test_a_bad_input_file_stops_with_one_line_and_changes_nothing(tmp_path, db_snapshot, case):
    _, command, contents, words = case
    config = init(tmp_path / "n")
    bad = tmp_path / "input.json"
    if isinstance(contents, bytes):
        bad.write_bytes(contents)
    else:
        bad.write_text(contents)
    before = _rows(config, db_snapshot)
    res = simpul(*[str(bad) if a == "{file}" else a for a in command], "--config", config)
    assert_one_line_error(res, str(bad), *words)
    assert _rows(config, db_snapshot) == before


def test_a_merged_state_nested_too_deep_stops_with_one_line(tmp_path, db_snapshot):
    """Before, json.loads ran out of recursion: a traceback."""
    config = init(tmp_path / "n")
    before = _rows(config, db_snapshot)
    res = simpul("conflicts", "resolve", "c-1", "--state", "[" * 5000 + "]" * 5000, "--reason", "gabung",
                 "--config", config)
    assert_one_line_error(res, "--state is not valid JSON", "depth")
    assert _rows(config, db_snapshot) == before


def test_replay_of_a_dead_letter_that_is_not_waiting_stops_with_one_line(tmp_path, db_snapshot):
    """Before: 'queued 0 dead letter(s) again', exit 0."""
    config = init(tmp_path / "n")
    before = _rows(config, db_snapshot)
    res = simpul("dead-letters", "replay", "--id", "999", "--config", config)
    assert_one_line_error(res, "no dead letter 999 waits to be replayed")
    assert _rows(config, db_snapshot) == before


@pytest.mark.parametrize("dead_letter_id", ["99999999999999999999", "0"])
def test_replay_of_a_dead_letter_id_out_of_range_stops_with_one_line(tmp_path, db_snapshot, dead_letter_id):
    config = init(tmp_path / "n")
    before = _rows(config, db_snapshot)
    res = simpul("dead-letters", "replay", "--id", "1", "--id", dead_letter_id, "--config", config)
    assert_one_line_error(res, dead_letter_id, "1 to 9223372036854775807")
    assert _rows(config, db_snapshot) == before


def test_run_on_a_port_in_use_stops_with_one_line(tmp_path):
    config = init(tmp_path / "n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = simpul("run", "--config", config, "--port", port, timeout=30)
    assert_one_line_error(res, "port", str(port), "in use")
    assert "serving on" not in res.stdout


def test_run_with_an_unknown_event_loop_stops_with_one_line(tmp_path):
    config = init(tmp_path / "n")
    res = simpul("run", "--config", config, env=clean_env(SIMPUL_EVENT_LOOP="libev"), timeout=30)
    assert_one_line_error(res, "event_loop", "'auto', 'uvloop' or 'asyncio'")
    assert "serving on" not in res.stdout


BAD_DEMO_INPUTS = [
    # (id, option, file contents, words the one line must hold)
    ("complaints-not-json", "--complaints", "{bad\n", ["complaints", "line 1 is not valid JSON"]),
    ("federation-without-a-hub", "--federation", json.dumps({"nodes": [{"node_id": "kab-paser"}]}),
     ["federation_file", "no hub"]),
]


@pytest.mark.parametrize("case", BAD_DEMO_INPUTS, ids=[c[0] for c in BAD_DEMO_INPUTS])
def test_demo_with_a_bad_input_file_stops_with_one_line_before_starting(tmp_path, case):
    _, option, contents, words = case
    bad = tmp_path / "input.json"
    bad.write_text(contents)
    res = simpul("demo", option, bad, "--dir", tmp_path / "demo", timeout=30)
    assert_one_line_error(res, str(bad), *words)
    assert not (tmp_path / "demo").exists()


def test_demo_with_a_manifest_it_cannot_write_stops_with_one_line_before_starting(tmp_path):
    res = simpul("demo", "--manifest", tmp_path / "nowhere" / "m.json", "--dir", tmp_path / "demo", timeout=30)
    assert_one_line_error(res, "--manifest", str(tmp_path / "nowhere"), "does not exist")
    assert not (tmp_path / "demo").exists()
