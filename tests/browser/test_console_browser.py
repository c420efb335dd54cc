"""The admin console in headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright) against real nodes: the hub and kab-paser as separate processes
(node.cluster), each with its own database, keys and port on 127.0.0.1.

Screenshots of every page, at laptop (1280x800) and phone (390x844) size, go
to artifacts/screenshots/ (git-ignored): ``<node>-<page>-<size>.png``.
Reproduce with ``bash scripts/test tests/browser -q``.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest

from node.cluster import Cluster
from node.cluster_client import ApiError

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SIZES = {"laptop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
HUB, DISTRICT = "nasional", "kab-paser"


def wait_until(predicate, timeout: float = 45.0, what: str = "condition"):
    return Cluster.wait_until(predicate, timeout, what=what)


@pytest.fixture(scope="module")
def samples(sample_dir) -> dict[str, dict]:
    lines = (sample_dir / "complaints.jsonl").read_text(encoding="utf-8").splitlines()
    return {d["ref"]: d for d in (json.loads(x) for x in lines if x.strip())}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, sample_dir):
    c = Cluster(tmp_path_factory.mktemp("console-cluster"), sample_dir / "federation.json", node_ids=[DISTRICT])
    c.init()
    # An admin's manual disposition of a ticket without a topic would otherwise be bounced at
    # once by kab-paser's automatic competence check ("bukan wewenang"); this test is about the
    # console delivering the assignment, so the district keeps what it is given.
    c.start(HUB)
    c.start(DISTRICT, env={"SIMPUL_AUTO_RETURN_OUT_OF_COMPETENCE": "false"})
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (scripts/test installs Debian's chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


class Console:
    """One logged-in browser context on one node's console, at one screen size."""

    def __init__(self, browser, cluster: Cluster, node: str, size: str):
        self.node, self.size, self.base = node, size, cluster.url(node)
        self.password = cluster.settings(node)["admin_password"]
        self.context = browser.new_context(viewport=SIZES[size], is_mobile=size == "phone",
                                           has_touch=size == "phone", locale="id-ID")
        self.page = self.context.new_page()

    def goto(self, path: str):
        self.page.goto(self.base + path)
        if self.page.url.startswith(self.base + "/admin/login"):  # sessions end when a node restarts
            self._log_in()
            self.page.goto(self.base + path)
        return self.page

    def login(self) -> Console:
        self.page.goto(self.base + "/admin/")
        assert self.page.url.startswith(self.base + "/admin/login"), self.page.url
        self._log_in()
        self.page.wait_for_selector("#by-status")
        return self

    def _log_in(self) -> None:
        self.page.fill("input[name=password]", self.password)
        self.page.click("form.stack button[type=submit]")
        self.page.wait_for_load_state()
        assert "/admin/login" not in self.page.url, "login failed"

    def shot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{self.node}-{name}-{self.size}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def fits_width(self) -> bool:
        """Nothing but the tables' own scroll boxes is wider than the screen."""
        return self.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def consoles(browser, cluster):
    opened: dict[tuple[str, str], Console] = {}

    def get(node: str, size: str = "laptop") -> Console:
        if (node, size) not in opened:
            opened[(node, size)] = Console(browser, cluster, node, size).login()
        return opened[(node, size)]
    yield get
    for c in opened.values():
        c.close()


@contextlib.contextmanager
def node_logs_on_failure(cluster: Cluster):
    """Attach the tail of both nodes' logs to a failure (real processes fail in real ways)."""
    try:
        yield
    except Exception as exc:
        tails = "\n".join(f"--- {n} log ---\n{cluster.log_tail(n, 40)}" for n in (HUB, DISTRICT))
        raise AssertionError(f"{exc}\n{tails}") from exc
    finally:
        cluster.start()  # whatever happened, leave both nodes running for the next test


def file_and_wait_at_hub(cluster: Cluster, sample: dict) -> str:
    filed = cluster.client(DISTRICT, "intake").file(sample)
    hub = cluster.client(HUB)
    wait_until(lambda: hub.find(filed["ticket_id"]), what=f"{sample['ref']} to reach the hub")
    return filed["ticket_id"]


# ------------------------------------------------------------------ tests
def test_login_refuses_a_wrong_password_then_shows_the_dashboard(browser, cluster):
    for node in (HUB, DISTRICT):
        for size in SIZES:
            c = Console(browser, cluster, node, size)
            try:
                page = c.page
                page.goto(c.base + "/admin/tickets")
                assert "/admin/login" in page.url
                page.fill("input[name=password]", "salah-sekali")
                page.click("form.stack button[type=submit]")
                assert "Nama pengguna atau kata sandi salah" in page.inner_text("main")
                c.shot("login-error")
                page.fill("input[name=password]", c.password)
                page.click("form.stack button[type=submit]")
                page.wait_for_url(c.base + "/admin/tickets")  # back where it was sent to log in
                assert page.locator("table#tickets").count() == 1
                c.goto("/admin/")
                page.wait_for_selector("#peers")
                peers = page.inner_text("#peers")
                assert (DISTRICT if node == HUB else HUB) in peers
                assert c.fits_width(), f"{node} dashboard overflows at {size}"
                c.shot("dashboard")
                c.goto("/admin/?lang=en")
                assert "Sync health" in page.inner_text("h1")
                c.shot("dashboard-en")
                c.goto("/admin/?lang=id")
            finally:
                c.close()


