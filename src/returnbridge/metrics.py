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
