"""Found by the 10,000-return chaos campaign (issue #16): a refund workflow whose step ran
out of retries (Shopify timing out, with 20% faults) ended in ERROR, and because the refund
gate starts every return's workflow under the same id, it was never started again: three
refunds of 4,000 were never paid. A new attempt is started under a new id instead; every
payment is keyed by the return, so an attempt can never pay twice."""

from __future__ import annotations

from returnbridge.flows.refunds.workflow import MAX_ATTEMPTS, attempt_id


def test_a_refund_whose_workflow_failed_gets_a_new_attempt() -> None:
    statuses = {"refund:ZZ-1": "ERROR", "refund:ZZ-1:attempt-2": "MAX_RECOVERY_ATTEMPTS_EXCEEDED"}
    assert attempt_id("refund:ZZ-1", statuses.get) == "refund:ZZ-1:attempt-3"


def test_a_running_or_finished_workflow_is_not_started_again() -> None:
    for status in ("PENDING", "ENQUEUED", "SUCCESS", "CANCELLED", None):
        assert attempt_id("refund:ZZ-2", {"refund:ZZ-2": status}.get) == "refund:ZZ-2"
    running_retry = {"refund:ZZ-3": "ERROR", "refund:ZZ-3:attempt-2": "PENDING"}
    assert attempt_id("refund:ZZ-3", running_retry.get) == "refund:ZZ-3:attempt-2"


def test_attempts_stop_at_the_limit() -> None:
    assert attempt_id("refund:ZZ-4", lambda _wid: "ERROR") is None
    assert MAX_ATTEMPTS >= 10
