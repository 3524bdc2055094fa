"""The chaos campaign (issue #16): returns from Loop and ZigZag through the real service under
sustained faults; nothing acknowledged may be lost and nothing may be posted twice.

What runs: ``returnbridge serve`` and ``workers`` ``returnbridge worker`` processes (real OS
processes) on a scratch PostgreSQL database; in this process, the Loop, ZigZag, Shopify and
Khaos sandboxes. Khaos fetches returns from the channel every ``khaos_poll_seconds`` and pushes
order statuses (credit notes) back; the service's own schedules do the rest (Loop backstop,
Khaos SOAP sweep, refund gate, ZigZag stock push).

Faults:

- webhooks: ``duplicate_rate`` of deliveries arrive twice, all are shuffled (reordered), and
  ``drop_rate`` are dropped. A dropped Loop webhook never arrives (Loop's three retries also
  fail while ``serve`` is down); the Loop **backstop** finds those returns. ZigZag has no API
  to list returns, so returnbridge cannot recover a ZigZag event that is never sent; its
  documented recovery is ZigZag's own: it retries a delivery that got no answer (or a 5xx)
  once a day for 7 days. A dropped ZigZag delivery is therefore a first attempt that got no
  answer, sent again later (out of order), like every ZigZag delivery refused while ``serve``
  is down.
- ``kills`` SIGKILLs (every process in turn, serve and each worker, in a random order each
  round; serve together with its worker child on PostgreSQL, ``[server].worker_mode``), each
  restarted, at random points of the campaign's progress (sending, Khaos
  imports, refunds).
- sandboxes: ``fault_rate`` of the calls returnbridge makes to the Loop API, the Khaos SOAP
  service, the ZigZag API and Shopify are answered 5xx, 429 or time out (held past the
  client's timeout, then processed anyway); the same share of Khaos's requests to the channel
  (polls and pushes) fail with a 5xx or 429 before reaching returnbridge, or time out. A
  timeout loses returnbridge's *answer* only where Khaos has a way to ask again: a page
  fetched with one of returnbridge's ``d<N>`` continuations (Khaos echoes it, returnbridge
  hands the lost page over again) and the pushes (Khaos retries them). The first request of a
  poll carries Khaos's own first-contact date, which returnbridge cannot tell from a new
  poll: a lost answer there leaves those returns served and never imported, which only
  ``khaos_import_unconfirmed`` reports (docs/runbooks); that case is not injected.

The result is a table (:meth:`ChaosResult.lines`); :attr:`ChaosResult.problems` lists every
bad figure (lost, duplicated, failed, unprocessed, a rate over its limit).
"""

from __future__ import annotations

import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import httpx
from sqlalchemy import func, select

from returnbridge.sandbox.demo import (
    FALLBACK_URN,
    KHAOS_PASSWORD,
    KHAOS_USER,
    LOOP_SECRET,
    NO_STOCK_REASON,
    RESTOCK_REASON,
    WRITE_OFF_REASON,
    ZIGZAG_SECRET,
    ZIGZAG_URN,
    write_demo_config,
)
from returnbridge.sandbox.faults import FaultInjector, FaultPlan, FaultyTransport, RateMeter
from returnbridge.sandbox.khaos.emulator import KhaosSandbox
from returnbridge.sandbox.loop.dispatch import LOOP_RETRIES, WebhookDispatcher
from returnbridge.sandbox.loop.samples import CATALOGUE, Scenario
from returnbridge.sandbox.loop.sender import LoopSender
from returnbridge.sandbox.loop.server import LoopSandboxApp
from returnbridge.sandbox.loop.world import LoopWorld
from returnbridge.sandbox.scratch import scratch_database
from returnbridge.sandbox.service import ManagedProcess, ServiceProcess, children, free_port
from returnbridge.sandbox.shopify.api import SandboxOrder, ShopifySandbox
from returnbridge.sandbox.threaded import ThreadedServer
from returnbridge.sandbox.zigzag.api import ZigZagApiSandbox
from returnbridge.sandbox.zigzag.samples import SampleItem, journey, refund_total
from returnbridge.sandbox.zigzag.sender import ZigZagSender
from returnbridge.store.db import make_engine
from returnbridge.store.migrate import upgrade
from returnbridge.store.models import (
    ExceptionRow,
    InboundEvent,
    RefundRow,
    ReturnRow,
    TimelineEntry,
)

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
LOOP_KEY = "chaos-loop-key"
LOOP_SCENARIOS = (Scenario("refund", ("TEE-BLK-M",)),
                  Scenario("refund", ("SCARF-GRY", "TEE-BLK-L")),
                  Scenario("refund", ("JEAN-IND-32",)))
