"""The team console in a real browser (Playwright driving Debian's Chromium) against a real
``returnbridge serve`` process. These tests FAIL, never skip, when the browser cannot run:
install it with ``apt-get install -y chromium`` (.ci/run does).

Screenshots of each page are written to docs/console/ (referenced from docs/console.md).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from returnbridge.flows.console.accounts import add_user
from returnbridge.sandbox.demo import KHAOS_PASSWORD, KHAOS_USER, LOOP_SECRET, write_demo_config
from returnbridge.sandbox.khaos.poller import KhaosSandbox
from returnbridge.sandbox.loop.samples import CATALOGUE, Scenario, return_payload
from returnbridge.sandbox.loop.sender import LoopSender
from returnbridge.sandbox.month import generate, load_legs
from returnbridge.sandbox.service import ServiceProcess, free_port
from returnbridge.store.db import make_engine, session_factory
from returnbridge.store.migrate import upgrade
from returnbridge.store.models import ConsoleMappingRule, ExceptionRow, utcnow
from returnbridge.store.returns_repo import ReturnsRepository
from returnbridge.store.unit_of_work import UnitOfWork
from tests.conftest import create_pg_database, drop_pg_database, pg_url
from tests.exceptions._seed import add_problem

# One server and one browser for the module: keep its tests on one xdist worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("console-browser")]

CHROMIUM = "/usr/bin/chromium"
# The suite saves a screenshot of every page: into docs/console when asked
# (`make screenshots`, RB_UPDATE_SCREENSHOTS=1), else beside the test run, so that running
# the tests never edits the repository.
SHOTS = (Path(__file__).resolve().parents[2] / "docs" / "console"
         if os.environ.get("RB_UPDATE_SCREENSHOTS") == "1"
         else Path(tempfile.gettempdir()) / "returnbridge-console-screenshots")
SHOTS.mkdir(parents=True, exist_ok=True)
PASSWORD = "correct horse battery staple"
USERS = {"carol": "cx", "walt": "warehouse", "fiona": "finance", "ada": "admin"}
XSS = "<script>alert(1)</script>"
RECON_PERIOD = "2026-10"


@dataclass
class Console:
    base_url: str
    db_url: str
    browser: Browser
    screenshots: bool = True  # one database's run saves them

    def shot(self, page: Page, name: str, *, full_page: bool = True) -> None:
        if self.screenshots:
            page.screenshot(path=str(SHOTS / name), full_page=full_page)

    def session(self) -> Any:
        return session_factory(make_engine(self.db_url))()

    def login(self, username: str) -> Page:
        page = self.browser.new_page(base_url=self.base_url)
        page.goto("/console/login")
        page.get_by_label("User name").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_test_id("who")).to_contain_text(username.title())
        return page


def _cli(config: Path, *args: str, stdin: str = "") -> None:
    result = subprocess.run([sys.executable, "-m", "returnbridge", *args, "--config",
                             str(config)], input=stdin, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def _payload(return_id: int, reason: str, sku: str = "TEE-BLK-M") -> dict[str, Any]:
    payload = return_payload(return_id, Scenario("refund", ("TEE-BLK-M",)))
    for unit in payload["line_items"]:
        unit["return_reason"] = reason
        unit["sku"] = sku
    return payload


def _wait(db_url: str, count: int, timeout: float = 60) -> None:
    from sqlalchemy import func, select

    from returnbridge.store.models import ReturnRow

    engine = make_engine(db_url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                if (conn.scalar(select(func.count()).select_from(ReturnRow)) or 0) >= count:
                    return
            time.sleep(0.2)
    finally:
        engine.dispose()
    raise AssertionError(f"fewer than {count} returns arrived within {timeout}s")


@contextmanager
def _serve(tmp: Path, db_url: str, *, screenshots: bool = True) -> Iterator[Console]:
    """A real ``returnbridge serve`` on ``db_url`` (migrated here) with the sandbox returns,
    users, a finance exception and a reconciliation month, and a browser."""
    port = free_port()
    config = write_demo_config(tmp, port, db_url)
    text = config.read_text(encoding="utf-8")
    # No catch-all rule: "Changed my mind" and "Wrong colour" stay unmapped (held, ops).
    text = text.replace('[[mapping.reasons]]\nkhaos_reason_id = "', '[[mapping.reasons]]\n'
                        'reason = "Too small"\nkhaos_reason_id = "')
    text = text.replace('format = "json"', 'format = "json"\n\n[console]\n'
                        'secure_cookies = "never"\n\n[reconciliation]\n'
                        f'out_dir = "{tmp / "packs"}"')
    config.write_text(text, encoding="utf-8")
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.begin() as conn:  # a small sandbox month with planted differences
        load_legs(conn, generate(RECON_PERIOD, 80, seed=5))
    with UnitOfWork(session_factory(engine)) as uow:
        for name, role in USERS.items():
            if name != "ada":
                add_user(uow, name, role, PASSWORD, by="test", display_name=name.title())
    engine.dispose()
    # The admin is added the way an operator does it: the CLI, password on stdin.
    _cli(config, "users", "add", "ada", "--role", "admin", "--password-stdin", "--name", "Ada",
         stdin=PASSWORD + "\n")
    service = ServiceProcess(config, port, tmp / "service.log")
    service.start()
    sender = LoopSender(f"{service.base_url}/webhooks/loop", LOOP_SECRET)
    try:
        for rid in (101, 102):  # bulk retry
            assert sender.send(_payload(rid, "Changed my mind")).status_code == 200
        for rid in (201, 202):  # mapping preview
            assert sender.send(_payload(rid, "Wrong colour")).status_code == 200
        assert sender.send(_payload(301, "Too small")).status_code == 200  # served
        assert sender.send(_payload(401, "Too small", sku=XSS)).status_code == 200
        _wait(db_url, 6)
        khaos = KhaosSandbox(f"{service.base_url}/khaos/config.json", KHAOS_USER,
                             KHAOS_PASSWORD, catalogue=set(CATALOGUE), customers={"LOOPWEB"})
        khaos.poll()
        engine = make_engine(db_url)
        with session_factory(engine)() as s, s.begin():

            ret = ReturnsRepository(s).by_ref("LR-301")
            add_problem(s, "duplicate_refund_suspected", "LR-301:refund", ret=ret,
                        message="Two refunds of 25.00 GBP for LR-301.")
        engine.dispose()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM)
            try:
                yield Console(service.base_url, db_url, browser, screenshots)
            finally:
                browser.close()
    finally:
        sender.close()
        service.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def console(tmp_path_factory: pytest.TempPathFactory,
            request: pytest.FixtureRequest) -> Iterator[Console]:
    """Every journey on SQLite (taking the screenshots) and on PostgreSQL, each against its
    own ``serve``. PostgreSQL fails, never skips, with RB_TEST_REQUIRE_POSTGRES=1 or in CI
    when it is missing (conftest's pg_template)."""
    tmp = tmp_path_factory.mktemp(f"console-{request.param}")
    if request.param == "sqlite":
        with _serve(tmp, f"sqlite:///{tmp / 'returnbridge.db'}") as c:
            yield c
        return
    request.getfixturevalue("pg_template")
    name = create_pg_database()  # empty: serve's schema comes from the migrations here
    try:
        with _serve(tmp, pg_url(name), screenshots=False) as c:
            yield c
    finally:
        drop_pg_database(name)


def _exception_id(console: Console, type_: str, ref: str) -> int:
    with console.session() as s:
        from sqlalchemy import select

        return int(s.scalars(select(ExceptionRow.id).where(
            ExceptionRow.type == type_, ExceptionRow.associated_ref == ref)).one())


def test_each_role_signs_in_and_sees_its_name_and_role(console: Console) -> None:
    labels = {"cx": "customer service", "warehouse": "warehouse", "finance": "finance",
              "admin": "admin"}
    for username, role in USERS.items():
        page = console.login(username)
        expect(page.get_by_test_id("who")).to_have_text(f"{username.title()} "
                                                        f"({labels[role]})")
        nav = page.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link", name="Health")).to_have_count(
            1 if role == "admin" else 0)
        page.get_by_role("link", name="Exceptions").click()
        # Each team lands on its own queue.
        expect(page.locator('.tabs a[aria-current="page"]')).to_contain_text(
            role if role != "admin" else "all")
        if role == "admin":
            page.goto("/console/overview")
            expect(page.get_by_role("heading", name="The flow at a glance")).to_be_visible()
            console.shot(page, "overview.png")
            page.goto("/console/health")
            expect(page.get_by_role("heading", name="Connections")).to_be_visible()
            expect(page.get_by_role("heading", name="Event processing")).to_be_visible()
            expect(page.get_by_test_id("events-verdict")).to_have_text(
                re.compile(r"applied|waiting"))
            console.shot(page, "health.png")
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        page.close()


