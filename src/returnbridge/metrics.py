"""Prometheus metrics (exposed on /metrics by the web layer, counted anywhere)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

REGISTRY = CollectorRegistry()

WEBHOOKS = Counter("returnbridge_webhooks_total", "Webhook deliveries by source and result",
                   ["source", "result"], registry=REGISTRY)
KHAOS_POLLS = Counter("returnbridge_khaos_polls_total", "Khaos CReturnDownload polls",
                      registry=REGISTRY)
KHAOS_SERVED = Counter("returnbridge_khaos_returns_served_total",
                       "Returns handed to Khaos (first deliveries and redeliveries)",
                       registry=REGISTRY)
EVENTS_APPLIED = Counter("returnbridge_events_applied_total",
                         "Stored events applied, by source and outcome (processed, unhandled "
                         "for topics this version does not use, deferred, invalid)",
                         ["source", "outcome"], registry=REGISTRY)
EVENTS_FAILED = Counter("returnbridge_events_failed_total",
                        "Stored events that could not be processed after their retries (or "
                        "whose replay failed), by source", ["source"], registry=REGISTRY)
EVENTS_FAILED_NOW = Gauge("returnbridge_failed_events",
                          "Stored events in status failed right now, read from the database "
                          "when /metrics is scraped, by source", ["source"], registry=REGISTRY)
WORKER_PROCESS_UP = Gauge("returnbridge_worker_process_up",
                          "1 while the worker child of 'serve' runs ([server].worker_mode "
                          "process), 0 while it is down; absent in thread mode",
                          registry=REGISTRY)
WORKER_PROCESS_EXITS = Counter("returnbridge_worker_process_exits_total",
                               "Times the worker child of 'serve' died and was restarted",
                               registry=REGISTRY)