ZIGZAG_SKUS = ("30D24LRED", "30D24LBLU")
ZIGZAG_DC = "GB0064"
FIRST_ORDER = 300_000


@dataclass
class ChaosOptions:
    returns: int = 10_000
    loop_share: float = 0.6  # the rest are ZigZag returns, each refunded through Shopify
    duplicate_rate: float = 0.30
    drop_rate: float = 0.10
    fault_rate: float = 0.20
    kills: int = 20
    workers: int = 2
    seed: int = 16
    senders: int = 4  # webhook deliveries in flight at once
    client_timeout: float = 2.0  # returnbridge's timeout on each sandbox call
    fault_hold_seconds: float = 2.5  # how long an injected timeout holds a call
    khaos_poll_seconds: float = 2.0
    khaos_page_size: int = 100
    # Shopify's GraphQL cost bucket for the Standard plan (2,000 points, 100 restored a
    # second); the Shopify sandbox answers THROTTLED beyond it.
    shopify_bucket: float = 2000.0
    shopify_restore_rate: float = 100.0
    drain_timeout: float = 3600.0
    admin_url: str = DEFAULT_ADMIN_URL  # a server database to create the scratch one from
    work_dir: Path | None = None  # config and process logs (a temporary directory if None)
    keep_database: bool = False


@dataclass
class RateFigure:
    name: str
    calls: int
    max_in_window: int
    limit: int
    period: float
    faults: dict[str, int]

    @property
    def ok(self) -> bool:
        return self.limit <= 0 or self.max_in_window <= self.limit


