"""A Loop refund is recorded in Khaos through the rate-limited SOAP queue, once."""

from __future__ import annotations

import time
from collections.abc import Callable

from returnbridge.erp.khaos.soap import KhaosSoapClient
from returnbridge.flows.confirm.queue import register_soap_queue
from returnbridge.flows.confirm.soap_sweep import sweep_unconfirmed
from returnbridge.flows.console.queries import return_view
from returnbridge.flows.engine.durable import Durable
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.refunds.platform import enqueue_due
from tests.khaos_sandbox._support import (
    live,
    make_sandbox,
    refund,
    return_id_with_reason,
    send_returns,
)


def test_queued_recording_calls_process_return_once(
        runtime_factory: Callable[..., Runtime]) -> None:
    with live(runtime_factory) as app:
        opened = refund(return_id_with_reason(5100, damaged=False), "SCARF-GRY")
        [ref] = send_returns(app, [opened])
        khaos = make_sandbox(app, credit_note_at="import")
        try:
            assert khaos.poll_once() == 1
            soap_url = khaos.serve_soap()
            rt = runtime_factory(khaos={"soap_url": soap_url, "soap_calls_per_minute": 600,
                                         "cleared_credit_note_stages": ["20"]},
                                 server={"queue_poll_seconds": 0.1})
            with KhaosSoapClient(soap_url, timeout=10) as client:
                assert sweep_unconfirmed(rt, client).confirmed == 1
            closed = {**opened, "trigger": "return.closed", "state": "closed",
                      "refunds": [{"gateway": "shopify_payments", "amount": "39.50",
                                   "currency": "GBP", "provider_refund_id": "RF-5101"}]}
            send_returns(app, [closed, {
                "topic": "label", "trigger": "label.updated", "id": opened["id"],
                "label_status": "delivered", "label_updated_at": "2026-11-21T09:00:00+00:00",
                "carrier": "Royal Mail", "tracking_number": "RM5101GB"}])
            durable = Durable(rt, worker=True, pump_interval=3600)
            durable.start()
            try:
                register_soap_queue(rt.settings)
                assert enqueue_due(rt) == 1
                deadline = time.monotonic() + 60
                status = ""
                while time.monotonic() < deadline:
                    status = str((return_view(rt, ref) or {})["khaos_status"])
                    if status == "refund_recorded":
                        break
                    time.sleep(0.2)
                assert enqueue_due(rt) == 0  # recorded: no longer due
            finally:
                durable.stop()
        finally:
            khaos.close()
    assert status == "refund_recorded"
    record = khaos.return_for(ref)
    assert record is not None and record.manual_auth_code == "RF-5101"
    assert khaos.soap_calls.count("ProcessReturn") == 1