def test_assign_from_the_disposition_queue_reaches_the_node(consoles, cluster, samples):
    ticket_id = file_and_wait_at_hub(cluster, samples["S020"])
    hub = cluster.client(HUB)
    wait_until(lambda: any(t["ticket_id"] == ticket_id for t in hub.disposition()),
               what="S020 in the hub's disposition queue")
    c = consoles(HUB)
    page = c.goto("/admin/disposition")
    row = page.locator(f'tr[data-ticket="{ticket_id}"]')
    assert row.count() == 1
    c.shot("disposition")
    consoles(HUB, "phone").goto("/admin/disposition")
    assert consoles(HUB, "phone").fits_width()
    consoles(HUB, "phone").shot("disposition")
    row.locator("select[name=institution]").select_option("paser-dpmptsp")
    row.locator("input[name=reason]").fill("pungutan liar pada layanan surat keterangan usaha")
    row.locator("button[type=submit]").click()
    page.wait_for_selector(".flash-ok")
    assert "paser-dpmptsp" in page.inner_text(".flash-ok")
    assert page.locator(f'tr[data-ticket="{ticket_id}"]').count() == 0
    c.shot("disposition-assigned")

    district = cluster.client(DISTRICT)

    def arrived():
        t = district.find(ticket_id)
        return t if t and t["institution"] == "paser-dpmptsp" else None
    t = wait_until(arrived, what="the assignment to reach kab-paser")
    assert (t["status"], t["holder_node"]) == ("dispositioned", DISTRICT)

    for size in SIZES:
        d = consoles(DISTRICT, size)
        page = d.goto(f"/admin/tickets/{ticket_id}")
        assert "paser-dpmptsp" in page.inner_text("#ticket-institution")
        types = page.eval_on_selector_all("#timeline li", "els => els.map(e => e.dataset.type)")
        assert types[0] == "created" and "routed" in types
        assert page.locator("#timeline .sig-bad").count() == 0
        assert page.locator("#timeline .sig-ok").count() == len(types)
        assert d.fits_width()
        d.shot("ticket-timeline")
        d.goto("/admin/tickets")
        d.shot("tickets")
        h = consoles(HUB, size)
        h.goto(f"/admin/tickets/{ticket_id}")
        h.shot("ticket-timeline")


def test_replay_a_dead_letter(consoles, cluster, samples):
    from adapters.storage import SqlStorage
    ticket_id = file_and_wait_at_hub(cluster, samples["S013"])
    storage = SqlStorage(f"sqlite:///{cluster.proc(DISTRICT).data_dir / 'simpul.db'}")
    try:
        with storage.transaction() as tx:
            event_id = tx.ticket_events(ticket_id)[0].id
            tx.add_dead_letters(HUB, [(event_id, "422 integrity: refused by the hub (injected by the test)")])
            dead_id = tx.dead_letters()[-1]["id"]
    finally:
        storage.dispose()
    district = cluster.client(DISTRICT)
    assert any(d["id"] == dead_id for d in district.get("/api/v1/dead-letters")["items"])

    c = consoles(DISTRICT)
    page = c.goto("/admin/")
    assert page.locator("#peers").inner_text().count("\n") >= 1
    page = c.goto("/admin/dead-letters")
    row = page.locator(f'tr[data-id="{dead_id}"]')
    assert "refused by the hub" in row.inner_text()
    c.shot("dead-letters")
    phone = consoles(DISTRICT, "phone")
    phone.goto("/admin/dead-letters")
    assert phone.fits_width()
    phone.shot("dead-letters")
    row.locator("button", has_text="Kirim ulang").click()
    page.wait_for_selector(".flash-ok")
    assert page.locator(f'tr[data-id="{dead_id}"]').count() == 0
    c.shot("dead-letters-replayed")
    assert not any(d["id"] == dead_id for d in district.get("/api/v1/dead-letters")["items"])
    replayed = district.get("/api/v1/dead-letters?all=1")["items"]
    assert any(d["id"] == dead_id and d["replayed_at"] for d in replayed)
    # re-queued and delivered again: the district's queue for the hub drains to empty
    wait_until(lambda: next(p for p in district.sync_status()["peers"] if p["peer"] == HUB)["queue_depth"] == 0,
               what="the replayed event to be delivered")