@dataclass
class ChaosResult:
    returns_expected: int = 0
    returns_in_khaos: int = 0
    returns_duplicated: int = 0  # served to Khaos again after an import (refused as duplicate)
    returns_refused: int = 0  # other Khaos import failures
    returns_in_db: int = 0
    refunds_expected: int = 0
    refunds_paid: int = 0
    refunds_duplicated: int = 0  # orders refunded more than once
    refunds_wrong_amount: int = 0
    events_stored: int = 0
    events_processed: int = 0  # left 'received' for good: processed, deferred, unhandled
    events_unprocessed: int = 0
    events_failed: int = 0  # 'failed' or 'invalid' events, and open event_failed exceptions
    event_statuses: dict[str, int] = field(default_factory=dict)
    deliveries: dict[str, int] = field(default_factory=dict)
    kills: list[str] = field(default_factory=list)
    rates: list[RateFigure] = field(default_factory=list)
    send_seconds: float = 0.0
    drain_seconds: float = 0.0
    drained: bool = False
    total_seconds: float = 0.0
    stuck: list[str] = field(default_factory=list)  # what returnbridge shows for them

    @property
    def problems(self) -> list[str]:
        out = []
        if not self.drained:
            out.append("did not drain before the deadline")
        for label, value in (
                ("returns lost (not in Khaos)", self.returns_expected - self.returns_in_khaos),
                ("returns duplicated in Khaos", self.returns_duplicated),
                ("returns refused by Khaos", self.returns_refused),
                ("refunds not paid", self.refunds_expected - self.refunds_paid),
                ("refunds duplicated", self.refunds_duplicated),
                ("refunds of the wrong amount", self.refunds_wrong_amount),
                ("events left unprocessed", self.events_unprocessed),
                ("events failed", self.events_failed)):
            if value:
                out.append(f"{label}: {value}")
        if self.returns_in_db != self.returns_expected:
            out.append(f"returns in returnbridge: {self.returns_in_db}, expected "
                       f"{self.returns_expected}")
        out.extend(f"{r.name}: {r.max_in_window} calls in {r.period:.0f} s, over its limit "
                   f"{r.limit}" for r in self.rates if not r.ok)
        return out

    def lines(self) -> list[str]:
        def row(label: str, value: object, bad: bool = False) -> str:
            return f"  {label:<44} {value!s:>12}{'  <-- BAD' if bad else ''}"

        out = ["chaos campaign", "returns"]
        out.append(row("expected", self.returns_expected))
        out.append(row("in Khaos", self.returns_in_khaos,
                       self.returns_in_khaos != self.returns_expected))
        out.append(row("duplicated (served again after import)", self.returns_duplicated,
                       bool(self.returns_duplicated)))
        out.append(row("refused by Khaos", self.returns_refused, bool(self.returns_refused)))
        out.append("refunds (ZigZag returns, paid by returnbridge in Shopify)")
        out.append(row("expected", self.refunds_expected))
        out.append(row("paid", self.refunds_paid, self.refunds_paid != self.refunds_expected))
        out.append(row("duplicated", self.refunds_duplicated, bool(self.refunds_duplicated)))
        out.append(row("wrong amount", self.refunds_wrong_amount,
                       bool(self.refunds_wrong_amount)))
        out.append("events")
        out.append(row("stored", self.events_stored))
        out.append(row("processed", self.events_processed))
        out.append(row("left unprocessed", self.events_unprocessed,
                       bool(self.events_unprocessed)))
        out.append(row("failed with an exception", self.events_failed,
                       bool(self.events_failed)))
        out.append("  (" + ", ".join(f"{k} {v}" for k, v in sorted(
            self.event_statuses.items())) + ")")
        out.append("highest call rate seen by each sandbox / its limit")
        for r in self.rates:
            limit = f"{r.limit} per {r.period:.0f} s" if r.limit else "none (Khaos decides)"
            faults = ", ".join(f"{k} {v}" for k, v in sorted(r.faults.items())) or "none"
            out.append(f"  {r.name:<28} {r.max_in_window:>6} / {limit:<18} "
                       f"{r.calls:>7} calls, faults injected: {faults}"
                       + ("" if r.ok else "  <-- OVER"))
        out.append("faults")
        out.append("  deliveries: " + ", ".join(f"{k} {v}" for k, v in self.deliveries.items()))
        out.append(f"  SIGKILLs: {len(self.kills)} ({', '.join(self.kills)})")
        out.append(f"time: sending {self.send_seconds:.0f} s, drain after the last delivery "
                   f"{self.drain_seconds:.0f} s, total {self.total_seconds:.0f} s")
        if self.stuck:
            out.append("not in Khaos or not paid (as returnbridge shows them)")
            out.extend(f"  {line}" for line in self.stuck)
        problems = self.problems
        out.append("RESULT: " + ("every loss and duplicate is zero, every rate within its "
                                 "limit" if not problems else "FAILED - " + "; ".join(problems)))
        return out


# --------------------------------------------------------------------------- infrastructure


class WorkerProcess(ManagedProcess):
    """``returnbridge worker`` as a real process with a stable executor id."""

    def __init__(self, config: Path, name: str, log_file: Path) -> None:
        self.config, self.name, self.log_file = config, name, log_file
        self.proc = None

    def start(self) -> None:
        env = {**os.environ, "RB_CONFIG": str(self.config),
               "RB_SERVER__EXECUTOR_ID": self.name}
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "returnbridge", "worker"], stdout=log,
                stderr=subprocess.STDOUT, env=env)


def _add_keys(text: str, section: str, lines: list[str]) -> str:
    header = f"[{section}]\n"
    if header not in text:
        return text + f"\n{header}" + "\n".join(lines) + "\n"
    return text.replace(header, header + "\n".join(lines) + "\n", 1)