def test_an_anonymous_visitor_gets_the_login_page(console: Console) -> None:
    page = console.browser.new_page(base_url=console.base_url)
    page.goto("/console/returns/LR-301")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert "/console/login?next=/console/returns/LR-301" in page.url
    console.shot(page, "login.png", full_page=False)
    page.get_by_label("User name").fill("ada")
    page.get_by_label("Password").fill("wrong password!!")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong user name or password")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=re.compile("LR-301"))).to_be_visible()
    page.close()


def test_a_cx_user_cannot_act_on_a_finance_exception(console: Console) -> None:
    finance_id = _exception_id(console, "duplicate_refund_suspected", "LR-301")
    page = console.login("carol")
    page.goto(f"/console/exceptions/{finance_id}")
    expect(page.get_by_text("This is the finance team's exception")).to_be_visible()
    expect(page.get_by_role("button", name="Resolve")).to_have_count(0)
    token = page.locator('input[name="csrf_token"]').first.get_attribute("value")
    refused = page.request.post(f"/console/exceptions/{finance_id}/resolve",
                                form={"csrf_token": token or "", "why": "not mine"})
    assert refused.status == 403
    page.close()
    finance = console.login("fiona")
    finance.goto(f"/console/exceptions/{finance_id}")
    expect(finance.get_by_role("button", name="Resolve")).to_be_visible()
    expect(finance.get_by_role("heading", name="Runbook: duplicate_refund_suspected")
           ).to_be_visible()
    console.shot(finance, "exception.png")
    finance.close()
    with console.session() as s:
        assert s.get(ExceptionRow, finance_id).status == "open"