def test_identity_opening_is_offered_and_audited(consoles, cluster, samples):
    ticket_id = file_and_wait_at_hub(cluster, samples["S003"])
    c = consoles(DISTRICT)
    page = c.goto(f"/admin/tickets/{ticket_id}")
    if page.locator("#identity-unavailable").count():
        pytest.skip("this node has no identity service")
    page.fill("#identity input[name=actor]", "Budi (operator PUPR)")
    page.fill("#identity textarea[name=reason]", "perlu menghubungi pelapor untuk survei lokasi")
    page.click("#identity button[type=submit]")
    text = page.inner_text("#identity")
    assert samples["S003"]["reporter"]["name"] in text
    assert "identitas dibuka" in text  # the audit trail lists the opening
    c.shot("ticket-identity-opened")
    # the hub never shows it
    hub_page = consoles(HUB).goto(f"/admin/tickets/{ticket_id}")
    assert samples["S003"]["reporter"]["name"] not in hub_page.content()


def conflicts_available(cluster: Cluster) -> bool:
    try:
        cluster.client(HUB).get("/api/v1/conflicts")
    except ApiError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def test_resolve_a_partition_conflict_in_the_console(consoles, cluster, samples):
    if not conflicts_available(cluster):
        pytest.skip("needs conflicts")
    with node_logs_on_failure(cluster):
        hub, district = cluster.client(HUB), cluster.client(DISTRICT)
        ticket_id = file_and_wait_at_hub(cluster, samples["S003"])
        wait_until(lambda: (district.find(ticket_id) or {}).get("holder_node") == DISTRICT,
                   what="S003 to be routed to kab-paser")
        # partition: while the hub is down the district follows up and closes ...
        cluster.stop(HUB)
        district.act(ticket_id, "follow_up", text="Lubang jalan sudah ditambal pada 12 Maret.")
        district.act(ticket_id, "close")
        cluster.stop(DISTRICT)
        # ... and while the district is down the hub archives
        cluster.start(HUB)
        hub.act(ticket_id, "archive", reason="laporan ganda")
        # heal
        cluster.start(DISTRICT)

        def open_conflict(client):
            items = [c for c in client.get("/api/v1/conflicts?status=open")["items"] if c["ticket_id"] == ticket_id]
            return items[0] if items else None
        conflict = wait_until(lambda: open_conflict(hub), 120, what="the conflict at the hub")
        wait_until(lambda: open_conflict(district), 120, what="the conflict at the district")

        c = consoles(HUB)
        page = c.goto("/admin/conflicts")
        assert page.locator(f'tr[data-conflict="{conflict["id"]}"]').count() == 1
        c.shot("conflicts")
        page = c.goto(f"/admin/conflicts/{conflict['id']}")
        assert page.locator("#sides tr.differs").count() >= 1
        assert page.locator("#sides th.winner").count() == 1
        c.shot("conflict")
        phone = consoles(HUB, "phone")
        phone.goto(f"/admin/conflicts/{conflict['id']}")
        assert phone.fits_width()
        phone.shot("conflict")
        district_side = next(s["label"] for s in hub.get(f"/api/v1/conflicts/{conflict['id']}")["sides"]
                             if s["author"] == DISTRICT)
        page.check(f'#resolve input[name=choice][value="{district_side}"]')
        page.fill("#resolve textarea[name=reason]", "perbaikan sudah dilakukan; bukan laporan ganda")
        page.click("#resolve button[type=submit]")
        page.wait_for_selector("#conflict-resolution")
        assert "diselesaikan" in page.inner_text("#conflict-status")
        c.shot("conflict-resolved")

        def resolved_at(client):
            return client.get(f"/api/v1/conflicts/{conflict['id']}")["status"] == "resolved"
        wait_until(lambda: resolved_at(district), 120, what="the resolution to reach kab-paser")
        wait_until(lambda: hub.ticket(ticket_id)["status"] == district.ticket(ticket_id)["status"] == "closed", 120,
                   what="both nodes to converge on the district's side")
        d = consoles(DISTRICT)
        page = d.goto(f"/admin/conflicts/{conflict['id']}")
        assert "diselesaikan" in page.inner_text("#conflict-status")
        d.shot("conflict-resolved")


def test_dashboard_and_lists_after_the_activity(consoles, cluster):
    """The pages once there is something on them (and screenshots of those)."""
    cluster.start()  # (no-op when both run)
    hub_tickets = len(cluster.client(HUB).tickets())
    for node in (HUB, DISTRICT):
        for size in SIZES:
            c = consoles(node, size)
            page = c.goto("/admin/")
            counts = page.eval_on_selector_all("#by-status td.num", "els => els.map(e => Number(e.innerText))")
            assert sum(counts) >= (hub_tickets if node == HUB else 1)
            assert c.fits_width(), f"{node} dashboard overflows at {size}"
            c.shot("dashboard-busy")
            for path, name in (("/admin/tickets", "tickets"), ("/admin/conflicts?status=all", "conflicts")):
                c.goto(path)
                assert c.fits_width(), f"{node} {name} overflows at {size}"
                c.shot(name)
