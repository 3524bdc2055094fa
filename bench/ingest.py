"""Ingest benchmark: signed Loop webhooks into the real service, against a plain baseline.

Starts ``returnbridge serve`` as a real process (SQLite by default, PostgreSQL with
``--postgres``), drives N distinct signed return webhooks at it from a separate driver process
over loopback with a small fixed concurrency, and measures accepted events/s and per-request
latency. In the same run a baseline process does the irreducible work for the same bodies
(HMAC-SHA256 base64 check + one committed single-row SQLite INSERT each, WAL,
synchronous=NORMAL), so the service figure can be read as a ratio. Finally it waits (bounded)
until the service's workflows have processed every event and reports end-to-end throughput.

    uv run --frozen python bench/ingest.py [--events N] [--concurrency C] [--postgres [URL]]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import multiprocessing
import os
import queue
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import func, select

from returnbridge.composition import load_settings
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.khaos.serve import serve_page
from returnbridge.sandbox.demo import KHAOS_PASSWORD, KHAOS_USER, LOOP_SECRET, write_demo_config
from returnbridge.sandbox.loop.samples import DEMO_SCENARIOS, return_payload
from returnbridge.sandbox.loop.sender import php_json
from returnbridge.sandbox.scratch import scratch_database
from returnbridge.sandbox.service import ServiceProcess, free_port
from returnbridge.sources.loop.signature import HEADER, sign
from returnbridge.store.db import make_engine
from returnbridge.store.migrate import upgrade
from returnbridge.store.models import InboundEvent

DEFAULT_EVENTS = 2000
DEFAULT_CONCURRENCY = 8
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
FIRST_ID = 500_001
DRIVE_DEADLINE_S = 60.0  # the driver stops sending after this, whatever is left is an error
REQUEST_TIMEOUT_S = 30.0
PROCESS_WAIT_S = 120.0
FIGURES: dict[str, float] = {}  # what --json writes, for bench/run_all.py


# --------------------------------------------------------------------------- workload


@dataclass(frozen=True)
class Delivery:
    body: bytes
    signature: str


# A return's life in Loop's ``return`` topic, one webhook each: created, then updated (a
# label, a note), then closed. ``--events-per-return K`` sends the first K of these.
LIFECYCLE = (("return.created", "open"), ("return.updated", "open"),
             ("return.updated", "open"), ("return.updated", "open"), ("return.closed", "closed"))


def make_deliveries(count: int, per_return: int = 1) -> list[Delivery]:
    """``count`` return webhooks as Loop would send them, signed with the demo secret: one
    per return (each new), or ``per_return`` per return (created, updates, closed), every
    return's first event before any return's second, as a day's traffic comes in."""
    returns = -(-count // per_return)
    out = []
    for step in range(per_return):
        trigger, state = LIFECYCLE[min(step, len(LIFECYCLE) - 1)]
        if per_return > 1 and step == per_return - 1:
            trigger, state = LIFECYCLE[-1]
        for r in range(returns):
            if len(out) == count:
                break
            base = DEMO_SCENARIOS[r % len(DEMO_SCENARIOS)]
            scenario = base if per_return == 1 else replace(base, state=state)
            payload = return_payload(FIRST_ID + r, scenario, trigger=trigger,
                                     order=2000 + r % 1000)
            if step:  # an update carries something new, so it is not a duplicate
                payload["edited_at"] = f"2026-11-2{min(step, 9)}T12:00:00+00:00"
            body = php_json(payload)
            out.append(Delivery(body, sign(body, LOOP_SECRET)))
    return out


# --------------------------------------------------------------------------- driver process


@dataclass
class DriveResult:
    latencies_ms: list[float] = field(default_factory=list)  # accepted (2xx) requests only
    statuses: Counter[str] = field(default_factory=Counter)
    first_send_wall: float = 0.0
    elapsed_s: float = 0.0

    @property
    def accepted(self) -> int:
        return sum(n for s, n in self.statuses.items() if s.startswith("2"))

    @property
    def errors(self) -> int:
        return sum(self.statuses.values()) - self.accepted


class _Connection:
    """One keep-alive HTTP/1.1 connection speaking just enough of the protocol to post a
    prepared request and read its answer. A lean load generator: the figures are the
    service's, not a client library's (httpx costs ~1.5 ms of CPU per request, and the
    driver shares the machine's two cores with the service)."""

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        self.sock: socket.socket | None = None
        self.buffer = b""

    def post(self, request: bytes) -> str:
        if self.sock is None:
            self.sock = socket.create_connection(self.address, timeout=REQUEST_TIMEOUT_S)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buffer = b""
        try:
            self.sock.sendall(request)
            head = self._read_until(b"\r\n\r\n")
            status_line, _, rest = head.partition(b"\r\n")
            length, close = 0, False
            for line in rest.split(b"\r\n"):
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            self._read_exactly(length)
        except (OSError, ValueError):
            self.close()
            raise
        if close:
            self.close()
        return status_line.split(b" ", 2)[1].decode()

    def _fill(self) -> None:
        assert self.sock is not None
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("server closed the connection")
        self.buffer += chunk

    def _read_until(self, marker: bytes) -> bytes:
        while (end := self.buffer.find(marker)) < 0:
            self._fill()
        head, self.buffer = self.buffer[:end], self.buffer[end + len(marker):]
        return head

    def _read_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def close(self) -> None:
        if self.sock is not None:
            with suppress(OSError):
                self.sock.close()
        self.sock = None


def prepared_request(url: str, item: Delivery) -> bytes:
    """The bytes of one signed POST, as a platform's HTTP client sends them."""
    parts = urlsplit(url)
    head = (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/json\r\n{HEADER}: {item.signature}\r\n"
            f"User-Agent: returnbridge-bench\r\nContent-Length: {len(item.body)}\r\n\r\n")
    return head.encode("latin-1") + item.body


def _client_loop(url: str, work: queue.SimpleQueue[Delivery], deadline: float,
                 result: DriveResult, lock: threading.Lock, interval: float = 0.0) -> None:
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    due = time.perf_counter()
    parts = urlsplit(url)
    connection = _Connection(parts.hostname or "127.0.0.1", parts.port or 80)
    try:
        while True:
            try:
                item = work.get_nowait()
            except queue.Empty:
                break
            if interval:  # offered load: this client's share of the rate, open loop
                due += interval
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            if time.monotonic() > deadline:
                statuses["not sent (deadline)"] += 1
                continue
            request = prepared_request(url, item)
            started = time.perf_counter()
            try:
                status = connection.post(request)
            except (OSError, ValueError) as exc:
                status = type(exc).__name__
            if status.startswith("2"):
                latencies.append((time.perf_counter() - started) * 1000)
            statuses[status] += 1
    finally:
        connection.close()
    with lock:
        result.latencies_ms.extend(latencies)
        result.statuses.update(statuses)


def drive(url: str, deliveries: list[Delivery], concurrency: int,
          rate: float = 0.0) -> DriveResult:
    """Runs in the driver process: ``concurrency`` threads, one keep-alive client each;
    ``rate`` > 0 offers that many requests/s in total instead of as fast as possible."""
    work: queue.SimpleQueue[Delivery] = queue.SimpleQueue()
    for d in deliveries:
        work.put(d)
    result = DriveResult()
    lock = threading.Lock()
    deadline = time.monotonic() + DRIVE_DEADLINE_S
    interval = concurrency / rate if rate > 0 else 0.0
    threads = [threading.Thread(target=_client_loop,
                                args=(url, work, deadline, result, lock, interval),
                                name=f"client-{i}") for i in range(concurrency)]
    result.first_send_wall = time.time()
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.elapsed_s = time.perf_counter() - started
    return result


# --------------------------------------------------------------------------- baseline process


def _verify(body: bytes, presented: str, secret: str) -> bool:
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return hmac.compare_digest(expected, presented.encode("ascii"))


def _baseline_database(db_path: str) -> sqlite3.Connection:
    """The baselines' table, in WAL mode with synchronous=NORMAL (as the service's)."""
    conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("""CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, dedupe_key TEXT NOT NULL,
        received_at TEXT NOT NULL, body BLOB NOT NULL, body_sha256 TEXT NOT NULL,
        status TEXT NOT NULL, UNIQUE (source, dedupe_key))""")
    return conn


def _insert_committed(conn: sqlite3.Connection, body: bytes) -> None:
    digest = hashlib.sha256(body).hexdigest()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO events (source, dedupe_key, received_at, body, body_sha256,"
                 " status) VALUES (?, ?, ?, ?, ?, ?)",
                 ("loop", digest, datetime.now(UTC).isoformat(), body, digest, "received"))
    conn.execute("COMMIT")


def baseline(db_path: str, deliveries: list[Delivery]) -> tuple[float, int]:
    """Runs in its own process: verify + one committed INSERT per event. (seconds, stored)."""
    conn = _baseline_database(db_path)
    stored = 0
    started = time.perf_counter()
    for d in deliveries:
        if not _verify(d.body, d.signature, LOOP_SECRET):
            continue
        _insert_committed(conn, d.body)
        stored += 1
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed, stored


def _http_baseline_server(db_path: str, port: int) -> None:
    """Runs in its own process: the least a Python HTTP service can do per webhook, for
    comparison only. uvicorn on httptools and uvloop (as ``serve``), a bare ASGI callable
    that reads the body, checks the HMAC and commits one INSERT, then answers 200. No
    routing, no middleware, no group commit, no access log, no workflows."""
    import uvicorn

    conn = _baseline_database(db_path)
    header = HEADER.lower().encode("latin-1")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        presented = dict(scope["headers"]).get(header, b"").decode()
        status = 401
        if _verify(body, presented, LOOP_SECRET):
            _insert_committed(conn, body)
            status = 200
        answer = b'{"status":"stored"}'
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(answer)).encode())]})
        await send({"type": "http.response.body", "body": answer})

    uvicorn.run(app, host="127.0.0.1", port=port, http="httptools", loop="uvloop",
                access_log=False, log_level="warning", lifespan="off")


