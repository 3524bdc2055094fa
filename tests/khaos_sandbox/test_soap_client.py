"""The desktop SOAP client against the sandbox's SOAP service, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from returnbridge.erp.khaos.soap import KhaosSoapClient, envelope
from returnbridge.erp.khaos.soap_faults import (
    ReturnAlreadyProcessed,
    ReturnCodeOrAuthMissing,
    ReturnNotFound,
    ReturnPartiallyProcessed,
    SoapFault,
    SoapTransportError,
    fault_from,
)
from returnbridge.sandbox.khaos.emulator import KhaosSandbox
from returnbridge.sandbox.service import free_port
from tests.khaos_sandbox.test_sandbox_import import variant


@pytest.fixture
def khaos() -> Iterator[KhaosSandbox]:
    sandbox = KhaosSandbox("http://127.0.0.1:9/unused", "u", "p",
                           reasons={"6": "restock", "7": "write_off"}, credit_note_at="import")
    sandbox.add_item("B0714PRW7R", other_ref="AMZ-1", barcodes=("5012345678900",),
                     levels={1: 5, 2: 1})
    sandbox.add_item("B0714PRW7R-10", levels={1: 5}, publish_on_web=True)
    sandbox.add_item("OLD-1", discontinued=True, publish_on_web=False)
    sandbox.add_customer("TOMA", "Email@Test.com", "Toma Ltd")
    sandbox.state.import_document({"ApiVersion": 1000, "Returns": [variant("AREF-1"),
                                                                   variant("AREF-2")]})
    sandbox.serve_soap()
    yield sandbox
    sandbox.close()


@pytest.fixture
def soap(khaos: KhaosSandbox) -> Iterator[KhaosSoapClient]:
    with KhaosSoapClient(khaos.soap_url, timeout=5) as client:
        yield client


def test_wsdl_declares_the_calls(soap: KhaosSoapClient) -> None:
    assert {"ExportOrderStatusEx", "ProcessReturn", "ExportCompany", "ExportStockStatus",
            "ExportStock", "GetStockList"} <= set(soap.operations())


def test_envelope_is_rpc_with_typed_parameters() -> None:
    body = envelope("ProcessReturn", [("ReturnCode", "SR1"), ("ManualAuthCode", "A&B")])
    assert b"urn:IKosWebIntf-IKosWeb" in body
    assert b'<ReturnCode xsi:type="xsd:string">SR1</ReturnCode>' in body
    assert b"A&amp;B" in body


def test_order_status_by_associated_ref_finds_the_credit_note(
        khaos: KhaosSandbox, soap: KhaosSoapClient) -> None:
    record = khaos.return_for("AREF-1")
    assert record is not None
    statuses = soap.export_order_status_by_ref(["AREF-1", "NOT-THERE"])
    credit = [s for s in statuses if s.is_credit_note]
    assert [(s.associated_ref, s.order_code, s.credit_note_code) for s in credit] == [
        ("AREF-1", record.return_code, record.credit_note_code)]
    assert credit[0].company_code == "TOMA"
    assert credit[0].invoices[0].stage_id == "20"  # not processed yet
    assert any(s.order_type == 1 for s in statuses)  # its exchange order


def test_credit_note_raised_only_on_processing_has_no_invoice_before(
        khaos: KhaosSandbox, soap: KhaosSoapClient) -> None:
    khaos.set_credit_note_at("process")
    khaos.state.import_document({"ApiVersion": 1000, "Returns": [variant("AREF-3")]})
    record = khaos.return_for("AREF-3")
    assert record is not None and record.credit_note_code == ""
    [before] = [s for s in soap.export_order_status_by_ref("AREF-3") if s.is_credit_note]
    assert (before.order_code, before.credit_note_code, before.invoices) == (
        record.return_code, "", ())
    soap.process_return(record.return_code, "PSP-REF-3")
    [after] = [s for s in soap.export_order_status_by_ref("AREF-3") if s.is_credit_note]
    assert after.credit_note_code == record.credit_note_code != ""
    assert (after.invoices[0].stage_id, after.invoices[0].stage_desc) == ("16", "Issue invoices")


def test_process_return_and_its_documented_faults(
        khaos: KhaosSandbox, soap: KhaosSoapClient) -> None:
    first, second = khaos.return_for("AREF-1"), khaos.return_for("AREF-2")
    assert first is not None and second is not None
    before = khaos.level("B0714PRW7R")
    assert soap.process_return(first.return_code, "PSP-REF-1") == \
        "Return has successfully been processed"
    assert first.manual_auth_code == "PSP-REF-1"
    assert khaos.level("B0714PRW7R") == before + 3  # reason 6 restocks on process
    with pytest.raises(ReturnAlreadyProcessed):
        soap.process_return(first.return_code, "PSP-REF-1")
    with pytest.raises(ReturnNotFound):
        soap.process_return("SR999999", "X")
    with pytest.raises(ReturnCodeOrAuthMissing):
        soap.process_return(second.return_code, "")
    khaos.mark_partially_processed(second.return_code)
    with pytest.raises(ReturnPartiallyProcessed) as info:
        soap.process_return(second.return_code, "X")
    assert info.value.operation == "ProcessReturn"
    assert isinstance(info.value, SoapFault)
    [status] = [s for s in soap.export_order_status_by_ref("AREF-1") if s.is_credit_note]
    assert status.invoices[0].stage_id == "16"


def test_unknown_fault_text_is_a_plain_soap_fault() -> None:
    fault = fault_from("SOAP-ENV:Server", "Access violation at address 0040A1B2")
    assert type(fault) is SoapFault and "Access violation" in str(fault)


def test_transport_failures_are_typed() -> None:
    with KhaosSoapClient(f"http://127.0.0.1:{free_port()}/K.exe/soap/IKosWeb",
                         timeout=2) as client, pytest.raises(SoapTransportError):
        client.process_return("SR1", "A")


def test_company_by_email_gives_the_urn(soap: KhaosSoapClient) -> None:
    [company] = soap.export_company_by_email("email@test.com")
    assert company.urn == "TOMA" and company.name == "Toma Ltd"
    assert soap.export_company_by_email("nobody@example.com") == []


def test_stock_status_and_stock_items(khaos: KhaosSandbox, soap: KhaosSoapClient) -> None:
    levels = {s.stock_code: s.level for s in soap.export_stock_status(site_id=2)}
    assert levels["B0714PRW7R"] == Decimal(1)
    [by_ref] = soap.export_stock_status(["AMZ-1"], mapping_type=2)
    assert by_ref.stock_code == "B0714PRW7R" and by_ref.site == "Main Site"
    items = {i.stock_code: i for i in soap.export_stock()}
    assert items["B0714PRW7R"].barcodes == ("5012345678900",)
    assert items["OLD-1"].discontinued and not items["OLD-1"].publish_on_web
    listed = soap.get_stock_list()
    assert {e.stock_code for e in listed} == {"B0714PRW7R", "B0714PRW7R-10", "OLD-1"}