def test_a_post_without_the_csrf_token_is_refused(console: Console) -> None:
    finance_id = _exception_id(console, "duplicate_refund_suspected", "LR-301")
    page = console.login("fiona")
    refused = page.request.post(f"/console/exceptions/{finance_id}/resolve",
                                form={"why": "no token"})
    assert refused.status == 403
    assert "CSRF" in refused.text()
    page.close()
    with console.session() as s:
        assert s.get(ExceptionRow, finance_id).status == "open"


def test_a_bulk_retry_releases_held_returns(console: Console) -> None:
    # The cause is fixed elsewhere (a rule saved by another process); a person retries.
    with console.session() as s, s.begin():
        s.add(ConsoleMappingRule(reason="Changed my mind", khaos_reason_id="6",
                                 processing="restock", created_at=utcnow(),
                                 created_by="user:someone-else", note="fixed elsewhere"))
    ids = [_exception_id(console, "unmapped_return_reason", ref)
           for ref in ("LR-101", "LR-102")]
    page = console.login("ada")
    page.goto("/console/exceptions?owner=ops&type=unmapped_return_reason")
    for exception_id in ids:
        page.get_by_label(f"Select exception {exception_id}").check()
    console.shot(page, "exceptions.png")
    page.get_by_role("button", name="Retry selected").click()
    expect(page.get_by_role("status").first).to_contain_text("retry: 2 resolved")
    page.goto("/console/returns?status=ready")
    expect(page.get_by_role("link", name="LR-101")).to_be_visible()
    expect(page.get_by_role("link", name="LR-102")).to_be_visible()
    page.close()
    with console.session() as s:
        rows = [s.get(ExceptionRow, i) for i in ids]
        assert [(r.status, r.resolved_by) for r in rows] == [("resolved", "user:ada")] * 2


def test_a_return_page_shows_its_timeline_and_khaos_document(console: Console) -> None:
    page = console.login("walt")
    page.goto("/console/returns?q=LR-301")
    page.get_by_role("link", name="LR-301").click()
    timeline = page.locator("ol.timeline")
    expect(timeline).to_contain_text("fetched by Khaos in delivery")
    document = page.get_by_test_id("khaos-document").first
    expect(document).to_contain_text('"AssociatedRef":"LR-301"')
    page.get_by_role("link", name="What Khaos would receive now").click()
    expect(page.get_by_test_id("dry-run")).to_contain_text("LR-301")
    console.shot(page, "return.png")
    page.close()


def test_a_mapping_preview_lists_the_returns_it_would_release(console: Console) -> None:
    page = console.login("ada")
    page.goto("/console/mapping")
    page.get_by_label("Reason (glob)").fill("Wrong colour")
    page.get_by_label("Khaos reason ID").fill("6")
    page.get_by_label("Processing").select_option("restock")
    page.get_by_label("Note (why)").fill("colour returns go back to stock")
    page.get_by_role("button", name="Preview").click()
    released = page.get_by_test_id("would-release")
    expect(released).to_contain_text("LR-201")
    expect(released).to_contain_text("LR-202")
    console.shot(page, "mapping.png")
    page.get_by_role("button", name="Save this rule").click()
    expect(page.get_by_role("status").first).to_contain_text("2 released")
    page.close()


def test_payload_text_is_shown_escaped(console: Console) -> None:
    page = console.login("carol")
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto("/console/returns/LR-401")
    expect(page.locator("#lines")).to_contain_text(XSS)
    page.goto("/console/returns?sku=" + quote(XSS))
    expect(page.get_by_role("link", name="LR-401")).to_be_visible()
    console.shot(page, "returns.png")
    assert dialogs == []
    page.close()


def test_finance_opens_the_reconciliation_month_and_builds_the_pack(console: Console) -> None:
    month = generate(RECON_PERIOD, 80, seed=5)  # the same month the fixture loaded
    page = console.login("fiona")
    page.get_by_role("link", name="Reconciliation", exact=True).click()
    page.get_by_label("Month", exact=True).fill(RECON_PERIOD)
    page.get_by_role("button", name="Show", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Reconciliation {RECON_PERIOD}")
    expect(page.get_by_test_id("residual")).to_contain_text("0.00")
    planted = month.planted[0]
    expect(page.locator("#categories")).to_contain_text(planted.category.value)
    expect(page.locator("#differences")).to_contain_text(planted.key)
    page.get_by_role("button", name="Build the pack").click()
    expect(page.get_by_role("status").first).to_contain_text(f"Pack for {RECON_PERIOD} written")
    expect(page.get_by_test_id("pack-files")).to_contain_text(
        f"reconciliation-{RECON_PERIOD}.xlsx")
    console.shot(page, "reconciliation.png")
    page.close()