def write_config(directory: Path, port: int, db_url: str, *, soap_url: str,
                 shopify: dict[str, Any], zigzag: dict[str, Any], loop_url: str,
                 opts: ChaosOptions) -> Path:
    path = write_demo_config(directory, port, db_url, soap_url=soap_url, shopify=shopify)
    t = opts.client_timeout
    text = path.read_text(encoding="utf-8")
    text = _add_keys(text, "server", ["queue_poll_seconds = 1.0", "event_poll_seconds = 1.0"])
    text = _add_keys(text, "loop", [
        f'api_key = "{LOOP_KEY}"', f'base_url = "{loop_url}"', f"timeout_seconds = {t}",
        "backstop_interval_minutes = 1", "backstop_overlap_minutes = 2",
        "details_calls_per_pass = 250"])
    text = _add_keys(text, "khaos", [
        f"soap_timeout_seconds = {t}", "confirm_sweep_minutes = 1",
        f"page_size = {opts.khaos_page_size}", "poll_frequency_minutes = 1"])
    text = _add_keys(text, "zigzag", [
        f'base_url = "{zigzag["base_url"]}"', f'username = "{zigzag["username"]}"',
        f'password = "{zigzag["password"]}"', f"timeout_seconds = {t}",
        "stock_push_minutes = 1", f'warehouse_dc_codes = {{ "1" = "{ZIGZAG_DC}" }}'])
    text = text.replace("refund_gate_seconds = 1\n",
                        f"refund_gate_seconds = 1\ntimeout_seconds = {t}\n")
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- the campaign


@dataclass
class _Delivery:
    source: str  # "loop" | "zigzag"
    payload: dict[str, Any]


@dataclass
class _Sandboxes:
    loop_world: LoopWorld
    loop_server: ThreadedServer
    loop_url: str
    shopify: ShopifySandbox
    zigzag: ZigZagApiSandbox
    khaos: KhaosSandbox
    transport: FaultyTransport
    soap_url: str
    meters: dict[str, tuple[RateMeter, FaultPlan]]

    def stop(self) -> None:
        self.khaos.close()
        self.transport.shutdown()
        self.shopify.stop()
        self.zigzag.stop()
        self.loop_server.stop()


_TOKEN = re.compile(r"^d\d+$")


def khaos_answer_recoverable(request: httpx.Request) -> bool:
    """Khaos can ask again for a lost answer: pushes are retried, and a page fetched with
    one of returnbridge's continuation tokens is fetched again with the same token."""
    if request.method == "POST":
        return True
    return bool(_TOKEN.match(request.headers.get("Sirion-Continuation", "")))


def _start_sandboxes(opts: ChaosOptions, service_url: str) -> _Sandboxes:
    hold = opts.fault_hold_seconds
    meters: dict[str, tuple[RateMeter, FaultPlan]] = {}

    def plan(name: str, meter: RateMeter, salt: int) -> FaultPlan:
        p = FaultPlan(opts.fault_rate, timeout_seconds=hold, seed=opts.seed * 100 + salt)
        meters[name] = (meter, p)
        return p

    # Loop: the sandbox itself refuses more than 300 calls a minute (429), as Loop does.
    world = LoopWorld(dispatcher=WebhookDispatcher(
        drop_rate=opts.drop_rate, duplicate_rate=opts.duplicate_rate, reorder=True,
        seed=opts.seed))
    loop_port = free_port()
    loop_url = f"http://127.0.0.1:{loop_port}/api/v1"
    loop_app = LoopSandboxApp(world, api_key=LOOP_KEY, rate_limit=300, rate_period=60.0,
                              public_base_url=loop_url)
    loop_meter = RateMeter(300, 60.0)
    loop_server = ThreadedServer(FaultInjector(
        loop_app.app, plan("Loop API", loop_meter, 1), loop_meter,
        applies=lambda scope: str(scope.get("path", "")).startswith("/api/")), loop_port)
    loop_server.start()
    # Shopify: its cost bucket admits (bucket + restore rate x 60 s) / cost queries a minute.
    shopify = ShopifySandbox(bucket_size=opts.shopify_bucket,
                             restore_rate=opts.shopify_restore_rate)
    shop_meter = RateMeter(int((shopify.bucket_size + shopify.restore_rate * 60)
                               / shopify.query_cost), 60.0)
    # (the sandboxes serve whatever ASGI app is in .app: the FastAPI app, wrapped)
    shopify.app = cast(Any, FaultInjector(shopify.app, plan("Shopify", shop_meter, 2),
                                          shop_meter))
    shopify.start()
    zigzag = ZigZagApiSandbox(known_skus=set(ZIGZAG_SKUS), dc_codes={ZIGZAG_DC})
    zz_meter = RateMeter(60, 60.0)
    zigzag.app = cast(Any, FaultInjector(zigzag.app, plan("ZigZag API", zz_meter, 3),
                                         zz_meter))
    zigzag.start()
    channel_meter = RateMeter(0, 60.0)
    transport = FaultyTransport(plan("Khaos channel (polls, pushes)", channel_meter, 4),
                                channel_meter, lost_answer=khaos_answer_recoverable)
    khaos = KhaosSandbox(
        f"{service_url}/khaos/config.json", KHAOS_USER, KHAOS_PASSWORD,
        reasons={RESTOCK_REASON: "restock", WRITE_OFF_REASON: "write_off",
                 NO_STOCK_REASON: "no_stock"},
        push_order_statuses=True, timeout=60.0, transport=transport,
        resume_after_failure=True)
    for sku, (title, price) in CATALOGUE.items():
        khaos.add_item(sku, description=title, sell_price=price, levels={1: 1_000_000})
    for sku in ZIGZAG_SKUS:
        khaos.add_item(sku, description=sku, levels={1: 1_000_000})
    khaos.add_customer(FALLBACK_URN, "webshop@example.com", "Web shop customers")
    khaos.add_customer(ZIGZAG_URN, "zigzag@example.com", "ZigZag customers")
    soap_meter = RateMeter(60, 60.0)  # = [khaos] soap_calls_per_minute
    soap_plan = plan("Khaos SOAP", soap_meter, 5)
    soap_url = khaos.serve_soap(wrap=lambda app: FaultInjector(app, soap_plan, soap_meter))
    return _Sandboxes(world, loop_server, loop_url, shopify, zigzag, khaos, transport,
                      soap_url, meters)


