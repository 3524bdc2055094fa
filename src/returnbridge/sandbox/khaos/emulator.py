"""The Khaos Control sandbox: a stateful emulator of what returnbridge talks to.

Channel side (Khaos calls us): it fetches our configuration file with HTTP Basic, polls
``CReturnDownload`` following ``Sirion-Continuation`` (on demand with :meth:`poll_once`, or
every ``Frequency`` minutes with :meth:`start_polling`), imports each return the way Khaos
does (one bad return fails alone), raises credit notes and exchange orders, moves stock per
the return reason's processing type when the return is processed, and pushes
``StockStatusUpload`` (at most 100 statuses per POST) and ``StockUpload`` back, retrying
any non-200.

Desktop side (we call Khaos): :meth:`serve_soap` runs the SOAP service (WSDL, RPC calls and
their faults) on a local port, plus ``GET /state`` with the whole state as JSON."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import structlog
import uvicorn

from returnbridge.sandbox.khaos.soap_server import EXE, soap_app
from returnbridge.sandbox.khaos.state import (
    CreditNoteAt,
    ImportFailure,
    KhaosReturn,
    KhaosState,
    Processing,
    SandboxFault,
    SandboxItem,
)
from returnbridge.sandbox.khaos.xmldoc import xml_to_document

log = structlog.get_logger(__name__)

FIRST_CONTACT = "2019-12-31 12:00:00Z"  # what Khaos sends as continuation on first contact
STATUSES_PER_POST = 100


@dataclass
class PushAttempt:
    endpoint: str  # "StockStatusUpload" | "StockUpload"
    url: str
    items: int
    status: int  # HTTP status, 0 when the request failed
    attempt: int


@dataclass
class PushReport:
    posts: int = 0
    items: int = 0
    failed_posts: int = 0


@dataclass
class _Server:
    server: uvicorn.Server
    thread: threading.Thread
    port: int


@dataclass
class _Retry:
    attempts: int = 3
    backoff_seconds: float = 0.05
    log: list[PushAttempt] = field(default_factory=list)


class KhaosSandbox:
    """A Khaos Control system for tests and the demo; see the module docstring."""

    def __init__(self, config_url: str, username: str, password: str, *,
                 catalogue: Iterable[str | SandboxItem] = (),
                 customers: Iterable[str] | Mapping[str, str] = (),
                 reasons: Iterable[str] | Mapping[str, Processing | str] = (),
                 site_id: int = 1, move_stock_on_process: bool = True,
                 credit_note_at: CreditNoteAt | str = CreditNoteAt.PROCESS,
                 auto_push: bool = True, push_order_statuses: bool = False,
                 push_attempts: int = 3,
                 push_backoff_seconds: float = 0.05, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None,
                 resume_after_failure: bool = False) -> None:
        self.config_url = config_url
        # Chaos campaign (sandbox/faults.py): requests to returnbridge through a faulty
        # transport; a poll that fails part-way starts the next one from the continuation
        # that failed (Khaos echoes the last value it received) instead of first contact.
        self.transport = transport
        self.resume_after_failure = resume_after_failure
        self._resume: str | None = None
        self.username = username
        self.password = password
        self.timeout = timeout
        self.auto_push = auto_push
        self.push_order_statuses_on_change = push_order_statuses
        self.state = KhaosState(site_id=site_id, move_stock_on_process=move_stock_on_process,
                                credit_note_at=CreditNoteAt(credit_note_at))
        self.config: dict[str, Any] = {}
        self.polls = 0  # poll requests made (pages)
        self.continuations: list[str] = []  # Sirion-Continuation sent, per request
        self.soap_calls: list[str] = []
        self.pushes = _Retry(push_attempts, push_backoff_seconds)
        self._poll_stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._soap: _Server | None = None
        self._push_lock = threading.Lock()
        for entry in catalogue:
            if isinstance(entry, SandboxItem):
                self.state.items[entry.stock_id] = entry
            else:
                self.state.add_item(entry)
        if isinstance(customers, Mapping):
            for urn, email in customers.items():
                self.state.add_customer(urn, email)
        else:
            for urn in customers:
                self.state.add_customer(urn)
        if isinstance(reasons, Mapping):
            for rid, processing in reasons.items():
                self.state.add_reason(rid, processing=processing)
        else:
            for rid in reasons:
                self.state.add_reason(rid)

    # -- master data -----------------------------------------------------------------------

    def add_item(self, stock_code: str, **kwargs: Any) -> SandboxItem:
        """See :meth:`KhaosState.add_item` (stock_id, other_ref, barcodes, publish_on_web,
        discontinued, stock_controlled, sell_price, levels={site_id: qty})."""
        return self.state.add_item(stock_code, **kwargs)

    def add_customer(self, urn: str, email: str = "", name: str = "") -> None:
        self.state.add_customer(urn, email, name)

    def add_sales_order(self, associated_ref: str, urn: str, order_code: str = "") -> str:
        """See :meth:`KhaosState.add_sales_order`."""
        return self.state.add_sales_order(associated_ref, urn, order_code)

    def add_reason(self, reason_id: str, name: str = "",
                   processing: Processing | str = Processing.RESTOCK) -> None:
        self.state.add_reason(reason_id, name, processing)

    def set_level(self, stock_code: str, available: Decimal | int | str,
                  site_id: int | None = None, on_order: Decimal | int | None = None) -> None:
        item = self.state.item_by_code(stock_code)
        self.state.set_level(item.stock_id, self.state.site_id if site_id is None else site_id,
                             Decimal(str(available)),
                             None if on_order is None else Decimal(str(on_order)))

    def level(self, stock_code: str, site_id: int | None = None) -> Decimal:
        return self.state.level(stock_code, site_id)

    # -- what happened ---------------------------------------------------------------------

    @property
    def imported(self) -> dict[str, KhaosReturn]:
        """Imported returns by AssociatedRef."""
        return self.state.returns

    @property
    def failures(self) -> list[ImportFailure]:
        return self.state.failures

    def return_for(self, associated_ref: str) -> KhaosReturn | None:
        return self.state.returns.get(associated_ref)

    def snapshot(self) -> dict[str, Any]:
        return self.state.snapshot()

    # -- the warehouse and finance, in Khaos -----------------------------------------------

    def process(self, return_code: str) -> str:
        """The warehouse processes the return (Move Stock on Process moves stock now)."""
        message = self.state.process(return_code)
        self._after_change()
        return message

    def set_credit_note_at(self, mode: CreditNoteAt | str) -> None:
        """Switch when credit notes are raised (for returns imported from now on)."""
        self.state.credit_note_at = CreditNoteAt(mode)

    def process_by_ref(self, associated_ref: str) -> str:
        record = self.state.returns[associated_ref]
        return self.process(record.return_code)

    def issue(self, return_code: str) -> None:
        self.state.issue(return_code)
        self._after_change()

    def process_return(self, return_code: str, manual_auth_code: str) -> str:
        """What SOAP ProcessReturn does (raises :class:`SandboxFault` with the fault text)."""
        message = self.state.process_return(return_code, manual_auth_code)
        self._after_change()
        return message

    def set_credit_value(self, associated_ref: str, gross: Decimal | str,
                         net: Decimal | str | None = None) -> None:
        """Someone edits the credit note's value in Khaos."""
        with self.state.lock:
            record = self.state.returns[associated_ref]
            record.credit_value = Decimal(str(gross))
            record.credit_value_net = Decimal(str(net if net is not None else gross))

    def mark_partially_processed(self, return_code: str) -> None:
        with self.state.lock:
            record = self.state.by_return_code(return_code)
            if record is None:
                raise KeyError(return_code)
            record.partially_processed = True

    def delete_return(self, return_code: str) -> None:
        with self.state.lock:
            record = self.state.by_return_code(return_code)
            if record is None:
                raise KeyError(return_code)
            record.deleted = True

    # -- channel: configuration and polling ------------------------------------------------

    def _client(self) -> httpx.Client:
        return httpx.Client(auth=(self.username, self.password), timeout=self.timeout,
                            transport=self.transport)

    def fetch_config(self) -> dict[str, Any]:
        """GET the configuration file (JSON or XML) with HTTP Basic."""
        with self._client() as client:
            response = client.get(self.config_url)
            response.raise_for_status()
        if "xml" in response.headers.get("content-type", ""):
            doc = xml_to_document(response.content)
            config = {name: {k: v for k, v in fields.items()}
                      for name, fields in doc.items() if isinstance(fields, dict)}
        else:
            config = response.json()["EndpointConfig"]
        self.config = config
        return self.config

    @property
    def poll_interval_seconds(self) -> float:
        if not self.config:
            self.fetch_config()
        return float(self.config["CReturnDownload"].get("Frequency", 15)) * 60

    def poll_once(self, max_pages: int = 50) -> int:
        """One scheduled poll: fetch pages while a continuation is offered; import them.
        Returns how many returns were imported."""
        if not self.config:
            self.fetch_config()
        endpoint = self.config["CReturnDownload"]
        imported = 0
        continuation = self._resume or FIRST_CONTACT
        with self._client() as client:
            for _ in range(max_pages):
                self.continuations.append(continuation)
                try:
                    response = client.get(str(endpoint["URL"]),
                                          headers={"Sirion-Continuation": continuation})
                    response.raise_for_status()
                except httpx.HTTPError:
                    if self.resume_after_failure:
                        self._resume = continuation
                    raise
                self._resume = None
                self.polls += 1
                imported += self.state.import_document(self._document(response))
                continuation = response.headers.get("Sirion-Continuation", "")
                if not continuation:
                    break
        self._after_change()
        return imported

    poll = poll_once  # the name the first sandbox used

    def retry_specific(self, associated_refs: Iterable[str]) -> int:
        """A user retries failed imports: GET with ``SpecificIDs``."""
        if not self.config:
            self.fetch_config()
        refs = ",".join(associated_refs)
        with self._client() as client:
            response = client.get(str(self.config["CReturnDownload"]["URL"]),
                                  headers={"SpecificIDs": refs})
            response.raise_for_status()
        self.polls += 1
        self.state.failures[:] = [f for f in self.state.failures
                                  if f.associated_ref not in refs.split(",")]
        count = self.state.import_document(self._document(response))
        self._after_change()
        return count

    @staticmethod
    def _document(response: httpx.Response) -> dict[str, Any]:
        if "xml" in response.headers.get("content-type", ""):
            return xml_to_document(response.content)
        doc: dict[str, Any] = response.json()
        return doc

    def start_polling(self, interval_seconds: float | None = None) -> None:
        """Poll in a background thread every ``interval_seconds`` (default: the configured
        ``Frequency`` minutes). Errors are logged and the next poll still happens."""
        if self._poller is not None:
            return
        interval = interval_seconds if interval_seconds is not None else \
            self.poll_interval_seconds
        self._poll_stop.clear()

        def loop() -> None:
            while True:
                try:
                    self.poll_once()
                except Exception as exc:
                    log.warning("khaos sandbox poll failed", error=str(exc))
                if self._poll_stop.wait(interval):
                    return

        self._poller = threading.Thread(target=loop, name="khaos-sandbox-poll", daemon=True)
        self._poller.start()

    def stop_polling(self) -> None:
        self._poll_stop.set()
        if self._poller is not None:
            self._poller.join(10)
        self._poller = None

    # -- channel: pushes to us -------------------------------------------------------------

    def _after_change(self) -> None:
        if self.auto_push and self.config.get("StockStatusUpload") and self.state.dirty_levels:
            self.push_stock_statuses()
        if (self.push_order_statuses_on_change and self.config.get("OrderStatusUpload")
                and self.state.changed_returns):
            self.push_order_statuses()

    def _post(self, client: httpx.Client, endpoint: str, url: str, body: dict[str, Any],
              items: int) -> bool:
        for attempt in range(1, self.pushes.attempts + 1):
            try:
                status = client.post(url, json=body).status_code
            except httpx.HTTPError:
                status = 0
            self.pushes.log.append(PushAttempt(endpoint, url, items, status, attempt))
            if status == 200:
                return True
            if attempt < self.pushes.attempts:
                time.sleep(self.pushes.backoff_seconds * 2 ** (attempt - 1))
        return False

    def push_stock_statuses(self, stock_codes: Iterable[str] | None = None,
                            all_sites: bool = False) -> PushReport:
        """POST ``StockStatuses`` for changed levels (or for ``stock_codes``), at most 100
        per request, retrying non-200; levels not accepted stay pending for the next push."""
        if not self.config:
            self.fetch_config()
        url = str(self.config["StockStatusUpload"]["URL"])
        with self._push_lock:
            with self.state.lock:
                if stock_codes is None and not all_sites:
                    keys = sorted(self.state.dirty_levels)
                else:
                    wanted = None if stock_codes is None else {
                        self.state.item_by_code(c).stock_id for c in stock_codes}
                    keys = sorted(k for k in self.state.levels
                                  if wanted is None or k[0] in wanted)
                self.state.dirty_levels.difference_update(keys)
            report = PushReport()
            with self._client() as client:
                for start in range(0, len(keys), STATUSES_PER_POST):
                    batch = keys[start:start + STATUSES_PER_POST]
                    statuses = self.state.stock_statuses(batch)
                    report.posts += 1
                    report.items += len(statuses)
                    if not self._post(client, "StockStatusUpload", url,
                                      {"Statuses": statuses}, len(statuses)):
                        report.failed_posts += 1
                        with self.state.lock:
                            self.state.dirty_levels.update(batch)
            return report

    def push_order_statuses(self, refs: Iterable[str] | None = None) -> PushReport:
        """POST ``Statuses`` (OrderStatusUpload) for returns that changed (imported,
        processed, issued) or for ``refs``: each carries its credit note and its stage."""
        if not self.config:
            self.fetch_config()
        url = str(self.config["OrderStatusUpload"]["URL"])
        with self._push_lock:
            with self.state.lock:
                wanted = sorted(self.state.changed_returns if refs is None else set(refs))
                self.state.changed_returns.difference_update(wanted)
            statuses = self.state.order_statuses(wanted)
            report = PushReport()
            if not statuses:
                return report
            with self._client() as client:
                report.posts, report.items = 1, len(statuses)
                if not self._post(client, "OrderStatusUpload", url, {"Statuses": statuses},
                                  len(statuses)):
                    report.failed_posts = 1
                    with self.state.lock:
                        self.state.changed_returns.update(wanted)
            return report

    def push_stock_items(self, batch_size: int = 500) -> PushReport:
        """POST the whole catalogue as ``StockItems`` (what Khaos does on first link)."""
        if not self.config:
            self.fetch_config()
        url = str(self.config["StockUpload"]["URL"])
        items = self.state.stock_items()
        report = PushReport()
        with self._push_lock, self._client() as client:
            for start in range(0, max(len(items), 1), batch_size):
                batch = items[start:start + batch_size]
                report.posts += 1
                report.items += len(batch)
                if not self._post(client, "StockUpload", url, {"Items": batch, "Deleted": []},
                                  len(batch)):
                    report.failed_posts += 1
        return report

    # -- desktop SOAP ----------------------------------------------------------------------

    def serve_soap(self, port: int | None = None,
                   wrap: Callable[[Any], Any] | None = None) -> str:
        """Start the SOAP service on 127.0.0.1; returns the endpoint URL
        (``http://127.0.0.1:PORT/KhaosSandbox.exe/soap/IKosWeb``)."""
        if self._soap is None:
            from returnbridge.sandbox.service import free_port

            chosen = port or free_port()
            app: Any = soap_app(self.state, self.soap_calls, on_change=self._after_change)
            if wrap is not None:  # e.g. a FaultInjector (sandbox/faults.py)
                app = wrap(app)
            server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=chosen,
                                                   log_level="warning", lifespan="off"))
            thread = threading.Thread(target=server.run, name="khaos-sandbox-soap",
                                      daemon=True)
            thread.start()
            deadline = time.monotonic() + 10
            while not server.started:
                if time.monotonic() > deadline or not thread.is_alive():
                    raise RuntimeError("the Khaos sandbox SOAP service did not start")
                time.sleep(0.02)
            self._soap = _Server(server, thread, chosen)
        return self.soap_url

    @property
    def soap_url(self) -> str:
        if self._soap is None:
            raise RuntimeError("call serve_soap() first")
        return f"http://127.0.0.1:{self._soap.port}/{EXE}/soap/IKosWeb"

    @property
    def state_url(self) -> str:
        if self._soap is None:
            raise RuntimeError("call serve_soap() first")
        return f"http://127.0.0.1:{self._soap.port}/state"

    def close(self) -> None:
        self.stop_polling()
        if self._soap is not None:
            self._soap.server.should_exit = True
            self._soap.thread.join(10)
            self._soap = None


__all__ = ["FIRST_CONTACT", "CreditNoteAt", "ImportFailure", "KhaosReturn", "KhaosSandbox",
           "Processing", "PushAttempt", "PushReport", "SandboxFault", "SandboxItem"]
