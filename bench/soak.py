"""Soak benchmark (issue #12: "RSS flat across a 10-minute run"): ``returnbridge serve``
(SQLite, the demo config) under a steady load for N minutes, its resident memory sampled.

The load is what a quiet production day looks like, sped up: signed Loop return webhooks,
each a new return, at ``--rate`` per second (below what the worker applies, so nothing
piles up), and Khaos polling for its page every 15 s, as it does. Every 5 s the service's
VmRSS is read from /proc.

Flat means: the median RSS of the last minute is within 10% of the median of the second
minute (the first is warm-up: imports finish, caches fill, the first Khaos pages are built);
the least-squares slope from the second minute on is printed too.

    uv run --frozen python bench/soak.py [--minutes 10] [--rate 25] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx

from returnbridge.sandbox.demo import KHAOS_PASSWORD, KHAOS_USER, LOOP_SECRET, write_demo_config
from returnbridge.sandbox.loop.samples import DEMO_SCENARIOS, return_payload
from returnbridge.sandbox.loop.sender import php_json
from returnbridge.sandbox.service import ServiceProcess, free_port, process_tree
from returnbridge.sources.loop.signature import HEADER, sign
from returnbridge.store.db import make_engine
from returnbridge.store.migrate import upgrade

FIRST_ID = 700_001
SAMPLE_S = 5.0
KHAOS_POLL_S = 15.0
FLAT_WITHIN = 0.10


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children (serve's worker child, when it has one)."""
    total = 0.0
    for member in process_tree(pid):
        try:
            lines = Path(f"/proc/{member}/status").read_text().splitlines()
        except OSError:
            continue  # ended meanwhile
        total += sum(int(line.split()[1]) / 1024.0 for line in lines
                     if line.startswith("VmRSS:"))
    return total


def _send(base_url: str, rate: float, stop: threading.Event, counts: dict[str, int]) -> None:
    interval = 1.0 / rate
    due = time.monotonic()
    i = 0
    with httpx.Client(base_url=base_url, timeout=30) as client:
        while not stop.is_set():
            payload = return_payload(FIRST_ID + i, DEMO_SCENARIOS[i % len(DEMO_SCENARIOS)],
                                     order=3000 + i % 1000)
            body = php_json(payload)
            r = client.post("/webhooks/loop", content=body,
                            headers={HEADER: sign(body, LOOP_SECRET),
                                     "Content-Type": "application/json"})
            counts["sent"] += 1
            counts["accepted"] += r.is_success
            i += 1
            due += interval
            stop.wait(max(0.0, due - time.monotonic()))


def _poll_khaos(base_url: str, stop: threading.Event, counts: dict[str, int]) -> None:
    with httpx.Client(base_url=base_url, timeout=60,
                      auth=(KHAOS_USER, KHAOS_PASSWORD)) as client:
        while not stop.wait(KHAOS_POLL_S):
            r = client.get("/khaos/returns")
            if r.is_success:
                counts["served"] += r.content.count(b'"AssociatedRef"')


def slope_mb_per_min(samples: list[tuple[float, float]]) -> float:
    xs = [t / 60 for t, _ in samples]
    ys = [m for _, m in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def demo_service(directory: Path, log_name: str) -> ServiceProcess:
    """``returnbridge serve`` on the demo config and a fresh SQLite database in
    ``directory``, started."""
    port = free_port()
    config = write_demo_config(directory, port)
    engine = make_engine(f"sqlite:///{directory / 'returnbridge.db'}")
    upgrade(engine)
    engine.dispose()
    service = ServiceProcess(config, port, directory / log_name)
    service.start()
    assert service.proc is not None
    return service


def soak(minutes: float, rate: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="rb-soak-") as tmp:
        service = demo_service(Path(tmp), "soak.log")
        assert service.proc is not None
        pid = service.proc.pid
        stop = threading.Event()
        counts = {"sent": 0, "accepted": 0, "served": 0}
        threads = [threading.Thread(target=_send, args=(service.base_url, rate, stop, counts)),
                   threading.Thread(target=_poll_khaos, args=(service.base_url, stop, counts))]
        samples: list[tuple[float, float]] = []
        start = time.monotonic()
        try:
            for t in threads:
                t.start()
            while (elapsed := time.monotonic() - start) < minutes * 60:
                samples.append((elapsed, rss_mb(pid)))
                if len(samples) % 12 == 0:
                    print(f"  {elapsed / 60:4.1f} min: RSS {samples[-1][1]:.0f} MB, "
                          f"{counts['accepted']} webhooks accepted, {counts['served']} "
                          "returns served to Khaos", flush=True)
                time.sleep(SAMPLE_S)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=60)
            service.stop()
    second = [m for t, m in samples if 60 <= t < 120]
    last = [m for t, m in samples if t >= samples[-1][0] - 60]
    warm, end = statistics.median(second), statistics.median(last)
    settled = [(t, m) for t, m in samples if t >= 60]
    figures = {"minutes": minutes, "rate": rate, "warm_mb": warm, "end_mb": end,
               "peak_mb": max(m for _, m in samples), "growth": end / warm - 1,
               "slope_mb_per_min": slope_mb_per_min(settled),
               "accepted": counts["accepted"], "sent": counts["sent"],
               "served": counts["served"]}
    ok = figures["growth"] <= FLAT_WITHIN and counts["accepted"] == counts["sent"]
    print(f"soak: {minutes:g} min at {rate:g} webhooks/s ({counts['accepted']}/"
          f"{counts['sent']} accepted, {counts['served']} served to Khaos); RSS second "
          f"minute {warm:.0f} MB, last minute {end:.0f} MB ({figures['growth'] * 100:+.1f}%, "
          f"target within {FLAT_WITHIN * 100:.0f}%), peak {figures['peak_mb']:.0f} MB, slope "
          f"{figures['slope_mb_per_min']:+.2f} MB/min")
    print(f"  {'PASS' if ok else 'FAIL'}", flush=True)
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=25.0, help="webhooks per second")
    ap.add_argument("--json", help="also write the figures here (bench/run_all.py)")
    args = ap.parse_args()
    figures = soak(args.minutes, args.rate)
    if args.json:
        Path(args.json).write_text(json.dumps(figures), encoding="utf-8")


if __name__ == "__main__":
    main()
