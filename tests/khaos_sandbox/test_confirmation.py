"""Credit-note confirmation from every source: SOAP sweep, pushed order statuses, finance's
export file, an operator; the SLA exception and its auto-resolution; amount mismatches."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from returnbridge.cli import app as cli_app
from returnbridge.domain.exceptions import CATALOGUE
from returnbridge.erp.khaos.soap import KhaosSoapClient
from returnbridge.flows.confirm.credit_file import import_credit_notes_csv
from returnbridge.flows.confirm.order_statuses import confirm_from_order_statuses
from returnbridge.flows.confirm.sla import check_sla
from returnbridge.flows.confirm.soap_sweep import sweep_unconfirmed
from returnbridge.flows.console.queries import exception_list, return_view
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.khaos.serve import serve_page
from returnbridge.store.audit import verify_chain
from returnbridge.store.models import AuditEntry, KhaosOrderStatus, utcnow
from tests.conftest import API_TOKEN, LiveApp
from tests.khaos_sandbox._support import (
    live,
    make_sandbox,
    refund,
    return_id_with_reason,
    send_returns,
    warehouse_process,
)


def served(app: LiveApp, *ids: int) -> list[str]:
    refs = send_returns(app, [refund(return_id_with_reason(i, damaged=False), "SCARF-GRY")
                              for i in ids])
    assert set(serve_page(app.rt).refs) == set(refs)
    return refs


def view(rt: Runtime, ref: str) -> dict[str, object]:
    v = return_view(rt, ref)
    assert v is not None
    return v


def test_operator_confirmation_over_http_and_a_second_confirm_is_a_no_op(
        runtime_factory: Callable[..., Runtime]) -> None:
    with live(runtime_factory) as app:
        [ref] = served(app, 1000)
        body = {"credit_note_code": "CN000777", "value": "39.50", "actor": "jo@finance",
                "reason": "checked the credit note in Khaos"}
        with app.client() as anon:
            assert anon.post(f"/api/v1/returns/{ref}/confirm-credit",
                             json=body).status_code == 401
        with app.api() as api:
            first = api.post(f"/api/v1/returns/{ref}/confirm-credit", json=body)
            again = api.post(f"/api/v1/returns/{ref}/confirm-credit", json=body)
            other = api.post(f"/api/v1/returns/{ref}/confirm-credit",
                             json={**body, "credit_note_code": "CN000778"})
            missing = api.post("/api/v1/returns/LR-NOPE/confirm-credit", json=body)
            invalid = api.post(f"/api/v1/returns/{ref}/confirm-credit",
                               json={**body, "reason": ""})
            shown = api.get(f"/api/v1/returns/{ref}").json()
    assert first.status_code == 200 and first.json()["outcome"] == "confirmed"
    assert first.json()["khaos_status"] == "credit_confirmed"
    assert again.status_code == 200 and again.json()["outcome"] == "already"
    assert other.status_code == 409 and "CN000777" in other.json()["detail"]
    assert missing.status_code == 404 and invalid.status_code == 422
    assert shown["credit_note"]["code"] == "CN000777"
    statuses = [t["message"] for t in shown["timeline"] if t["kind"] == "khaos_status"]
    assert sum("credit_confirmed" in m for m in statuses) == 1  # the repeat changed nothing
    with app.rt.sessions() as s:
        entries = s.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        # The authenticated identity acts; the name the caller gave is kept beside it.
        who = "api-token:" + hashlib.sha256(API_TOKEN.encode()).hexdigest()[:8] + " (jo@finance)"
        assert [(e.actor, e.action) for e in entries][-2:] == [
            (who, "khaos.return_imported"), (who, "khaos.credit_confirmed")]
        assert entries[-1].details["reason"] == "checked the credit note in Khaos"
        assert verify_chain(s) == []


def test_operator_cannot_confirm_a_return_khaos_never_had(
        runtime_factory: Callable[..., Runtime]) -> None:
    with live(runtime_factory) as app:
        [ref] = send_returns(app, [refund(return_id_with_reason(1100, damaged=False))])
        with app.api() as api:
            answer = api.post(f"/api/v1/returns/{ref}/confirm-credit", json={
                "credit_note_code": "CN1", "actor": "jo", "reason": "guess"})
    assert answer.status_code == 409 and "not been handed to Khaos" in answer.json()["detail"]


def test_credit_note_file_import_with_mismatch_unknown_and_bad_rows(
        runtime_factory: Callable[..., Runtime], tmp_path: Path) -> None:
    with live(runtime_factory) as app:
        a, b, c = served(app, 1200, 1204, 1208)
    rt = app.rt
    path = tmp_path / "credit-notes.csv"
    path.write_text(
        "AssociatedRef,CreditNoteCode,Value,Date\n"
        f"{a},CN000101,39.50,2026-11-21\n"
        f"{b},CN000102,35.00,2026-11-21\n"
        "LR-UNKNOWN,CN000103,10.00,2026-11-21\n"
        f"{c},CN000104,ten pounds,2026-11-21\n"
        "\n", encoding="utf-8")
    result = import_credit_notes_csv(rt, path, "jo@finance")
    assert (result.rows, result.confirmed, result.mismatches) == (4, 2, 1)
    assert result.unknown_refs == ["LR-UNKNOWN"]
    assert [line for line, _ in result.errors] == [5]
    assert view(rt, a)["khaos_status"] == "credit_confirmed"
    assert view(rt, c)["khaos_status"] == "served"
    [mismatch] = [e for e in exception_list(rt) if e["type"] == "amount_mismatch"]
    assert mismatch["associated_ref"] == b and mismatch["owner"] == "finance"
    assert "35.00" in mismatch["message"] and "39.50" in mismatch["message"]
    again = import_credit_notes_csv(rt, path, "jo@finance")
    assert (again.confirmed, again.already) == (0, 2)


def test_cli_imports_a_credit_note_file(runtime_factory: Callable[..., Runtime],
                                        tmp_path: Path, db_url: str) -> None:
    with live(runtime_factory) as app:
        [ref] = served(app, 1300)
    path = tmp_path / "export.csv"
    path.write_text(f"Associated Ref,Credit Note Code,Value\n{ref},CN000555,39.50\n",
                    encoding="utf-8")
    config = tmp_path / "returnbridge.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n', encoding="utf-8")
    result = CliRunner().invoke(cli_app, ["khaos", "import-credit-notes", str(path),
                                          "--config", str(config), "--actor", "jo"])
    assert result.exit_code == 0, result.output
    assert "1 confirmed" in result.output
    credit = view(app.rt, ref)["credit_note"]
    assert isinstance(credit, dict) and credit["code"] == "CN000555"
    assert Decimal(credit["value"]) == Decimal("39.50")


def test_sla_exception_opens_once_and_confirmation_resolves_it(
        runtime_factory: Callable[..., Runtime], credit_note_at: str) -> None:
    with live(runtime_factory, khaos={"credit_confirm_sla_hours": 24}) as app:
        [ref] = served(app, 1400)
        rt = app.rt
        assert check_sla(rt) == 0
        later = utcnow() + timedelta(hours=25)
        assert check_sla(rt, now=later) == 1
        assert check_sla(rt, now=later + timedelta(hours=1)) == 1
        [exc] = [e for e in exception_list(rt) if e["type"] == "khaos_import_unconfirmed"]
        assert exc["count"] == 1 and exc["associated_ref"] == ref
        assert exc["owner"] == "ops"
        assert exc["next_action"] == CATALOGUE["khaos_import_unconfirmed"].next_action
        # Khaos finally imports it: a user retries the import, Khaos asks for it by name.
        khaos = make_sandbox(app, credit_note_at=credit_note_at)
        try:
            assert khaos.retry_specific([ref]) == 1
            with KhaosSoapClient(khaos.serve_soap(), timeout=5) as soap:
                seen = sweep_unconfirmed(rt, soap)
                warehouse_process(khaos, ref)  # the goods are booked in: credit note cleared
                result = sweep_unconfirmed(rt, soap)
        finally:
            khaos.close()
    assert (seen.imported, seen.confirmed, result.confirmed) == (1, 0, 1)
    assert not [e for e in exception_list(rt) if e["type"] == "khaos_import_unconfirmed"]
    [resolved] = exception_list(rt, "resolved")
    assert resolved["type"] == "khaos_import_unconfirmed"
    assert "Khaos import confirmed (soap" in resolved["resolution"]
    assert check_sla(rt, now=later) == 0


def test_sweep_marks_imported_then_confirms_and_flags_a_changed_value(
        runtime_factory: Callable[..., Runtime], credit_note_at: str) -> None:
    with live(runtime_factory) as app:
        [ref, missing] = send_returns(app, [
            refund(return_id_with_reason(1500, damaged=False), "SCARF-GRY"),
            refund(return_id_with_reason(1504, damaged=False), "SCARF-GRY")])
        khaos = make_sandbox(app, credit_note_at=credit_note_at)
        try:
            khaos.poll_once()
            khaos.state.returns.pop(missing)  # deleted in Khaos before anyone looked
            khaos.set_credit_value(ref, "30.00")
            with KhaosSoapClient(khaos.serve_soap(), timeout=5) as soap:
                imported = sweep_unconfirmed(app.rt, soap)
                warehouse_process(khaos, ref)
                result = sweep_unconfirmed(app.rt, soap)
                again = sweep_unconfirmed(app.rt, soap)
        finally:
            khaos.close()
    assert (imported.imported, imported.confirmed) == (1, 0)  # no cleared credit note yet
    assert (result.confirmed, result.not_found) == (1, [missing])
    assert (again.checked, again.confirmed) == (1, 0)
    shown = view(app.rt, ref)
    assert shown["khaos_status"] == "credit_confirmed"
    [mismatch] = [e for e in exception_list(app.rt) if e["type"] == "amount_mismatch"]
    assert mismatch["details"]["served_value"] == "39.50"
    assert Decimal(mismatch["details"]["credit_note_value"]) == Decimal("30.00")


def test_sweep_reports_soap_failures_without_raising(
        runtime_factory: Callable[..., Runtime]) -> None:
    from returnbridge.sandbox.service import free_port

    with live(runtime_factory) as app:
        [ref] = served(app, 1600)
        with KhaosSoapClient(f"http://127.0.0.1:{free_port()}/K.exe/soap/IKosWeb",
                             timeout=2) as soap:
            result = sweep_unconfirmed(app.rt, soap)
    assert result.checked == 1 and len(result.errors) == 1
    assert view(app.rt, ref)["khaos_status"] == "served"


def test_pushed_credit_note_statuses_confirm(runtime_factory: Callable[..., Runtime]) -> None:
    with live(runtime_factory) as app:
        [ref, other] = served(app, 1700, 1704)
    rt = app.rt
    with rt.sessions() as s, s.begin():
        s.add(KhaosOrderStatus(order_id="9001", order_code="SR000900", associated_ref=ref,
                               order_type="2", invoice_code="CN000900", stage="Issued",
                               total=Decimal("39.50"), updated_at=utcnow(), raw={}))
        s.add(KhaosOrderStatus(order_id="9002", order_code="SO000901", associated_ref=other,
                               order_type="1", invoice_code="INV1", stage="Staging",
                               total=Decimal("10"), updated_at=utcnow(), raw={}))
    assert confirm_from_order_statuses(rt) == 1
    assert confirm_from_order_statuses(rt) == 0
    shown = view(rt, ref)
    assert shown["khaos_status"] == "credit_confirmed"
    assert shown["credit_note"]["code"] == "CN000900"  # type: ignore[index]
    assert view(rt, other)["khaos_status"] == "served"


def test_a_credit_note_is_confirmed_only_once_its_stage_counts_as_cleared(
        runtime_factory: Callable[..., Runtime], credit_note_at: str) -> None:
    """Raised at import (stage Processing) or only on processing: either way a Loop return
    is credit-confirmed when its credit note clears, never while it is still Processing."""
    with live(runtime_factory) as app:
        [ref] = send_returns(app, [refund(return_id_with_reason(1800, damaged=False))])
        khaos = make_sandbox(app, credit_note_at=credit_note_at)
        try:
            khaos.poll_once()
            record = khaos.return_for(ref)
            assert record is not None
            assert bool(record.credit_note_code) is (credit_note_at == "import")
            with KhaosSoapClient(khaos.serve_soap(), timeout=5) as soap:
                sweep_unconfirmed(app.rt, soap)
                sweep_unconfirmed(app.rt, soap)
                before = view(app.rt, ref)
                warehouse_process(khaos, ref)
                sweep_unconfirmed(app.rt, soap)
        finally:
            khaos.close()
    assert before["khaos_status"] == "imported"
    seen = [t["message"] for t in before["timeline"]  # type: ignore[attr-defined]
            if t["kind"] == "credit_note"]
    if credit_note_at == "import":  # recorded once, with its code and stage
        assert seen == [f"credit note {record.credit_note_code} seen at stage 20 Processing, "
                        "which does not count as cleared ([khaos].cleared_credit_note_stages); "
                        "waiting for it to clear (soap: ExportOrderStatusEx)"]
    else:
        assert seen == []
    after = view(app.rt, ref)
    assert after["khaos_status"] == "credit_confirmed"
    assert after["credit_note"] == {"code": record.credit_note_code, "value": "39.50",
                                    "stage": "16 Issue invoices"}


def test_a_configured_stage_rule_decides_what_counts_as_cleared(
        runtime_factory: Callable[..., Runtime]) -> None:
    with live(runtime_factory, khaos={"cleared_credit_note_stages": ["20", "16"]}) as app:
        [ref] = send_returns(app, [refund(return_id_with_reason(1900, damaged=False))])
        khaos = make_sandbox(app, credit_note_at="import")
        try:
            khaos.poll_once()
            with KhaosSoapClient(khaos.serve_soap(), timeout=5) as soap:
                result = sweep_unconfirmed(app.rt, soap)
        finally:
            khaos.close()
    assert result.confirmed == 1
    assert view(app.rt, ref)["credit_note"]["stage"] == "20 Processing"  # type: ignore[index]


def test_imported_without_a_cleared_credit_note_past_its_sla_is_an_exception(
        runtime_factory: Callable[..., Runtime], credit_note_at: str) -> None:
    with live(runtime_factory, khaos={"credit_note_sla_hours": 24}) as app:
        [ref] = send_returns(app, [refund(return_id_with_reason(2000, damaged=False))])
        khaos = make_sandbox(app, credit_note_at=credit_note_at)
        try:
            khaos.poll_once()
            record = khaos.return_for(ref)
            assert record is not None
            with KhaosSoapClient(khaos.serve_soap(), timeout=5) as soap:
                sweep_unconfirmed(app.rt, soap)
                assert check_sla(app.rt) == 0
                later = utcnow() + timedelta(hours=25)
                assert check_sla(app.rt, now=later) == 1
                check_sla(app.rt, now=later + timedelta(hours=1))
                [missing] = [e for e in exception_list(app.rt)
                             if e["type"] == "credit_note_missing"]
                warehouse_process(khaos, ref)
                sweep_unconfirmed(app.rt, soap)
        finally:
            khaos.close()
    assert missing["owner"] == "finance" and missing["count"] == 1
    assert missing["associated_ref"] == ref
    assert f"Khaos return {record.return_code}" in missing["message"]
    assert "Process return" in missing["message"] or "Move credit note" in missing["message"]
    assert not [e for e in exception_list(app.rt) if e["type"] == "credit_note_missing"]
    assert view(app.rt, ref)["khaos_status"] == "credit_confirmed"


def test_sandbox_order_status_pushes_carry_the_credit_note_and_its_stage(
        runtime_factory: Callable[..., Runtime], credit_note_at: str) -> None:
    with live(runtime_factory) as app:
        [ref] = send_returns(app, [refund(return_id_with_reason(2100, damaged=False))])
        khaos = make_sandbox(app, credit_note_at=credit_note_at, push_order_statuses=True)
        try:
            khaos.poll_once()  # imported: pushed
            confirm_from_order_statuses(app.rt)
            before = view(app.rt, ref)
            khaos.serve_soap()
            warehouse_process(khaos, ref)  # processed: pushed again, now with a cleared note
            record = khaos.return_for(ref)
        finally:
            khaos.close()
        with app.rt.sessions() as s:
            pushed = s.scalars(select(KhaosOrderStatus).where(
                KhaosOrderStatus.associated_ref == ref)).all()
            assert [(p.order_type, p.invoice_code, p.stage) for p in pushed] == [
                ("2", record.credit_note_code, "Issue")]
        confirm_from_order_statuses(app.rt)
    assert before["khaos_status"] == "imported"
    after = view(app.rt, ref)
    assert after["khaos_status"] == "credit_confirmed"
    assert after["credit_note"]["code"] == record.credit_note_code  # type: ignore[index]