def run_http_baseline(mp: multiprocessing.context.SpawnContext, directory: Path,
                      deliveries: list[Delivery], concurrency: int) -> float:
    """Accepted/s of :func:`_http_baseline_server`, driven like the service."""
    port = free_port()
    server = mp.Process(target=_http_baseline_server,
                        args=(str(directory / "http-baseline.db"), port), daemon=True)
    server.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            with suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline or not server.is_alive():
                raise RuntimeError("the HTTP baseline server did not start")
            time.sleep(0.1)
        with mp.Pool(1) as pool:
            result = pool.apply(drive, (f"http://127.0.0.1:{port}/webhooks/loop", deliveries,
                                        concurrency))
    finally:
        server.terminate()
        server.join(10)
    return result.accepted / result.elapsed_s if result.elapsed_s else 0.0


# --------------------------------------------------------------------------- service side


def write_config(directory: Path, port: int, database_url: str | None) -> tuple[Path, str]:
    """The demo config, with the database URL swapped when one is given."""
    config = write_demo_config(directory, port)
    sqlite_url = f"sqlite:///{directory / 'returnbridge.db'}"
    if database_url is None:
        return config, sqlite_url
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace(f'url = "{sqlite_url}"', f'url = "{database_url}"', 1),
                      encoding="utf-8")
    return config, database_url


