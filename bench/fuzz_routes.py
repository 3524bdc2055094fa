"""Fuzzing every inbound route with hypothesis-generated payloads (issue 16).

For each route the campaign sends N generated requests over real HTTP to ``create_app``
served by uvicorn (events are applied inline, as the tests do), then checks:

- no answer is a 5xx (a 5xx makes Loop, ZigZag and Khaos retry the same bytes forever);
- every body the service acknowledged as stored is in ``inbound_events`` exactly once, and
  none is left unprocessed (``received``): each one was processed, deferred, kept as
  unhandled, or became ``invalid`` with a ``payload_invalid`` exception.

Payloads: real-shaped documents (a Loop return, a ZigZag event, Khaos StockItems /
StockStatuses / OrderStatuses in JSON and XML) with random fields replaced by arbitrary JSON
(huge and tiny numbers, deep nesting, unicode, nulls, wrong types), plus raw bytes. Webhooks
are correctly signed so that they pass authentication and reach the parsers.

    uv run --frozen python bench/fuzz_routes.py [--examples N] [--postgres [URL]]

A reduced run is in the test suite (tests/web/test_fuzz_routes.py).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from returnbridge.composition import Settings
from returnbridge.erp.khaos.xml import to_xml
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.ingest.apply import apply_event
from returnbridge.sandbox.loop.samples import Scenario, return_payload
from returnbridge.sandbox.loop.sender import php_json
from returnbridge.sandbox.service import free_port
from returnbridge.sources.loop.signature import sign
from returnbridge.store.db import make_engine
from returnbridge.store.migrate import upgrade
from returnbridge.store.models import ExceptionRow, InboundEvent
from returnbridge.web.app import create_app
from returnbridge.web.limits import uvicorn_options

LOOP_SECRET = "fuzz-loop-secret-0123456789abcdef"
ZIGZAG_SECRET = "fuzz-zigzag-secret-0123456789abcdef"
KHAOS_USER, KHAOS_PASSWORD = "khaos", "fuzz-khaos-password-0123456789"
API_TOKEN = "fuzz-api-token-0123456789abcdef"

ZIGZAG_BASE: dict[str, Any] = {
    "eventId": "e-1", "eventType": "ReturnCreated", "occurredAt": "2026-03-04T10:15:00Z",
    "retailerCode": "GL123", "returnReference": "RTN-1", "orderNumber": "1001",
    "currency": "GBP",
    "customer": {"email": "ann@example.com", "firstName": "Ann", "lastName": "Lee"},
    "items": [{"itemId": "1", "sku": "TEE-BLK-M", "quantity": 1, "unitPrice": "25.00",
               "unitTax": "4.17", "returnReason": "Too small", "disposition": "Resellable"}],
    "refund": {"amount": "25.00", "method": "original_payment"},
}
KHAOS_BASE: dict[str, tuple[str, dict[str, Any]]] = {
    "stock": ("StockItems", {"Items": [{"StockID": "112", "StockCode": "BOO",
                                        "ShortDescription": "Boot", "Barcodes": ["5000"],
                                        "StockControlled": True, "PublishToWeb": True}],
                             "Deleted": []}),
    "stock-status": ("StockStatuses", {"Statuses": [
        {"StockCode": "BOO", "StockID": "112", "SiteID": 1,
         "Levels": {"Available": 77.0, "OnOrder": 84.0}}]}),
    "order-status": ("OrderStatuses", {"Statuses": [
        {"OrderCode": "SO02075", "OrderID": "2075", "Status": "Received",
         "AssociatedRef": "LR-1", "Shipments": [{"ID": "B1", "Code": "INV106",
                                                 "Status": "Staging"}]}]}),
}

# ------------------------------------------------------------------------- strategies

_scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(["", " ", "0", "-1", "1e400", "NaN", "9" * 60, "<x>", "[bold]x[/]",
                     "\x00", "\u202e", "'; drop table returns; --", "=1+1", "%s%n"]),
)
json_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12,
)


def _mutated(base: dict[str, Any], data: st.DataObject, list_keys: tuple[str, ...]
             ) -> dict[str, Any]:
    doc = json.loads(json.dumps(base))
    for key in data.draw(st.lists(st.sampled_from(sorted(doc)), max_size=3, unique=True)):
        doc[key] = data.draw(json_values)
    for key in list_keys:
        entries = doc.get(key)
        if isinstance(entries, list) and entries and isinstance(entries[0], dict) \
                and entries[0]:
            entry = entries[0]
            for sub in data.draw(st.lists(st.sampled_from(sorted(entry)), max_size=3,
                                          unique=True)):
                entry[sub] = data.draw(json_values)
    return doc


def _body(doc: Any, data: st.DataObject) -> bytes:
    if data.draw(st.integers(0, 9)) == 0:  # one in ten: raw bytes, often not JSON at all
        return bytes(data.draw(st.binary(max_size=200)))
    return php_json(doc) if data.draw(st.booleans()) else json.dumps(doc).encode()


# ------------------------------------------------------------------------- the service

@dataclass
class RouteFigures:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    acknowledged: set[int] = field(default_factory=set)  # event ids answered as stored
    no_answer: Counter[str] = field(default_factory=Counter)  # timeouts, connection errors
    seconds: float = 0.0

    @property
    def server_errors(self) -> int:
        return sum(n for code, n in self.statuses.items() if code >= 500)

    @property
    def unanswered(self) -> int:
        return sum(self.no_answer.values())


class _Service:
    def __init__(self, db_url: str) -> None:
        engine = make_engine(db_url)
        upgrade(engine)
        engine.dispose()
        self.rt = Runtime.from_settings(Settings(  # type: ignore[arg-type]
            database={"url": db_url}, api={"tokens": [API_TOKEN]},
            loop={"webhook_secrets": [LOOP_SECRET], "fallback_customer_urn": "LOOPWEB"},
            zigzag={"webhook_secret": ZIGZAG_SECRET, "retailer_code": "GL123"},
            khaos={"channel_username": KHAOS_USER, "channel_password": KHAOS_PASSWORD},
            policy={"fallback_address_line1": "1 High St", "fallback_address_postcode": "NG1"},
            mapping={"reasons": [{"khaos_reason_id": "6", "processing": "restock"}]}))
        self.port = free_port()
        app = create_app(self.rt, lambda _s, _k, event_id: apply_event(self.rt, event_id)
                         and None)
        self.server = uvicorn.Server(uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="critical", lifespan="off",
            **uvicorn_options(self.rt.settings)))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> _Service:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("fuzz server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.rt.close()


# ------------------------------------------------------------------------- campaigns

Campaign = Callable[[httpx.Client, RouteFigures, int], None]


def _record(fig: RouteFigures, call: Callable[[], httpx.Response]) -> None:
    """Send one request; an answer that never comes (a timeout: the sender would retry the
    same bytes) is counted against the route like a 5xx, not raised."""
    try:
        r = call()
    except httpx.TransportError as exc:
        fig.requests += 1
        fig.no_answer[type(exc).__name__] += 1
        return
    fig.requests += 1
    fig.statuses[r.status_code] += 1
    if r.status_code == 200:
        with_id = r.json().get("event_id") if "json" in r.headers.get("content-type", "") \
            else None
        if isinstance(with_id, int):
            fig.acknowledged.add(with_id)


def _run(examples: int, test: Callable[..., None]) -> None:
    settings(max_examples=examples, deadline=None, database=None, derandomize=False,
             suppress_health_check=list(HealthCheck))(test)()


def loop_campaign(c: httpx.Client, fig: RouteFigures, examples: int) -> None:
    @given(st.data())
    def one(data: st.DataObject) -> None:
        base = return_payload(data.draw(st.integers(1, 10**6)),
                              Scenario("refund", ("TEE-BLK-M",)))
        body = _body(_mutated(base, data, ("line_items",)), data)
        _record(fig, lambda: c.post("/webhooks/loop", content=body,
                                    headers={"X-Loop-Signature": sign(body, LOOP_SECRET),
                                             "Content-Type": "application/json"}))
    _run(examples, one)


def zigzag_campaign(c: httpx.Client, fig: RouteFigures, examples: int) -> None:
    @given(st.data())
    def one(data: st.DataObject) -> None:
        doc = _mutated({**ZIGZAG_BASE, "eventId": str(uuid.uuid4())}, data, ("items",))
        body = _body(doc, data)
        _record(fig, lambda: c.post("/webhooks/zigzag", content=body,
                                    headers={"X-ZigZag-Secret": ZIGZAG_SECRET,
                                             "Content-Type": "application/json"}))
    _run(examples, one)


def khaos_campaign(kind: str) -> Campaign:
    root, base = KHAOS_BASE[kind]
    list_key = "Items" if kind == "stock" else "Statuses"

    def campaign(c: httpx.Client, fig: RouteFigures, examples: int) -> None:
        @given(st.data())
        def one(data: st.DataObject) -> None:
            doc = _mutated(base, data, (list_key,))
            as_xml = data.draw(st.booleans())
            body: bytes
            if as_xml:
                try:
                    body = to_xml(root, doc)
                except (TypeError, ValueError):  # nulls and odd types cannot be XML
                    body = _body(doc, data)
                    as_xml = False
            else:
                body = _body(doc, data)
            ctype = "application/xml" if as_xml else "application/json"
            _record(fig, lambda: c.post(f"/khaos/{kind}", content=body,
                                        auth=(KHAOS_USER, KHAOS_PASSWORD),
                                        headers={"Content-Type": ctype}))
        _run(examples, one)
    return campaign


def api_campaign(c: httpx.Client, fig: RouteFigures, examples: int) -> None:
    paths = st.sampled_from([
        "/api/v1/returns/{ref}/confirm-credit", "/api/v1/exceptions/{n}/resolve",
        "/api/v1/exceptions/{n}/ignore", "/api/v1/exceptions/{n}/retry"])
    confirm = st.fixed_dictionaries({}, optional={
        "credit_note_code": json_values, "value": json_values, "by": json_values,
        "why": json_values, "actor": json_values, "reason": json_values})

    @given(st.data())
    def one(data: st.DataObject) -> None:
        method = data.draw(st.sampled_from(["GET", "POST"]))
        ref = quote(data.draw(st.text(min_size=1, max_size=20)), safe="")
        n = data.draw(st.integers(-5, 10**20))
        headers = {"Authorization": f"Bearer {API_TOKEN}"}
        if method == "GET":
            path = data.draw(st.sampled_from(["/api/v1/returns/{ref}", "/api/v1/exceptions",
                                              "/api/v1/exceptions/{n}"]))
            params = data.draw(st.dictionaries(
                st.sampled_from(["status", "owner", "type", "ref", "limit", "offset"]),
                st.text(max_size=12) | st.integers(-10, 10**12).map(str), max_size=4))
            target = path.format(ref=ref, n=n)
            _record(fig, lambda: c.get(target, params=params, headers=headers))
        else:
            path = data.draw(paths).format(ref=ref, n=n)
            body = _body(data.draw(confirm | json_values), data)
            _record(fig, lambda: c.post(path, content=body, headers={
                **headers, "Content-Type": "application/json"}))
    _run(examples, one)


CAMPAIGNS: dict[str, Campaign] = {
    "POST /webhooks/loop": loop_campaign,
    "POST /webhooks/zigzag": zigzag_campaign,
    "POST /khaos/stock": khaos_campaign("stock"),
    "POST /khaos/stock-status": khaos_campaign("stock-status"),
    "POST /khaos/order-status": khaos_campaign("order-status"),
    "/api/v1 (GET and POST)": api_campaign,
}


@dataclass
class Report:
    routes: dict[str, RouteFigures]
    stored: int
    unprocessed: list[int]
    missing: list[int]
    by_status: dict[str, int]
    payload_invalid: int

    def lines(self) -> list[str]:
        out = []
        for name, fig in self.routes.items():
            codes = ", ".join(f"{k}: {v}" for k, v in sorted(fig.statuses.items()))
            out.append(f"fuzz {name}: {fig.requests} requests, 5xx {fig.server_errors}, "
                       f"no answer {fig.unanswered}, stored {len(fig.acknowledged)} "
                       f"({codes}) in {fig.seconds:.0f} s")
        states = ", ".join(f"{k} {v}" for k, v in sorted(self.by_status.items()))
        out.append(f"fuzz events: {self.stored} stored ({states}); payload_invalid "
                   f"exceptions {self.payload_invalid}; acknowledged but missing "
                   f"{len(self.missing)}; left unprocessed {len(self.unprocessed)}")
        return out


def run_campaign(db_url: str, examples: int,
                 routes: dict[str, Campaign] | None = None,
                 progress: Callable[[str, RouteFigures], None] | None = None) -> Report:
    figures: dict[str, RouteFigures] = {}
    with _Service(db_url) as svc, httpx.Client(
            base_url=f"http://127.0.0.1:{svc.port}", timeout=60) as client:
        for name, campaign in (routes or CAMPAIGNS).items():
            figures[name] = fig = RouteFigures()
            started = time.monotonic()
            campaign(client, fig, examples)
            fig.seconds = time.monotonic() - started
            if progress is not None:
                progress(name, fig)
        with svc.rt.sessions() as s:
            rows = s.execute(select(InboundEvent.id, InboundEvent.status)).all()
            invalid = s.scalar(select(func.count()).select_from(ExceptionRow).where(
                ExceptionRow.type == "payload_invalid")) or 0
    ids = {r[0] for r in rows}
    acknowledged = set().union(*(f.acknowledged for f in figures.values()))
    return Report(
        routes=figures, stored=len(rows),
        unprocessed=sorted(r[0] for r in rows if r[1] == "received"),
        missing=sorted(acknowledged - ids),
        by_status=dict(Counter(r[1] for r in rows)), payload_invalid=invalid)


@contextmanager
def _database(postgres: str | None) -> Iterator[str]:
    if postgres is None:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'fuzz.db'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"rb_fuzz_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=10_000, help="requests per route")
    parser.add_argument("--postgres", nargs="?", const="postgresql+psycopg://postgres@"
                        "127.0.0.1:5432/postgres", default=None)
    parser.add_argument("--routes", default="",
                        help="only the routes whose name contains one of these "
                        "comma-separated words (e.g. 'loop,zigzag'; '=/khaos/stock' for exactly "
                        "that path); default: all")
    args = parser.parse_args()
    words = [w.strip() for w in args.routes.split(",") if w.strip()]
    chosen = {name: c for name, c in CAMPAIGNS.items()
              if not words or any(name.split()[-1] == w[1:] if w.startswith("=") else w in name
                                  for w in words)}
    if not chosen:
        parser.error(f"no route matches {args.routes!r}")
    from returnbridge import logs

    logs.configure("ERROR", "console")  # one line per figure, not one per request
    started = time.monotonic()
    with _database(args.postgres) as url:
        report = run_campaign(url, args.examples, chosen, progress=lambda name, fig: print(
            f"  done: {name} ({fig.requests} requests in {fig.seconds:.0f} s)", flush=True))
    for line in report.lines():
        print(line)
    print(f"fuzz backend: {'postgresql' if args.postgres else 'sqlite'}, "
          f"{time.monotonic() - started:.0f} s")
    bad = (sum(f.server_errors + f.unanswered for f in report.routes.values())
           + len(report.missing) + len(report.unprocessed))
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()