@dataclass
class _Workload:
    deliveries: list[_Delivery]
    zigzag_later: list[_Delivery]  # first attempt lost: ZigZag retries them later
    loop_refs: list[str]
    zigzag_refs: list[str]
    refunds: dict[str, Decimal]  # Shopify order name -> the refund expected
    orders: dict[str, SandboxOrder]
    counts: Counter[str]


def _workload(opts: ChaosOptions, sb: _Sandboxes, rng: random.Random) -> _Workload:
    n_loop = round(opts.returns * opts.loop_share)
    n_zz = opts.returns - n_loop
    counts: Counter[str] = Counter()
    world = sb.loop_world
    loop_ids = [world.create(LOOP_SCENARIOS[i % len(LOOP_SCENARIOS)]) for i in range(n_loop)]
    dispatcher = world.dispatcher
    with dispatcher._lock:
        queued, dispatcher.queue = dispatcher.queue, []
    counts["loop webhooks"] = dispatcher.stats.emitted
    counts["loop dropped"] = dispatcher.stats.dropped
    counts["loop duplicated"] = dispatcher.stats.duplicated
    deliveries = [_Delivery("loop", p) for p in queued]
    later: list[_Delivery] = []
    refunds: dict[str, Decimal] = {}
    orders: dict[str, SandboxOrder] = {}
    zz_refs = []
    for i in range(n_zz):
        order = str(FIRST_ORDER + i)
        items = [SampleItem(ZIGZAG_SKUS[i % 2], unit_price="44.99", unit_tax="7.50")]
        if i % 3 == 0:
            items.append(SampleItem(ZIGZAG_SKUS[(i + 1) % 2], unit_price="49.99",
                                    unit_tax="8.33"))
        ref = f"RTN-{700_000 + i}"
        zz_refs.append(f"ZZ-{ref}")
        total = refund_total(items)
        refunds[f"#{order}"] = total
        orders[f"#{order}"] = sb.shopify.add_order(order, str(total + Decimal("10.00")))
        for payload in journey(ref, items, refund_requested=True, order_number=order):
            counts["zigzag webhooks"] += 1
            if rng.random() < opts.drop_rate:
                counts["zigzag first attempt lost"] += 1
                later.append(_Delivery("zigzag", payload))
                continue
            copies = 2 if rng.random() < opts.duplicate_rate else 1
            counts["zigzag duplicated"] += copies - 1
            deliveries.extend(_Delivery("zigzag", payload) for _ in range(copies))
    rng.shuffle(deliveries)
    return _Workload(deliveries, later, [f"LR-{i}" for i in loop_ids], zz_refs, refunds,
                     orders, counts)