def migrate(url: str) -> None:
    engine = make_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Processing:
    done: int
    statuses: dict[str, int]
    last_processed: datetime | None


def processing_state(url: str) -> Processing:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(InboundEvent.status, func.count(),
                                       func.max(InboundEvent.processed_at))
                                .group_by(InboundEvent.status)).all()
    finally:
        engine.dispose()
    statuses = {r[0]: r[1] for r in rows}
    done = sum(n for s, n in statuses.items() if s != "received")
    stamps = [r[2] for r in rows if r[0] != "received" and r[2] is not None]
    return Processing(done, statuses, max(stamps) if stamps else None)


def wait_processed(url: str, expected: int, timeout: float) -> tuple[Processing, float]:
    """Poll until ``expected`` events left 'received'; returns the last state and time waited."""
    started = time.monotonic()
    while True:
        state = processing_state(url)
        waited = time.monotonic() - started
        if state.done >= expected or waited >= timeout:
            return state, waited
        time.sleep(0.5)


# --------------------------------------------------------------------------- report


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def report_drive(result: DriveResult, baseline_rate: float) -> float:
    rate = result.accepted / result.elapsed_s if result.elapsed_s else 0.0
    FIGURES.update(accepted_per_s=rate, p50_ms=percentile(result.latencies_ms, 50),
                   p99_ms=percentile(result.latencies_ms, 99), errors=result.errors,
                   baseline_per_s=baseline_rate)
    print(f"accepted events/s: {rate:.1f}")
    print(f"p50 latency ms: {percentile(result.latencies_ms, 50):.2f}")
    print(f"p99 latency ms: {percentile(result.latencies_ms, 99):.2f}")
    print(f"errors: {result.errors}")
    if result.errors:
        print(f"  responses: {dict(result.statuses)}")
    print(f"baseline events/s: {baseline_rate:.1f}")
    print(f"ratio service/baseline: {rate / baseline_rate:.3f}")
    http_rate = FIGURES.get("http_baseline_per_s")
    if http_rate:
        print(f"ratio service/HTTP baseline: {rate / http_rate:.3f}")
    return rate


