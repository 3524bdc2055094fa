"""The scheduled SOAP sweep runs as DBOS workflows on the rate-limited SOAP queue."""

from __future__ import annotations

import time
from collections.abc import Callable

from returnbridge.flows.confirm.queue import (
    enqueue_confirm_sweep,
    enqueue_process_return,
    register_soap_queue,
)
from returnbridge.flows.confirm.sightings import SOAP_QUEUE_NAME
from returnbridge.flows.console.queries import return_view
from returnbridge.flows.engine.durable import Durable
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store.returns_repo import ReturnsRepository
from tests.khaos_sandbox._support import (
    live,
    make_sandbox,
    refund,
    return_id_with_reason,
    send_returns,
)


def test_queued_sweep_confirms_through_dbos(runtime_factory: Callable[..., Runtime]) -> None:
    with live(runtime_factory) as app:
        refs = send_returns(app, [refund(return_id_with_reason(3000 + 4 * i, damaged=False))
                                  for i in range(3)])
        # Credit notes raised at import, and this installation counts stage Processing as
        # cleared, so one sweep confirms them (the queue is what is tested here).
        khaos = make_sandbox(app, credit_note_at="import")
        try:
            khaos.poll_once()
            soap_url = khaos.serve_soap()
            rt = runtime_factory(khaos={"soap_url": soap_url, "soap_refs_per_call": 2,
                                        "soap_calls_per_minute": 600,
                                        "cleared_credit_note_stages": ["20"]},
                                 server={"queue_poll_seconds": 0.1})
            durable = Durable(rt, worker=True, pump_interval=3600)
            durable.start()
            try:
                register_soap_queue(rt.settings)
                assert enqueue_confirm_sweep(rt) == 2  # 3 refs, 2 per call
                assert enqueue_confirm_sweep(rt) == 2  # same window: same workflow ids
                deadline = time.monotonic() + 60
                statuses: list[str] = []
                while time.monotonic() < deadline:
                    statuses = [str((return_view(rt, r) or {})["khaos_status"]) for r in refs]
                    if set(statuses) == {"credit_confirmed"}:
                        break
                    time.sleep(0.2)
                with rt.sessions() as session:
                    row = ReturnsRepository(session).by_ref(refs[0])
                    assert row is not None
                    return_code = row.khaos_order_code
                handle = enqueue_process_return(refs[0], return_code, "PSP-123")
                outcome = handle.get_result()
                again = enqueue_process_return(refs[0], return_code, "PSP-123").get_result()
                missing = enqueue_process_return("LR-NONE", "SR999999", "PSP-9").get_result()
            finally:
                durable.stop()
        finally:
            khaos.close()
    assert statuses == ["credit_confirmed"] * 3
    assert khaos.soap_calls.count("ExportOrderStatusEx") == 2
    assert SOAP_QUEUE_NAME == "khaos_soap"
    record = khaos.return_for(refs[0])
    assert record is not None and record.return_code == return_code
    assert (outcome, again, missing) == ("processed", "processed", "not_found")
    assert record.processed and record.manual_auth_code == "PSP-123"
    assert khaos.soap_calls.count("ProcessReturn") == 2  # the repeat reused the workflow