class _Campaign:
    def __init__(self, opts: ChaosOptions, directory: Path, db_url: str,
                 log: Callable[[str], None]) -> None:
        self.opts = opts
        self.directory = directory
        self.db_url = db_url
        self.log = log
        self.rng = random.Random(opts.seed)
        self.result = ChaosResult()
        self.sent = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.zigzag_retry: list[_Delivery] = []
        self.counts: Counter[str] = Counter()
        self.targets: list[str] = []

    # -- processes ---------------------------------------------------------------------

    def start_processes(self, config: Path, port: int) -> None:
        self.serve = ServiceProcess(config, port, self.directory / "serve.log")
        self.serve.start(timeout=120)
        self.workers = [WorkerProcess(config, f"chaos-worker-{n + 1}",
                                      self.directory / f"worker-{n + 1}.log")
                        for n in range(self.opts.workers)]
        for w in self.workers:
            w.start()

    def stop_processes(self) -> None:
        for w in self.workers:
            w.stop()
        self.serve.stop()

    def kill_one(self) -> None:
        if not self.targets:  # every process in turn, in a random order each round
            self.targets = ["serve", *(w.name for w in self.workers)]
            self.rng.shuffle(self.targets)
        name = self.targets.pop()
        downtime = self.rng.uniform(0.2, 2.0)
        if name == "serve":  # with its worker child ([server].worker_mode): the whole unit
            doomed = children(self.serve.proc.pid) if self.serve.proc is not None else []
            for pid in doomed:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.serve.kill()
            time.sleep(downtime)
            self.serve.start(timeout=120)
        else:
            worker = next(w for w in self.workers if w.name == name)
            worker.kill()
            time.sleep(downtime)
            worker.start()
        self.result.kills.append(name)
        self.log(f"  SIGKILL {len(self.result.kills)}/{self.opts.kills}: {name} "
                 f"(restarted after {downtime:.1f} s)")

    # -- delivering webhooks -----------------------------------------------------------

    def _send_loop(self, sender: LoopSender, payload: dict[str, Any]) -> bool:
        for _ in range(1 + LOOP_RETRIES):  # Loop retries 3 times, then gives up
            try:
                if sender.send(payload).is_success:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        return False

    def _send_zigzag(self, sender: ZigZagSender, payload: dict[str, Any]) -> bool:
        try:
            return sender.send(payload).status_code == 200
        except httpx.HTTPError:
            return False

    def deliver(self, work: list[_Delivery], service_url: str) -> None:
        q: queue.SimpleQueue[_Delivery] = queue.SimpleQueue()
        for d in work:
            q.put(d)

        def run() -> None:
            loop = LoopSender(f"{service_url}/webhooks/loop", LOOP_SECRET, timeout=30)
            zz = ZigZagSender(f"{service_url}/webhooks/zigzag", secret=ZIGZAG_SECRET,
                              timeout=30)
            try:
                while True:
                    try:
                        d = q.get_nowait()
                    except queue.Empty:
                        return
                    if d.source == "loop":
                        ok = self._send_loop(loop, d.payload)
                        with self.lock:
                            self.counts["loop delivered" if ok else
                                        "loop given up (backstop's job)"] += 1
                    else:
                        ok = self._send_zigzag(zz, d.payload)
                        with self.lock:
                            if ok:
                                self.counts["zigzag delivered"] += 1
                            else:
                                self.counts["zigzag attempts unanswered (retried)"] += 1
                                self.zigzag_retry.append(d)
                    with self.lock:
                        self.sent += 1
            finally:
                loop.close()
                zz.close()

        threads = [threading.Thread(target=run, name=f"chaos-sender-{i}")
                   for i in range(self.opts.senders)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    # -- progress, drain and figures ---------------------------------------------------

    def progress(self, sb: _Sandboxes, wl: _Workload, total_deliveries: int) -> float:
        imported = len(sb.khaos.imported)
        paid = sum(1 for order in wl.orders.values() if order.refunds)
        done = min(self.sent, total_deliveries) + imported + paid
        return done / (total_deliveries + self.opts.returns + len(wl.refunds))

    def killer(self, sb: _Sandboxes, wl: _Workload, total_deliveries: int) -> None:
        points = sorted(self.rng.uniform(0.02, 0.9) for _ in range(self.opts.kills))
        for point in points:
            while self.progress(sb, wl, total_deliveries) < point:
                if self.stop.wait(0.2):
                    return
            try:
                self.kill_one()
            except Exception as exc:  # a restart that fails is a finding: report it
                self.log(f"  restart failed: {type(exc).__name__}: {exc}")
                raise

    def event_figures(self) -> None:
        engine = make_engine(self.db_url)
        try:
            with engine.connect() as conn:
                statuses = dict(conn.execute(select(InboundEvent.status, func.count())
                                             .group_by(InboundEvent.status)).all())
                failed_exc = conn.scalar(select(func.count()).select_from(ExceptionRow).where(
                    ExceptionRow.type == "event_failed", ExceptionRow.status == "open")) or 0
                returns = conn.scalar(select(func.count()).select_from(ReturnRow)) or 0
        finally:
            engine.dispose()
        r = self.result
        r.event_statuses = {str(k): int(v) for k, v in statuses.items()}
        r.events_stored = sum(r.event_statuses.values())
        r.events_unprocessed = r.event_statuses.get("received", 0)
        r.events_failed = (r.event_statuses.get("failed", 0) + r.event_statuses.get(
            "invalid", 0) + int(failed_exc))
        r.events_processed = r.events_stored - r.events_unprocessed
        r.returns_in_db = int(returns)

    def khaos_figures(self, sb: _Sandboxes, wl: _Workload) -> None:
        r = self.result
        expected = set(wl.loop_refs) | set(wl.zigzag_refs)
        r.returns_expected = len(expected)
        r.returns_in_khaos = len(expected & set(sb.khaos.imported))
        r.returns_duplicated = sum(1 for f in sb.khaos.failures
                                   if f.reason.startswith("duplicate AssociatedRef"))
        r.returns_refused = len(sb.khaos.failures) - r.returns_duplicated
        r.refunds_expected = len(wl.refunds)
        r.refunds_paid = r.refunds_duplicated = r.refunds_wrong_amount = 0
        for name, amount in wl.refunds.items():
            refunds = list(wl.orders[name].refunds)
            if refunds:
                r.refunds_paid += 1
            if len(refunds) > 1:
                r.refunds_duplicated += 1
            if refunds and sum((x.amount for x in refunds), Decimal(0)) != amount:
                r.refunds_wrong_amount += 1

    def stuck_details(self, sb: _Sandboxes, wl: _Workload, limit: int = 10) -> None:
        refs = [ref for ref in (*wl.loop_refs, *wl.zigzag_refs) if ref not in sb.khaos.imported]
        refs += [f"ZZ-RTN-{700_000 + i}" for i, order in enumerate(wl.orders.values())
                 if not order.refunds]
        if not refs:
            return
        engine = make_engine(self.db_url)
        try:
            with engine.connect() as conn:
                for ref in refs[:limit]:
                    row = conn.execute(select(ReturnRow.id, ReturnRow.khaos_status).where(
                        ReturnRow.associated_ref == ref)).first()
                    if row is None:
                        self.result.stuck.append(f"{ref}: unknown to returnbridge")
                        continue
                    exceptions = conn.scalars(select(ExceptionRow.type).where(
                        ExceptionRow.return_id == row[0], ExceptionRow.status == "open")).all()
                    refunds = conn.execute(select(RefundRow.provider, RefundRow.status).where(
                        RefundRow.associated_ref == ref)).all()
                    timeline = conn.scalars(select(TimelineEntry.message).where(
                        TimelineEntry.return_id == row[0]).order_by(
                        TimelineEntry.id.desc()).limit(4)).all()
                    self.result.stuck.append(
                        f"{ref}: {row[1]}; open exceptions {list(exceptions)}; refunds "
                        f"{[tuple(r) for r in refunds]}; latest "
                        f"{[m[:100] for m in reversed(timeline)]}")
        finally:
            engine.dispose()

    def drained(self, sb: _Sandboxes, wl: _Workload) -> bool:
        self.khaos_figures(sb, wl)
        r = self.result
        if (r.returns_in_khaos < r.returns_expected or r.refunds_paid < r.refunds_expected
                or len(r.kills) < self.opts.kills or self.zigzag_retry):
            return False
        self.event_figures()
        return r.events_unprocessed == 0


def run_campaign(opts: ChaosOptions, log: Callable[[str], None] = print) -> ChaosResult:
    """Run the campaign; the figures are in the result (``problems`` empty when all good)."""
    import tempfile

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="returnbridge-chaos-") as tmp, \
            scratch_database(opts.admin_url, prefix="rb_chaos", keep=opts.keep_database) as db_url:
        directory = opts.work_dir or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        engine = make_engine(db_url)
        upgrade(engine)
        engine.dispose()
        port = free_port()
        service_url = f"http://127.0.0.1:{port}"
        sb = _start_sandboxes(opts, service_url)
        campaign = _Campaign(opts, directory, db_url, log)
        try:
            config = write_config(directory, port, db_url, soap_url=sb.soap_url,
                                  shopify=sb.shopify.settings(), zigzag=sb.zigzag.settings(),
                                  loop_url=sb.loop_url, opts=opts)
            log(f"chaos: {opts.returns} returns, serve + {opts.workers} workers on "
                f"PostgreSQL, {opts.kills} SIGKILLs, {opts.fault_rate:.0%} sandbox faults, "
                f"{opts.duplicate_rate:.0%} duplicate and {opts.drop_rate:.0%} dropped "
                f"webhooks; logs in {directory}")
            campaign.start_processes(config, port)
            _run(campaign, sb, opts, service_url)
        finally:
            campaign.stop.set()
            with suppress(Exception):
                campaign.stop_processes()
            sb.stop()
        result = campaign.result
        result.rates = [RateFigure(name, m.total, m.max_in_window, m.limit, m.period,
                                   dict(p.injected)) for name, (m, p) in sb.meters.items()]
        result.total_seconds = time.monotonic() - started
        return result