def report_processing(state: Processing, waited: float, expected: int,
                      first_send_wall: float) -> None:
    if state.done < expected:
        print(f"processed events/s (end to end): n/a - only {state.done}/{expected} processed "
              f"after waiting {waited:.0f}s; statuses {state.statuses}")
        return
    assert state.last_processed is not None
    span = state.last_processed.timestamp() - first_send_wall
    FIGURES.update(processed_per_s=state.done / span)
    print(f"processed events/s (end to end): {state.done / span:.1f}")
    print(f"  {state.done} events processed {span:.1f}s after the first send; "
          f"statuses {state.statuses}")


# --------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS,
                        help=f"webhooks to send (default {DEFAULT_EVENTS})")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY,
                        help=f"concurrent clients (default {DEFAULT_CONCURRENCY})")
    parser.add_argument("--workers", type=int, default=1,
                        help="event workers: 1 = serve alone; N > 1 adds N-1 'returnbridge "
                        "worker' processes; 0 = serve --no-worker (ingest only)")
    parser.add_argument("--events-per-return", type=int, default=1, metavar="K",
                        help="K webhooks per return (created, updates, closed; 1 = every "
                        "event a new return, the dearest kind; real returns have 3-6)")
    parser.add_argument("--backlog", action="store_true",
                        help="store every webhook first (serve --no-worker), then start "
                        "--workers 'returnbridge worker' processes on the backlog and report "
                        "their steady processing rate (a catch-up after an outage or a bulk "
                        "close: what extra workers add, without the webhooks' own CPU)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="offered load in requests/s (default: as fast as answered)")
    parser.add_argument("--json", default="", metavar="PATH",
                        help="also write the figures as JSON to PATH")
    parser.add_argument("--postgres", nargs="?", const=DEFAULT_POSTGRES, default=None,
                        metavar="URL",
                        help="run the service on PostgreSQL; URL of a server database to "
                             f"create a scratch database from (default {DEFAULT_POSTGRES})")
    args = parser.parse_args()
    if args.events < 1 or args.concurrency < 1 or args.events_per_return < 1:
        parser.error("--events, --concurrency and --events-per-return must be at least 1")
    if args.backlog and (args.workers < 1 or args.rate):
        parser.error("--backlog needs --workers 1 or more and no --rate")
    return args


def run_baseline(mp: multiprocessing.context.SpawnContext, directory: Path,
                 deliveries: list[Delivery]) -> float:
    with mp.Pool(1) as pool:
        elapsed, stored = pool.apply(baseline, (str(directory / "baseline.db"), deliveries))
    if stored != len(deliveries):
        print(f"baseline stored only {stored}/{len(deliveries)} (signature check failed)")
    return stored / elapsed


KHAOS_PAGE = 1000


def time_khaos_page(base_url: str, config: Path) -> None:
    """Khaos's first poll after the run: one page of up to KHAOS_PAGE ready returns (JSON,
    the demo's format, over HTTP); then the same returns asked for by name as XML."""
    started = time.perf_counter()
    r = httpx.get(f"{base_url}/khaos/returns", auth=(KHAOS_USER, KHAOS_PASSWORD), timeout=60)
    elapsed_ms = (time.perf_counter() - started) * 1000
    served = r.content.count(b'"AssociatedRef"') if r.status_code == 200 else 0
    print(f"khaos page: {served} returns in {elapsed_ms:.0f} ms (HTTP {r.status_code}, "
          f"{len(r.content)} bytes)")
    FIGURES.update(khaos_page_ms=elapsed_ms, khaos_page_returns=served)
    if served:
        time_khaos_page_xml(config, sorted(set(re.findall(
            r'"AssociatedRef":\s*"([^"]+)"', r.text))))


def time_khaos_page_xml(config: Path, refs: list[str]) -> None:
    """The same returns served again as XML by the service's own code (``serve_page``, in
    this process: the HTTP route answers in the configured format only), asked for by name
    as Khaos does with SpecificIDs, so each gets its redelivery note too: a heavier path
    than a first poll. Warmed once on a few returns, as the service is after its first
    poll."""
    rt = Runtime.from_settings(load_settings(config))
    try:
        serve_page(rt, specific_ids=",".join(refs[:5]), fmt="XML")
        started = time.perf_counter()
        page = serve_page(rt, specific_ids=",".join(refs), fmt="XML")
        elapsed_ms = (time.perf_counter() - started) * 1000
    finally:
        rt.engine.dispose()
    returns = len(page.refs) if page.document.lstrip().startswith(b"<") else 0
    print(f"khaos page XML: {returns} returns in {elapsed_ms:.0f} ms (in process, "
          f"{len(page.document)} bytes)")
    FIGURES.update(khaos_page_xml_ms=elapsed_ms, khaos_page_xml_returns=returns)


def start_workers(config: Path, directory: Path, count: int) -> list[subprocess.Popen[bytes]]:
    """``count`` extra ``returnbridge worker`` processes, each with its own executor id."""
    procs = []
    for n in range(count):
        env = {**os.environ, "RB_CONFIG": str(config),
               "RB_SERVER__EXECUTOR_ID": f"bench-worker-{n + 2}"}
        with (directory / f"worker-{n + 2}.log").open("ab") as log:
            procs.append(subprocess.Popen([sys.executable, "-m", "returnbridge", "worker"],
                                          stdout=log, stderr=subprocess.STDOUT, env=env))
    return procs


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_service(mp: multiprocessing.context.SpawnContext, directory: Path,
                deliveries: list[Delivery], concurrency: int, database_url: str | None,
                baseline_rate: float, workers: int = 1, rate: float = 0.0) -> None:
    port = free_port()
    config, url = write_config(directory, port, database_url)
    migrate(url)
    service = ServiceProcess(config, port, directory / "service.log",
                             *(() if workers >= 1 else ("--no-worker",)))
    extra: list[subprocess.Popen[bytes]] = []
    try:
        service.start(env={"RB_KHAOS__PAGE_SIZE": str(KHAOS_PAGE)})
        extra = start_workers(config, directory, max(0, workers - 1))
        time.sleep(3.0 if extra else 0.0)  # let the extra workers start up
        with mp.Pool(1) as pool:
            result = pool.apply_async(drive, (f"{service.base_url}/webhooks/loop", deliveries,
                                              concurrency, rate)).get(DRIVE_DEADLINE_S + 60)
        report_drive(result, baseline_rate)
        if workers >= 1:
            state, waited = wait_processed(url, result.accepted, PROCESS_WAIT_S)
            report_processing(state, waited, result.accepted, result.first_send_wall)
            time_khaos_page(service.base_url, config)
    finally:
        stop_workers(extra)
        service.stop()


BACKLOG_WINDOW = (0.1, 0.9)  # the steady part of a catch-up: worker start-up and tail left out


def steady_rate(url: str) -> tuple[float, float]:
    """(events/s between the 10th and 90th percentile of processed_at, whole span in s)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            stamps = sorted(t.timestamp() for t in conn.execute(
                select(InboundEvent.processed_at)
                .where(InboundEvent.processed_at.is_not(None))).scalars())
    finally:
        engine.dispose()
    if len(stamps) < 10:
        return 0.0, 0.0
    low, high = (stamps[int(q * (len(stamps) - 1))] for q in BACKLOG_WINDOW)
    inside = sum(1 for t in stamps if low <= t <= high)
    return (inside / (high - low) if high > low else 0.0), stamps[-1] - stamps[0]


def all_workers_rate(logs: list[Path]) -> tuple[float, float]:
    """(events/s, seconds) while every worker was applying: from the first moment all of
    them had applied a batch to the last moment all of them still were, by their own "events
    applied" log lines (so neither start-up skew nor the tail of a finite backlog counts)."""
    batches: list[list[tuple[float, int]]] = []
    for log in logs:
        mine = []
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("event") == "events applied" and record.get("count"):
                    stamp = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
                    mine.append((stamp.timestamp(), int(record["count"])))
        if not mine:
            return 0.0, 0.0
        batches.append(mine)
    start = max(b[0][0] for b in batches)
    end = min(b[-1][0] for b in batches)
    if end <= start:
        return 0.0, 0.0
    applied = sum(n for b in batches for t, n in b if start < t <= end)
    return applied / (end - start), end - start


def run_backlog(mp: multiprocessing.context.SpawnContext, directory: Path,
                deliveries: list[Delivery], concurrency: int, database_url: str | None,
                workers: int) -> None:
    """Webhooks stored by ``serve --no-worker``; then ``workers`` worker processes, started
    together, work the backlog off while serve stays up (idle)."""
    port = free_port()
    config, url = write_config(directory, port, database_url)
    migrate(url)
    service = ServiceProcess(config, port, directory / "service.log", "--no-worker")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        service.start()
        with mp.Pool(1) as pool:
            result = pool.apply(drive, (f"{service.base_url}/webhooks/loop", deliveries,
                                        concurrency))
        print(f"backlog stored: {result.accepted} webhooks ({result.errors} errors)")
        procs = start_workers(config, directory, workers)
        state, waited = wait_processed(url, result.accepted, PROCESS_WAIT_S)
        if state.done < result.accepted:
            print(f"backlog: only {state.done}/{result.accepted} processed after "
                  f"{waited:.0f}s; statuses {state.statuses}")
            return
        middle, span = steady_rate(url)
        rate, together = all_workers_rate(
            [directory / f"worker-{n + 2}.log" for n in range(workers)])
        FIGURES.update(backlog_per_s=rate, backlog_middle_per_s=middle, backlog_span_s=span)
        print(f"backlog processed by {workers} worker(s): {rate:.1f} events/s while all "
              f"applied ({together:.1f}s); {middle:.1f}/s over the middle 80%; all "
              f"{state.done} in {span:.1f}s; statuses {state.statuses}")
    finally:
        stop_workers(procs)
        service.stop()


def main() -> None:
    args = parse_args()
    if args.backlog:
        main_backlog(args)
        return
    mp = multiprocessing.get_context("spawn")
    deliveries = make_deliveries(args.events, args.events_per_return)
    backend = "postgresql" if args.postgres else "sqlite"
    print(f"returnbridge ingest bench: {args.events} signed Loop webhooks, "
          f"concurrency {args.concurrency}, service on {backend}, workers {args.workers}, "
          f"offered {args.rate or 'max'}/s, loopback 127.0.0.1")
    with tempfile.TemporaryDirectory(prefix="returnbridge-bench-") as tmp:
        directory = Path(tmp)
        # The baseline runs first, on an otherwise idle machine (no service, no workflows).
        baseline_rate = run_baseline(mp, directory, deliveries)
        if not args.rate:
            http_rate = run_http_baseline(mp, directory, deliveries, args.concurrency)
            FIGURES.update(http_baseline_per_s=http_rate)
            print(f"HTTP baseline events/s (bare ASGI app on uvicorn, HMAC + one INSERT each, "
                  f"same driver): {http_rate:.1f}")
        if args.postgres:
            with scratch_database(args.postgres, prefix="rb_bench") as url:
                run_service(mp, directory, deliveries, args.concurrency, url, baseline_rate,
                            args.workers, args.rate)
        else:
            run_service(mp, directory, deliveries, args.concurrency, None, baseline_rate,
                        args.workers, args.rate)
    if args.json:
        Path(args.json).write_text(json.dumps(FIGURES), encoding="utf-8")


def main_backlog(args: argparse.Namespace) -> None:
    mp = multiprocessing.get_context("spawn")
    deliveries = make_deliveries(args.events, args.events_per_return)
    backend = "postgresql" if args.postgres else "sqlite"
    print(f"returnbridge backlog bench: {args.events} signed Loop webhooks stored, then "
          f"{args.workers} worker process(es) on {backend}")
    with tempfile.TemporaryDirectory(prefix="returnbridge-bench-") as tmp:
        if args.postgres:
            with scratch_database(args.postgres, prefix="rb_bench") as url:
                run_backlog(mp, Path(tmp), deliveries, args.concurrency, url, args.workers)
        else:
            run_backlog(mp, Path(tmp), deliveries, args.concurrency, None, args.workers)
    if args.json:
        Path(args.json).write_text(json.dumps(FIGURES), encoding="utf-8")


if __name__ == "__main__":
    with suppress(KeyboardInterrupt):
        main()
