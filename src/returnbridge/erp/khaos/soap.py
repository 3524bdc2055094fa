"""A small client for the desktop Khaos Control SOAP service ("KSD web services", reference §2).

The service is Delphi SOAP 1.1 RPC: ``SOAPAction: urn:IKosWebIntf-IKosWeb#<Method>``, typed
positional parameters inside ``<urn:Method>``, and most answers are one XML *document* carried
as a string in ``<return>``. An lxml envelope is simpler and more predictable here than a
generic WSDL client. Every call has an httpx timeout; faults become typed errors
(``soap_faults``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from types import TracebackType

import httpx
from lxml import etree

from returnbridge.adapters.http import http_client
from returnbridge.adapters.ratelimit import CallLimiter
from returnbridge.erp.khaos.soap_faults import SoapFault, SoapTransportError, fault_from

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_ENC = "http://schemas.xmlsoap.org/soap/encoding/"
XSD = "http://www.w3.org/2001/XMLSchema"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
URN = "urn:IKosWebIntf-IKosWeb"

# MappingType integers (reference §2.2). Company mapping by e-mail is not public: the value
# below is what the sandbox implements and must be confirmed per installation [I].
MAP_STOCK_CODE, MAP_OTHER_REF, MAP_DESCRIPTION = 1, 2, 4
MAP_ORDER_CODE, MAP_ASSOCIATED_REF = 3, 4
MAP_COMPANY_CODE, MAP_COMPANY_EMAIL = 1, 3
ORDER_TYPE_SALES_ORDER, ORDER_TYPE_CREDIT_NOTE = 1, 2

Param = tuple[str, str | int | bool]


@dataclass(frozen=True)
class InvoiceRecord:
    code: str
    stage_id: str
    stage_desc: str
    issue_date: str


@dataclass(frozen=True)
class OrderStatusRecord:
    """One ``STATUS_LIST/ORDER_STATUS`` entry of ExportOrderStatusEx."""

    order_code: str  # SORDER_CODE: for a credit note, the Khaos return code
    associated_ref: str
    order_type: int  # 1 sales order, 2 credit note
    company_code: str
    currency: str
    items_total: Decimal | None  # gross (element text)
    items_total_net: Decimal | None  # NET_VALUE attribute
    complete: bool
    cancelled: bool
    invoices: tuple[InvoiceRecord, ...]

    @property
    def is_credit_note(self) -> bool:
        return self.order_type == ORDER_TYPE_CREDIT_NOTE

    @property
    def credit_note_code(self) -> str:
        """The invoice code of a credit note ("" while Khaos has raised none)."""
        if not self.is_credit_note:
            return ""
        return next((i.code for i in self.invoices if i.code), "")


@dataclass(frozen=True)
class CompanyRecord:
    company_id: str
    urn: str  # COMPANY_CODE
    name: str
    emails: tuple[str, ...]


@dataclass(frozen=True)
class StockStatusRecord:
    stock_id: str
    stock_code: str
    other_ref: str
    site: str
    level: Decimal
    status: int


@dataclass(frozen=True)
class StockItemRecord:
    stock_id: str
    stock_code: str
    other_ref: str
    description: str
    publish_on_web: bool
    discontinued: bool
    stock_controlled: bool
    barcodes: tuple[str, ...]


@dataclass(frozen=True)
class StockListEntry:
    stock_id: str
    stock_code: str


def _bool(text: str | None) -> bool:
    return (text or "").strip().lower() in {"-1", "1", "true", "yes"}


def _decimal(text: str | None) -> Decimal | None:
    if text is None or not text.strip():
        return None
    try:
        return Decimal(text.strip().replace(",", ""))
    except InvalidOperation:
        return None


def _xml(document: str, operation: str) -> etree._Element:
    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True)
        return etree.fromstring(document.encode(), parser)
    except etree.XMLSyntaxError as exc:
        raise SoapTransportError(f"{operation}: the answer is not XML: {exc}") from exc


def _text(el: etree._Element | None) -> str:
    return (el.text or "").strip() if el is not None else ""


def parse_status_list(document: str) -> list[OrderStatusRecord]:
    """``STATUS_LIST/ORDER_STATUS`` (reference §2.3) into records."""
    if not document.strip():
        return []
    root = _xml(document, "ExportOrderStatusEx")
    out: list[OrderStatusRecord] = []
    for st in root.iter("ORDER_STATUS"):
        type_el = st.find("ORDER_TYPE")
        type_id = (type_el.get("TYPE_ID") if type_el is not None else None) or _text(type_el)
        company = st.find("COMPANY_NAME")
        items = st.find("ITEMS_TOTAL")
        invoices = tuple(
            InvoiceRecord(code=inv.get("INVOICE_CODE", ""),
                          stage_id=inv.get("INVOICE_STAGE_ID", ""),
                          stage_desc=inv.get("INVOICE_STAGE_DESC", ""),
                          issue_date=inv.get("ISSUE_DATE", ""))
            for inv in st.iterfind("INVOICES/INVOICE")
        )
        out.append(OrderStatusRecord(
            order_code=st.get("SORDER_CODE", ""), associated_ref=st.get("ASSOCIATED_REF", ""),
            order_type=int(type_id) if type_id and type_id.strip().isdigit() else 0,
            company_code=company.get("COMPANY_CODE", "") if company is not None else "",
            currency=_text(st.find("CURRENCY_CODE")),
            items_total=_decimal(items.text if items is not None else None),
            items_total_net=_decimal(items.get("NET_VALUE") if items is not None else None),
            complete=_bool(_text(st.find("COMPLETE"))),
            cancelled=st.find("CANCELLED") is not None,
            invoices=invoices,
        ))
    return out


def parse_companies(document: str) -> list[CompanyRecord]:
    if not document.strip():
        return []
    root = _xml(document, "ExportCompany")
    out = []
    for co in root.iter("COMPANY"):
        emails = {(_text(e)).lower() for e in co.iter("EMAIL", "IEMAIL") if _text(e)}
        out.append(CompanyRecord(company_id=_text(co.find("COMPANY_ID")),
                                 urn=_text(co.find("COMPANY_CODE")),
                                 name=_text(co.find("COMPANY_NAME")),
                                 emails=tuple(sorted(emails))))
    return out


def parse_stock_status(document: str) -> list[StockStatusRecord]:
    if not document.strip():
        return []
    root = _xml(document, "ExportStockStatus")
    out = []
    sites = list(root.iter("STOCK_STATUS"))  # the root itself, or several sites inside one
    for site_el in sites:
        site = site_el.get("SITE", "")
        for item in site_el.findall("STOCK_ITEM"):
            status = _text(item.find("STATUS"))
            out.append(StockStatusRecord(
                stock_id=item.get("ID", ""), stock_code=item.get("CODE", ""),
                other_ref=item.get("OTHER_REF", ""), site=site,
                level=_decimal(_text(item.find("LEVEL"))) or Decimal(0),
                status=int(status) if status.isdigit() else 0,
            ))
    return out


def parse_stock_items(document: str) -> list[StockItemRecord]:
    if not document.strip():
        return []
    root = _xml(document, "ExportStock")
    return [
        StockItemRecord(
            stock_id=_text(it.find("STOCK_ID")), stock_code=_text(it.find("STOCK_CODE")),
            other_ref=_text(it.find("ASSOCIATED_REF")), description=_text(it.find("STOCK_DESC")),
            publish_on_web=_bool(_text(it.find("WEB"))),
            discontinued=_bool(_text(it.find("DISCONTINUED"))),
            stock_controlled=_bool(_text(it.find("STOCK_CONTROLLED")) or "-1"),
            barcodes=tuple(_text(b) for b in it.iterfind("BARCODES/BARCODE") if _text(b)),
        )
        for it in root.iter("STOCK_ITEM")
    ]


def _xsd_type(value: str | int | bool) -> tuple[str, str]:
    if isinstance(value, bool):
        return "xsd:boolean", "true" if value else "false"
    if isinstance(value, int):
        return "xsd:int", str(value)
    return "xsd:string", value


def envelope(operation: str, params: Sequence[Param]) -> bytes:
    """A SOAP 1.1 RPC/encoded request for ``operation`` with positional, typed parameters."""
    nsmap = {"soapenv": SOAP_ENV, "xsd": XSD, "xsi": XSI, "urn": URN}
    env = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap=nsmap)
    body = etree.SubElement(env, f"{{{SOAP_ENV}}}Body")
    call = etree.SubElement(body, f"{{{URN}}}{operation}")
    call.set(f"{{{SOAP_ENV}}}encodingStyle", SOAP_ENC)
    for name, value in params:
        xsd_type, text = _xsd_type(value)
        el = etree.SubElement(call, name)
        el.set(f"{{{XSI}}}type", xsd_type)
        el.text = text
    return bytes(etree.tostring(env, xml_declaration=True, encoding="utf-8"))


class KhaosSoapClient:
    """Calls one desktop Khaos web-service executable (``…/Khaos<Name>.exe/soap/IKosWeb``)."""

    def __init__(self, url: str, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None,
                 limiter: CallLimiter | None = None) -> None:
        """``limiter`` is asked before every request; the service passes the call rate
        shared by all its processes (``[khaos] soap_calls_per_minute``, retries included:
        ``Runtime.khaos_soap_client``)."""
        if not url:
            raise ValueError("the SOAP URL is empty ([khaos].soap_url)")
        self.url = url
        self._http = http_client(timeout=timeout, transport=transport)
        self._limiter = limiter

    def __enter__(self) -> KhaosSoapClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- transport -------------------------------------------------------------------------

    def call(self, operation: str, params: Sequence[Param]) -> etree._Element:
        """POST one RPC call; the ``<…Response>`` element, or a typed error."""
        headers = {"Content-Type": "text/xml; charset=utf-8",
                   "SOAPAction": f'"{URN}#{operation}"'}
        if self._limiter is not None:
            self._limiter.acquire()
        try:
            response = self._http.post(self.url, content=envelope(operation, params),
                                       headers=headers)
        except httpx.HTTPError as exc:
            raise SoapTransportError(f"{operation}: {type(exc).__name__}: {exc}") from exc
        try:
            root = etree.fromstring(response.content,
                                    etree.XMLParser(resolve_entities=False, no_network=True))
        except etree.XMLSyntaxError:
            raise SoapTransportError(
                f"{operation}: HTTP {response.status_code} without a SOAP envelope"
            ) from None
        body = root.find(f"{{{SOAP_ENV}}}Body")
        if body is None:
            raise SoapTransportError(f"{operation}: SOAP answer without a Body")
        fault = body.find(f"{{{SOAP_ENV}}}Fault")
        if fault is not None:
            raise fault_from(_text(fault.find("faultcode")), _text(fault.find("faultstring")),
                             operation)
        if response.status_code != 200:
            raise SoapTransportError(f"{operation}: HTTP {response.status_code}")
        result: etree._Element | None = next(iter(body), None)
        if result is None:
            raise SoapTransportError(f"{operation}: empty SOAP Body")
        return result

    def call_text(self, operation: str, params: Sequence[Param]) -> str:
        result = self.call(operation, params)
        ret = next(iter(result), None)
        return (ret.text or "") if ret is not None else ""

    # -- calls -----------------------------------------------------------------------------

    def operations(self) -> list[str]:
        """Operation names the service's WSDL (``…/wsdl/IKosWeb``) declares."""
        wsdl_url = self.url.replace("/soap/", "/wsdl/")
        if self._limiter is not None:
            self._limiter.acquire()
        try:
            response = self._http.get(wsdl_url)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise SoapTransportError(f"WSDL: {exc}") from exc
        root = _xml(response.text, "WSDL")
        ns = "http://schemas.xmlsoap.org/wsdl/"
        return sorted({op.get("name", "") for op in root.iter(f"{{{ns}}}operation")} - {""})

    def export_order_status_by_ref(self, associated_refs: str | Iterable[str],
                                   *, include_cancelled: bool = True) -> list[OrderStatusRecord]:
        """ExportOrderStatusEx by AssociatedRef (MappingType 4): orders and credit notes."""
        refs = [associated_refs] if isinstance(associated_refs, str) else list(associated_refs)
        if not refs:
            return []
        document = self.call_text("ExportOrderStatusEx", [
            ("IDs", ",".join(refs)), ("MappingType", MAP_ASSOCIATED_REF), ("WebOnly", False),
            ("ConfirmedOnly", False), ("IncludeTracking", False),
            ("IncludeCancelled", include_cancelled), ("DateFrom", ""), ("DateTo", ""),
            ("InvoiceStageIDs", ""),
        ])
        return parse_status_list(document)

    def process_return(self, return_code: str, manual_auth_code: str) -> str:
        """ProcessReturn: process an unprocessed return and its credit note, recording the
        refund as manual with ``manual_auth_code`` (no PSP call). Raises the typed faults."""
        result = self.call_text("ProcessReturn", [("ReturnCode", return_code),
                                                  ("ManualAuthCode", manual_auth_code)])
        return result.strip()

    def export_company_by_email(self, email: str) -> list[CompanyRecord]:
        document = self.call_text("ExportCompany", [("CompanyCode", email.strip()),
                                                    ("MappingType", MAP_COMPANY_EMAIL)])
        wanted = email.strip().lower()
        return [c for c in parse_companies(document) if not c.emails or wanted in c.emails]

    def export_company(self, urns: Iterable[str]) -> list[CompanyRecord]:
        document = self.call_text("ExportCompany", [("CompanyCode", ",".join(urns)),
                                                    ("MappingType", MAP_COMPANY_CODE)])
        return parse_companies(document)

    def export_stock_status(self, stock_codes: Iterable[str] = (), *,
                            mapping_type: int = MAP_STOCK_CODE, last_updated: str = "",
                            site_id: int = 0) -> list[StockStatusRecord]:
        document = self.call_text("ExportStockStatus", [
            ("StockCodes", ",".join(stock_codes)), ("MappingType", mapping_type),
            ("LastUpdated", last_updated), ("SiteID", site_id), ("PotentialLeadTime", 0),
        ])
        return parse_stock_status(document)

    def export_stock(self, stock_codes: Iterable[str] = (), *,
                     mapping_type: int = MAP_STOCK_CODE,
                     last_updated: str = "") -> list[StockItemRecord]:
        document = self.call_text("ExportStock", [
            ("StockCode", ",".join(stock_codes)), ("MappingType", mapping_type),
            ("LastUpdated", last_updated),
        ])
        return parse_stock_items(document)

    def get_stock_list(self, *, date_type: int = -1, date_value: str = "",
                       stock_item_type: int = 0) -> list[StockListEntry]:
        result = self.call("GetStockList", [("DateType", date_type), ("DateValue", date_value),
                                            ("StockItemType", stock_item_type)])
        return [StockListEntry(stock_id=_text(it.find("StockID")),
                               stock_code=_text(it.find("StockCode")))
                for it in result.iter("item")]


__all__ = [
    "CompanyRecord", "InvoiceRecord", "KhaosSoapClient", "OrderStatusRecord", "SoapFault",
    "StockItemRecord", "StockListEntry", "StockStatusRecord", "envelope", "parse_status_list",
]
