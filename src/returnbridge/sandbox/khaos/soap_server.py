"""The desktop Khaos SOAP service of the sandbox: a Delphi-style RPC endpoint with a WSDL
(``/<Exe>/wsdl/IKosWeb``), answering from the sandbox state, plus ``GET /state``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from xml.sax.saxutils import escape

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from lxml import etree

from returnbridge.sandbox.khaos.state import KhaosState, SandboxFault

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
URN = "urn:IKosWebIntf-IKosWeb"
EXE = "KhaosSandbox.exe"

# Operation -> its parameters (name, xsd type), as the call catalogue (reference §2.2) uses them.
OPERATIONS: dict[str, list[tuple[str, str]]] = {
    "ExportOrderStatusEx": [("IDs", "string"), ("MappingType", "int"), ("WebOnly", "boolean"),
                            ("ConfirmedOnly", "boolean"), ("IncludeTracking", "boolean"),
                            ("IncludeCancelled", "boolean"), ("DateFrom", "string"),
                            ("DateTo", "string"), ("InvoiceStageIDs", "string")],
    "ProcessReturn": [("ReturnCode", "string"), ("ManualAuthCode", "string")],
    "ExportCompany": [("CompanyCode", "string"), ("MappingType", "int")],
    "ExportStockStatus": [("StockCodes", "string"), ("MappingType", "int"),
                          ("LastUpdated", "string"), ("SiteID", "int"),
                          ("PotentialLeadTime", "int")],
    "ExportStock": [("StockCode", "string"), ("MappingType", "int"), ("LastUpdated", "string")],
    "GetStockList": [("DateType", "int"), ("DateValue", "string"), ("StockItemType", "int")],
}


def wsdl(endpoint: str) -> str:
    messages, port_ops, binding_ops = [], [], []
    for op, params in OPERATIONS.items():
        parts = "".join(f'<part name="{p}" type="xs:{t}"/>' for p, t in params)
        result = "ns1:TStockList" if op == "GetStockList" else "xs:string"
        messages.append(f'<message name="{op}Request">{parts}</message>'
                        f'<message name="{op}Response"><part name="return" type="{result}"/>'
                        f"</message>")
        port_ops.append(f'<operation name="{op}"><input message="tns:{op}Request"/>'
                        f'<output message="tns:{op}Response"/></operation>')
        body = (f'<soap:body use="encoded" encodingStyle="http://schemas.xmlsoap.org/soap/'
                f'encoding/" namespace="{URN}"/>')
        binding_ops.append(f'<operation name="{op}"><soap:operation soapAction="{URN}#{op}" '
                           f'style="rpc"/><input>{body}</input><output>{body}</output>'
                           f"</operation>")
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" '
        'xmlns:xs="http://www.w3.org/2001/XMLSchema" name="IKosWebservice" '
        'targetNamespace="http://tempuri.org/" xmlns:tns="http://tempuri.org/" '
        'xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" '
        'xmlns:ns1="urn:KosWebIntf">'
        + "".join(messages)
        + '<portType name="IKosWeb">' + "".join(port_ops) + "</portType>"
        '<binding name="IKosWebbinding" type="tns:IKosWeb">'
        '<soap:binding style="rpc" transport="http://schemas.xmlsoap.org/soap/http"/>'
        + "".join(binding_ops) + "</binding>"
        '<service name="IKosWebservice"><port name="IKosWebPort" binding="tns:IKosWebbinding">'
        f'<soap:address location="{escape(endpoint)}"/></port></service></definitions>'
    )


def _envelope(inner: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<SOAP-ENV:Envelope xmlns:SOAP-ENV="{SOAP_ENV}" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:SOAP-ENC="http://schemas.xmlsoap.org/soap/encoding/">'
        f"<SOAP-ENV:Body>{inner}</SOAP-ENV:Body></SOAP-ENV:Envelope>"
    ).encode()


def _result(op: str, value: str) -> bytes:
    return _envelope(f'<NS1:{op}Response xmlns:NS1="{URN}">'
                     f'<return xsi:type="xsd:string">{escape(value)}</return>'
                     f"</NS1:{op}Response>")


def _fault(text: str, code: str = "SOAP-ENV:Server") -> Response:
    body = _envelope(f"<SOAP-ENV:Fault><faultcode>{code}</faultcode>"
                     f"<faultstring>{escape(text)}</faultstring></SOAP-ENV:Fault>")
    return Response(body, status_code=500, media_type="text/xml; charset=utf-8")


def _csv(value: str) -> list[str]:
    return [p.strip() for p in value.split(",") if p.strip()]


def _money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))


def _ddmmyyyy(at: datetime) -> str:
    return at.strftime("%d/%m/%Y")


class SoapHandlers:
    def __init__(self, state: KhaosState, calls: list[str]) -> None:
        self.state = state
        self.calls = calls

    def export_order_status_ex(self, p: dict[str, str]) -> str:
        ids = set(_csv(p.get("IDs", "")))
        mapping = p.get("MappingType", "4")
        out = ["<STATUS_LIST>"]
        with self.state.lock:
            for ref, (code, urn) in self.state.sales_orders.items():
                if (ref in ids) if mapping == "4" else (code in ids):
                    out.append(
                        f'<ORDER_STATUS SORDER_CODE="{escape(code)}" '
                        f'ASSOCIATED_REF="{escape(ref)}">'
                        f'<COMPANY_NAME COMPANY_CODE="{escape(urn)}"/>'
                        '<ORDER_TYPE TYPE_ID="1">Sales Order</ORDER_TYPE>'
                        "<CURRENCY_CODE>GBP</CURRENCY_CODE><COMPLETE>-1</COMPLETE>"
                        "<INVOICES/></ORDER_STATUS>")
            for r in self.state.returns.values():
                if r.deleted:
                    continue
                codes = {r.return_code, r.exchange.order_code if r.exchange else ""}
                hit = r.associated_ref in ids if mapping == "4" else bool(ids & codes)
                if not hit:
                    continue
                stage_id, stage_desc = r.stage
                issue = _ddmmyyyy(r.imported_at) if r.issued else ""
                out.append(
                    f'<ORDER_STATUS SORDER_CODE="{r.return_code}" '
                    f'ASSOCIATED_REF="{escape(r.associated_ref)}">'
                    f'<COMPANY_NAME COMPANY_CODE="{escape(r.urn)}" OTHER_REF="">'
                    f"{escape(r.urn)}</COMPANY_NAME>"
                    '<ORDER_TYPE TYPE_ID="2">Credit Note</ORDER_TYPE>'
                    "<CURRENCY_CODE>GBP</CURRENCY_CODE>"
                    f"<DATE_CREATED>{_ddmmyyyy(r.imported_at)}</DATE_CREATED>"
                    f'<ITEMS_TOTAL NET_VALUE="{_money(r.credit_value_net)}">'
                    f"{_money(r.credit_value)}</ITEMS_TOTAL>"
                    '<DELIVERY_TOTAL NET_VALUE="0.00">0.00</DELIVERY_TOTAL>'
                    f"<COMPLETE>{'-1' if r.issued else '0'}</COMPLETE>"
                    + (f'<INVOICES><INVOICE INVOICE_CODE="{r.credit_note_code}" '
                       f'INVOICE_DATE="{_ddmmyyyy(r.imported_at)}" ISSUE_DATE="{issue}" '
                       f'INVOICE_STAGE_ID="{stage_id}" INVOICE_STAGE_DESC="{stage_desc}" '
                       'MOVED="0"/></INVOICES>' if r.credit_note_code else "<INVOICES/>")
                    + "</ORDER_STATUS>")
                if r.exchange:
                    out.append(
                        f'<ORDER_STATUS SORDER_CODE="{r.exchange.order_code}" '
                        f'ASSOCIATED_REF="{escape(r.associated_ref)}">'
                        f'<COMPANY_NAME COMPANY_CODE="{escape(r.urn)}"/>'
                        '<ORDER_TYPE TYPE_ID="1">Sales Order</ORDER_TYPE>'
                        "<CURRENCY_CODE>GBP</CURRENCY_CODE><COMPLETE>0</COMPLETE>"
                        "<INVOICES/></ORDER_STATUS>")
        out.append("</STATUS_LIST>")
        return "".join(out)

    def process_return(self, p: dict[str, str]) -> str:
        return self.state.process_return(p.get("ReturnCode", "").strip(),
                                         p.get("ManualAuthCode", "").strip())

    def export_company(self, p: dict[str, str]) -> str:
        wanted = {v.lower() for v in _csv(p.get("CompanyCode", ""))}
        by_email = p.get("MappingType", "1") == "3"
        out = ["<COMPANYS>"]
        with self.state.lock:
            for c in self.state.customers.values():
                key = c.email if by_email else c.urn.lower()
                if key not in wanted:
                    continue
                out.append(
                    f"<COMPANY><COMPANY_ID>{c.company_id}</COMPANY_ID>"
                    f"<COMPANY_CODE>{escape(c.urn)}</COMPANY_CODE>"
                    f"<COMPANY_NAME>{escape(c.name)}</COMPANY_NAME><ADDRESSES><ADDRESS>"
                    f"<CONTACTS><CONTACT><EMAIL>{escape(c.email)}</EMAIL></CONTACT></CONTACTS>"
                    "</ADDRESS></ADDRESSES></COMPANY>")
        out.append("</COMPANYS>")
        return "".join(out)

    def _items(self, codes: str, mapping: str) -> list[str]:
        wanted = set(_csv(codes))
        with self.state.lock:
            ids = []
            for it in self.state.items.values():
                key = it.other_ref if mapping == "2" else it.stock_code
                if not wanted or key in wanted:
                    ids.append(it.stock_id)
            return ids

    def export_stock_status(self, p: dict[str, str]) -> str:
        site = int(p.get("SiteID") or 0) or self.state.site_id
        name = "Main Site" if site == 1 else f"Site {site}"
        out = [f'<STOCK_STATUS SITE="{name}">']
        with self.state.lock:
            for sid in self._items(p.get("StockCodes", ""), p.get("MappingType", "1")):
                it = self.state.items[sid]
                avail = self.state.levels.get((sid, site), [Decimal(0), Decimal(0)])[0]
                status = 4 if it.discontinued else 5 if not it.stock_controlled else (
                    0 if avail > 0 else 3)
                out.append(f'<STOCK_ITEM CODE="{escape(it.stock_code)}" ID="{sid}" '
                           f'OTHER_REF="{escape(it.other_ref)}" DESC="{escape(it.description)}">'
                           f"<LEVEL>{avail.normalize():f}</LEVEL><STATUS>{status}</STATUS>"
                           "</STOCK_ITEM>")
        out.append("</STOCK_STATUS>")
        return "".join(out)

    def export_stock(self, p: dict[str, str]) -> str:
        out = ["<STOCK_ITEMS>"]
        with self.state.lock:
            for sid in self._items(p.get("StockCode", ""), p.get("MappingType", "1")):
                it = self.state.items[sid]
                barcodes = "".join(f"<BARCODE>{escape(b)}</BARCODE>" for b in it.barcodes)
                out.append(
                    f"<STOCK_ITEM><STOCK_ID>{sid}</STOCK_ID>"
                    f"<STOCK_CODE>{escape(it.stock_code)}</STOCK_CODE>"
                    f"<ASSOCIATED_REF>{escape(it.other_ref)}</ASSOCIATED_REF>"
                    f"<STOCK_DESC>{escape(it.description)}</STOCK_DESC>"
                    f"<WEB>{'-1' if it.publish_on_web else '0'}</WEB>"
                    f"<DISCONTINUED>{'-1' if it.discontinued else '0'}</DISCONTINUED>"
                    f"<STOCK_CONTROLLED>{'-1' if it.stock_controlled else '0'}"
                    f"</STOCK_CONTROLLED><BARCODES>{barcodes}</BARCODES></STOCK_ITEM>")
        out.append("</STOCK_ITEMS>")
        return "".join(out)

    def get_stock_list(self, _p: dict[str, str]) -> bytes:
        with self.state.lock:
            items = "".join(f"<item><StockCode>{escape(it.stock_code)}</StockCode>"
                            f"<StockID>{it.stock_id}</StockID><ParentCode></ParentCode></item>"
                            for it in self.state.items.values())
            count = len(self.state.items)
        return _envelope(f'<NS1:GetStockListResponse xmlns:NS1="{URN}"><return>'
                         f"<Count>{count}</Count><List>{items}</List></return>"
                         "</NS1:GetStockListResponse>")


def soap_app(state: KhaosState, calls: list[str],
             on_change: Callable[[], None] | None = None) -> FastAPI:
    """The sandbox SOAP service; ``calls`` collects operation names as they are served."""
    app = FastAPI(title="Khaos sandbox SOAP", docs_url=None, openapi_url=None, redoc_url=None)
    handlers = SoapHandlers(state, calls)
    text_ops: dict[str, Callable[[dict[str, str]], str]] = {
        "ExportOrderStatusEx": handlers.export_order_status_ex,
        "ProcessReturn": handlers.process_return,
        "ExportCompany": handlers.export_company,
        "ExportStockStatus": handlers.export_stock_status,
        "ExportStock": handlers.export_stock,
    }

    @app.get(f"/{EXE}/wsdl/IKosWeb")
    def get_wsdl(request: Request) -> Response:
        endpoint = str(request.url).replace("/wsdl/", "/soap/")
        return Response(wsdl(endpoint), media_type="text/xml; charset=utf-8")

    @app.post(f"/{EXE}/soap/IKosWeb")
    async def soap(request: Request) -> Response:
        raw = await request.body()
        try:
            root = etree.fromstring(raw, etree.XMLParser(resolve_entities=False,
                                                         no_network=True))
            body = root.find(f"{{{SOAP_ENV}}}Body")
            call = next(iter(body)) if body is not None and len(body) else None
        except (etree.XMLSyntaxError, StopIteration):
            call = None
        if call is None:
            return _fault("Invalid SOAP request", "SOAP-ENV:Client")
        op = etree.QName(call).localname
        params = {etree.QName(c).localname: (c.text or "") for c in call
                  if isinstance(c.tag, str)}
        calls.append(op)
        if op == "GetStockList":
            return Response(handlers.get_stock_list(params), media_type="text/xml")
        handler = text_ops.get(op)
        if handler is None:
            return _fault(f'No method named "{op}" is supported by interface "IKosWeb"',
                          "SOAP-ENV:Client")
        try:
            result = handler(params)
        except SandboxFault as exc:
            return _fault(str(exc))
        if op == "ProcessReturn" and on_change is not None:
            on_change()
        return Response(_result(op, result), media_type="text/xml; charset=utf-8")

    @app.get("/state")
    def get_state() -> JSONResponse:
        return JSONResponse(state.snapshot())

    @app.post("/state/process/{return_code}")
    def warehouse_process(return_code: str) -> JSONResponse:
        try:
            message = state.process(return_code)
        except SandboxFault as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        if on_change is not None:
            on_change()
        return JSONResponse({"message": message})

    return app
