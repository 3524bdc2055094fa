"""Console sign-in, sessions, CSRF, roles and scoped API tokens over real HTTP, on SQLite and
PostgreSQL (the browser suite covers the pages themselves)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from returnbridge.cli import app as cli_app
from returnbridge.flows.console import accounts
from returnbridge.flows.exceptions.health import record_job
from returnbridge.store import audit
from returnbridge.store.models import AuditEntry, ConsoleUser, ExceptionRow
from tests.conftest import API_TOKEN, LiveApp, start_live_app
from tests.exceptions._seed import add_problem, add_return

PASSWORD = "a long enough password"


@pytest.fixture
def app(runtime_factory: Any) -> Iterator[LiveApp]:
    live = start_live_app(runtime_factory, console={"login_attempts": 3})
    with live.rt.unit_of_work() as uow:
        for name, role in (("carol", "cx"), ("fiona", "finance"), ("ada", "admin"),
                           ("walt", "warehouse")):
            accounts.add_user(uow, name, role, PASSWORD, by="test")
    with live.rt.sessions() as s, s.begin():
        ret = add_return(s, "LR-9", [("TEE-BLK-M", "Too small", "", "restock")])
        add_problem(s, "credit_note_missing", "LR-9:refund", ret=ret)
        add_problem(s, "unknown_customer", "LR-9:customer", ret=ret)
        add_return(s, "ZZ-1", [("SCARF-GRY", "Too big", "", "restock")], source="zigzag")
    yield live
    live.stop()


def _login(live: LiveApp, username: str, password: str = PASSWORD) -> httpx.Client:
    client = live.client(follow_redirects=False)
    form = client.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    r = client.post("/console/login", data={"username": username, "password": password,
                                             "csrf_token": token.group(1), "next": ""})
    client.headers["x-last-status"] = str(r.status_code)
    return client


def _csrf(client: httpx.Client, path: str = "/console/overview") -> str:
    page = client.get(path)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None, page.text[:500]
    return found.group(1)


def _exception(live: LiveApp, type_: str) -> int:
    with live.rt.sessions() as s:
        return int(s.scalars(select(ExceptionRow.id).where(ExceptionRow.type == type_)).one())


def test_sign_in_sets_a_hardened_cookie_and_signs_out(app: LiveApp) -> None:
    client = _login(app, "ada")
    cookie = [h for h in client.cookies.jar if h.name == "rb_session"]
    assert client.headers["x-last-status"] == "303" and len(cookie) == 1
    assert cookie[0].has_nonstandard_attr("HttpOnly")
    page = client.get("/console/overview")
    assert page.status_code == 200 and 'data-testid="who">ada <span class="role">(admin)' \
        in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    with app.rt.sessions() as s:
        user = s.scalars(select(ConsoleUser).where(ConsoleUser.username == "ada")).one()
        assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash
    client.post("/console/logout", data={"csrf_token": _csrf(client)})
    assert client.get("/console/overview").status_code == 303  # back to the sign-in page


def test_https_behind_a_proxy_marks_the_cookie_secure(app: LiveApp) -> None:
    client = app.client(follow_redirects=False, headers={"X-Forwarded-Proto": "https"})
    form = client.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    # The sign-in cookie is Secure too, so this plain-http test client must send it by hand.
    r = client.post("/console/login", data={"username": "ada", "password": PASSWORD,
                                             "csrf_token": token.group(1)},
                    headers={"Cookie": f"rb_login_csrf={form.cookies['rb_login_csrf']}"})
    [session_cookie] = [c.lower() for c in r.headers.get_list("set-cookie")
                        if c.startswith("rb_session=")]
    assert "; secure" in session_cookie and "samesite=lax" in session_cookie
    assert "httponly" in session_cookie


def test_sign_in_is_rate_limited_and_disabled_users_cannot_sign_in(app: LiveApp) -> None:
    with app.rt.unit_of_work() as uow:
        accounts.set_disabled(uow, "walt", True, by="test")
    assert _login(app, "walt").headers["x-last-status"] == "401"
    assert _login(app, "carol", "wrong").headers["x-last-status"] == "401"
    assert _login(app, "carol", "wrong").headers["x-last-status"] == "401"
    # the third failure from this address: from now on even the right password waits
    assert _login(app, "carol").headers["x-last-status"] == "429"


def test_the_sign_in_limit_is_shared_by_every_serving_process(
        app: LiveApp, runtime_factory: Any) -> None:
    """Two ``serve`` processes (workers) on one database: failures on either count together."""
    other = start_live_app(runtime_factory, console={"login_attempts": 3})
    try:
        assert _login(app, "fiona", "wrong").headers["x-last-status"] == "401"
        assert _login(other, "fiona", "wrong").headers["x-last-status"] == "401"
        assert _login(app, "fiona", "wrong").headers["x-last-status"] == "401"
        refused = _login(other, "fiona")  # the right password, on the other process
        assert refused.headers["x-last-status"] == "429"
        assert _login(app, "ada").headers["x-last-status"] == "429"  # same client address
    finally:
        other.stop()


def test_a_login_form_without_its_csrf_token_is_refused(app: LiveApp) -> None:
    with app.client(follow_redirects=False) as client:
        r = client.post("/console/login", data={"username": "ada", "password": PASSWORD})
    assert r.status_code == 403 and "rb_session" not in r.headers.get("set-cookie", "")


def test_roles_matrix_exception_actions(app: LiveApp) -> None:
    finance_id = _exception(app, "credit_note_missing")
    cx_id = _exception(app, "unknown_customer")
    # cell: cx may not act on finance's exception; finance may; admin may act on anything.
    carol = _login(app, "carol")
    refused = carol.post(f"/console/exceptions/{finance_id}/resolve",
                         data={"csrf_token": _csrf(carol), "why": "not mine"})
    assert refused.status_code == 403
    fiona = _login(app, "fiona")
    refused_cx = fiona.post(f"/console/exceptions/{cx_id}/ignore",
                            data={"csrf_token": _csrf(fiona), "why": "not mine either"})
    assert refused_cx.status_code == 403
    done = fiona.post(f"/console/exceptions/{finance_id}/resolve",
                      data={"csrf_token": _csrf(fiona), "why": "one refund voided"})
    assert done.status_code == 303
    ada = _login(app, "ada")
    ignored = ada.post(f"/console/exceptions/{cx_id}/ignore",
                       data={"csrf_token": _csrf(ada), "why": "handled by phone"})
    assert ignored.status_code == 303
    with app.rt.sessions() as s:
        rows = {e.type: (e.status, e.resolved_by) for e in s.scalars(select(ExceptionRow))}
        actors = [(e.actor, e.action) for e in s.scalars(
            select(AuditEntry).where(AuditEntry.action.like("exception.%")))]
        assert audit.verify_chain(s) == []
    assert rows == {"credit_note_missing": ("resolved", "user:fiona"),
                    "unknown_customer": ("ignored", "user:ada")}
    assert actors == [("user:fiona", "exception.resolve"), ("user:ada", "exception.ignore")]


def test_roles_matrix_health_and_mapping_save_are_admin_only(app: LiveApp) -> None:
    walt = _login(app, "walt")
    assert walt.get("/console/health").status_code == 403
    rule = {"reason": "Too small", "khaos_reason_id": "6", "processing": "restock"}
    assert walt.post("/console/mapping/save",
                     data={**rule, "csrf_token": _csrf(walt)}).status_code == 403
    assert walt.post("/console/mapping/preview",
                     data={**rule, "csrf_token": _csrf(walt)}).status_code == 200
    ada = _login(app, "ada")
    record_job(app.rt, "khaos-confirm", ok=True, summary="2 credit note(s) confirmed")
    health = ada.get("/console/health")
    assert health.status_code == 200 and "2 credit note(s) confirmed" in health.text
    saved = ada.post("/console/mapping/save", data={**rule, "csrf_token": _csrf(ada)})
    assert saved.status_code == 303 and "saved" in saved.headers["location"]
    with app.rt.sessions() as s:
        entry = s.scalars(select(AuditEntry).where(
            AuditEntry.action == "mapping.rule_add")).one()
    assert entry.actor == "user:ada" and entry.details["reason"] == "Too small"


def test_named_tokens_have_scopes_and_the_shared_token_is_admin(app: LiveApp) -> None:
    with app.rt.unit_of_work() as uow:
        _, read = accounts.create_token(uow, "sheet", "read", by="test")
        _, act = accounts.create_token(uow, "bot", "act", by="test")
        _, gone = accounts.create_token(uow, "old", "read", by="test")
        accounts.revoke_token(uow, "old", by="test")
    customer = _exception(app, "unknown_customer")

    def call(token: str, method: str, path: str, **kw: Any) -> int:
        with app.client(headers={"Authorization": f"Bearer {token}"}) as c:
            return c.request(method, path, **kw).status_code

    assert call(read, "GET", "/api/v1/returns") == 200
    assert call(read, "POST", f"/api/v1/exceptions/{customer}/ignore",
                json={"why": "x"}) == 403
    assert call(gone, "GET", "/api/v1/returns") == 401
    assert call(act, "POST", f"/api/v1/exceptions/{customer}/ignore",
                json={"by": "bob", "why": "handled"}) == 200
    assert call(API_TOKEN, "GET", "/api/v1/exceptions?status=all") == 200
    with app.rt.sessions() as s:
        row = s.get(ExceptionRow, customer)
    with app.rt.unit_of_work() as uow:
        stored = [t.token_sha256 for t in accounts.list_tokens(uow)]
    assert row is not None and row.resolved_by == "token:bot (bob)"
    assert read not in str(stored) and accounts.sha256(read) in stored


def test_api_returns_search_filters_and_pages(app: LiveApp) -> None:
    with app.api() as api:
        everything = api.get("/api/v1/returns").json()
        by_sku = api.get("/api/v1/returns", params={"sku": "SCARF-GRY"}).json()
        by_source = api.get("/api/v1/returns", params={"source": "loop", "limit": 1}).json()
        by_email = api.get("/api/v1/returns", params={"email": "lr-9@"}).json()
        by_q = api.get("/api/v1/returns", params={"q": "zz-"}).json()
        by_ref = api.get("/api/v1/returns", params={"ref": "z-1"}).json()
        by_order = api.get("/api/v1/returns", params={"order": "100"}).json()
        by_domain = api.get("/api/v1/returns", params={"email": "EXAMPLE.co"}).json()
        pages = [api.get("/api/v1/returns", params={"q": "example", "limit": 1,
                                                    "offset": n}).json() for n in (0, 1, 2)]
        newest = api.get("/api/v1/returns").json()
        bad = api.get("/api/v1/returns", params={"status": "lost"})
        old = api.get("/api/v1/returns", params={"min_age_days": "3"}).json()
    assert everything["total"] == 2
    assert [r["associated_ref"] for r in by_sku["returns"]] == ["ZZ-1"]
    assert by_source["total"] == 1 and by_source["returns"][0]["open_exceptions"] == 2
    assert [r["associated_ref"] for r in by_email["returns"]] == ["LR-9"]
    # the free-text filters are case-insensitive "contains", whatever part is typed
    assert [r["associated_ref"] for r in by_q["returns"]] == ["ZZ-1"]
    assert [r["associated_ref"] for r in by_ref["returns"]] == ["ZZ-1"] and by_ref["total"] == 1
    assert by_order["total"] == 2 and by_domain["total"] == 2
    # paged one at a time, newest first like the unfiltered list, nothing lost or repeated
    assert [p["total"] for p in pages] == [2, 2, 2]
    assert [r["associated_ref"] for p in pages for r in p["returns"]] == \
        [r["associated_ref"] for r in newest["returns"]]
    assert bad.status_code == 400 and "unknown status" in bad.json()["detail"]
    assert old["total"] == 0


def test_users_and_tokens_cli(db_url: str, tmp_path: Any) -> None:
    config = tmp_path / "rb.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n', encoding="utf-8")
    runner = CliRunner()
    added = runner.invoke(cli_app, ["users", "add", "Mo", "--role", "finance",
                                    "--password-stdin", "-c", str(config)],
                          input=PASSWORD + "\n")
    short = runner.invoke(cli_app, ["users", "add", "nia", "--role", "cx",
                                    "--password-stdin", "-c", str(config)], input="short\n")
    role = runner.invoke(cli_app, ["users", "set-role", "mo", "warehouse", "-c", str(config)])
    off = runner.invoke(cli_app, ["users", "disable", "mo", "-c", str(config)])
    listed = runner.invoke(cli_app, ["users", "list", "--json", "-c", str(config)])
    token = runner.invoke(cli_app, ["tokens", "create", "--name", "sheet", "--scope", "read",
                                    "-c", str(config)])
    bad_scope = runner.invoke(cli_app, ["tokens", "create", "--name", "x", "--scope", "root",
                                        "-c", str(config)])
    assert added.exit_code == 0, added.output
    assert short.exit_code == 1 and "at least 12 characters" in short.output
    assert role.exit_code == 0 and off.exit_code == 0
    assert '"role": "warehouse"' in listed.output and '"disabled": true' in listed.output
    assert token.exit_code == 0 and "rbt_" in token.output
    assert bad_scope.exit_code == 1 and "unknown scope" in bad_scope.output


def test_an_idle_session_ends_and_a_busy_one_has_a_ceiling(runtime: Any) -> None:
    from datetime import timedelta

    from returnbridge.store.models import utcnow

    with runtime.unit_of_work() as uow:
        user = accounts.add_user(uow, "ida", "cx", PASSWORD, by="test")
        idle_cookie = accounts.open_session(uow, user, "test")
        busy_cookie = accounts.open_session(uow, user, "test")
    idle, ceiling = timedelta(minutes=30), timedelta(hours=12)
    now = utcnow()
    with runtime.unit_of_work() as uow:
        assert accounts.resume_session(uow, idle_cookie, idle=idle, max_age=ceiling,
                                       now=now + timedelta(minutes=29)) is not None
    with runtime.unit_of_work() as uow:  # 29 minutes later it was used: idle restarts
        assert accounts.resume_session(uow, idle_cookie, idle=idle, max_age=ceiling,
                                       now=now + timedelta(minutes=58)) is not None
    with runtime.unit_of_work() as uow:
        assert accounts.resume_session(uow, idle_cookie, idle=idle, max_age=ceiling,
                                       now=now + timedelta(minutes=90)) is None
    with runtime.unit_of_work() as uow:  # gone for good, not only refused once
        assert accounts.resume_session(uow, idle_cookie, idle=idle, max_age=ceiling,
                                       now=now + timedelta(minutes=91)) is None
    alive = []
    for i in range(1, 26):  # active every 29 minutes, for more than 12 hours
        with runtime.unit_of_work() as uow:
            alive.append(accounts.resume_session(
                uow, busy_cookie, idle=idle, max_age=ceiling,
                now=now + timedelta(minutes=29 * i)) is not None)
    assert alive == [True] * 24 + [False]  # 24 x 29 = 696 minutes; 725 is past 12 hours