def _run(campaign: _Campaign, sb: _Sandboxes, opts: ChaosOptions, service_url: str) -> None:
    rng = random.Random(opts.seed + 1)
    wl = _workload(opts, sb, rng)
    campaign.counts.update(wl.counts)
    campaign.zigzag_retry.extend(wl.zigzag_later)
    total = len(wl.deliveries)
    # Khaos: fetch the channel configuration (through the faults), then poll on a timer.
    deadline = time.monotonic() + 120
    while True:
        try:
            sb.khaos.fetch_config()
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    sb.khaos.start_polling(opts.khaos_poll_seconds)
    errors: list[BaseException] = []

    def kill_thread() -> None:
        try:
            campaign.killer(sb, wl, total)
        except BaseException as exc:  # surfaced by the drain loop
            errors.append(exc)

    killer = threading.Thread(target=kill_thread, name="chaos-killer", daemon=True)
    killer.start()
    send_started = time.monotonic()
    campaign.deliver(wl.deliveries, service_url)
    # ZigZag's retries of what got no answer, "the next day" (here: every few seconds).
    while campaign.zigzag_retry:
        time.sleep(2.0)
        with campaign.lock:
            retry, campaign.zigzag_retry = campaign.zigzag_retry, []
        campaign.deliver(retry, service_url)
    sent_at = time.monotonic()
    campaign.result.send_seconds = sent_at - send_started
    campaign.log(f"  all webhooks delivered in {campaign.result.send_seconds:.0f} s; "
                 "draining")
    drain_deadline = sent_at + opts.drain_timeout
    next_report = time.monotonic() + 30
    while time.monotonic() < drain_deadline and not errors:
        if campaign.drained(sb, wl):
            campaign.result.drained = True
            break
        while campaign.zigzag_retry:
            with campaign.lock:
                retry, campaign.zigzag_retry = campaign.zigzag_retry, []
            campaign.deliver(retry, service_url)
        if time.monotonic() > next_report:
            r = campaign.result
            campaign.log(f"  draining: {r.returns_in_khaos}/{r.returns_expected} in Khaos, "
                         f"{r.refunds_paid}/{r.refunds_expected} refunds paid, "
                         f"{len(r.kills)}/{opts.kills} kills")
            next_report = time.monotonic() + 30
        time.sleep(1.0)
    campaign.result.drain_seconds = time.monotonic() - sent_at
    campaign.stop.set()
    killer.join(180)
    # Let anything late (a second refund, a redelivery) happen before counting.
    time.sleep(5.0)
    sb.khaos.stop_polling()
    campaign.khaos_figures(sb, wl)
    campaign.event_figures()
    campaign.stuck_details(sb, wl)
    campaign.result.deliveries = dict(campaign.counts)
    if errors:
        raise errors[0]
