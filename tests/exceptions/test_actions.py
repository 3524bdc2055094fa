import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.exceptions import actions
from returnbridge.flows.ingest.apply import apply_event
from returnbridge.sandbox.loop.samples import Scenario, return_payload
from returnbridge.store import audit
from returnbridge.store.events import store_event
from returnbridge.store.models import AuditEntry, ExceptionRow, utcnow
from returnbridge.store.returns_repo import ReturnsRepository
from tests.exceptions._seed import add_problem, add_return


def _seed_queue(rt: Runtime) -> dict[str, int]:
    with rt.sessions() as s, s.begin():
        a = add_return(s, "LR-1", [("TEE-BLK-M", "Too small", "", "restock")])
        b = add_return(s, "LR-2", [("JEAN-IND-32", "Changed my mind", "", "restock")],
                       khaos_status="ready")
        ids = {
            "unmapped": add_problem(s, "unmapped_return_reason", "LR-1:reason", ret=a,
                                    reason="Too small").id,
            "customer": add_problem(s, "unknown_customer", "LR-1:customer", ret=a).id,
            "sku": add_problem(s, "sku_mismatch", "LR-2:sku", ret=b,
                               candidates=json.dumps(["JEAN-IND-32X", "JEAN-IND-3"])).id,
            "tax": add_problem(s, "tax_drift", "LR-2:tax", ret=b).id,
            "signature": add_problem(s, "signature_invalid", "loop").id,
        }
        # Aged one day: first seen yesterday.
        s.get_one(ExceptionRow, ids["tax"]).first_seen_at = utcnow() - timedelta(days=1,
                                                                                  hours=2)
    return ids


def _listing(rt: Runtime, **filters: Any) -> actions.ExceptionListing:
    with rt.unit_of_work() as uow:
        return actions.list_exceptions(uow, **filters)


def _audit(rt: Runtime) -> list[AuditEntry]:
    with rt.sessions() as s:
        return list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def test_list_filters_by_status_owner_type_and_ref_with_ages(runtime: Runtime) -> None:
    ids = _seed_queue(runtime)
    everything = _listing(runtime)
    assert everything.total == 5 and {e["status"] for e in everything.items} == {"open"}
    assert {e["type"] for e in _listing(runtime, owner="cx").items} == {"unknown_customer"}
    assert [e["id"] for e in _listing(runtime, type="sku_mismatch").items] == [ids["sku"]]
    assert {e["type"] for e in _listing(runtime, ref="lr-1").items} == {
        "unmapped_return_reason", "unknown_customer"}
    finance = _listing(runtime, owner="finance").items
    assert [(e["type"], e["age"], e["age_days"]) for e in finance] == [
        ("tax_drift", "26h", 1.1)]
    assert finance[0]["runbook"] == "docs/runbooks/tax_drift.md"
    page = _listing(runtime, limit=2, offset=2)
    assert page.total == 5 and len(page.items) == 2
    assert _listing(runtime, status="resolved").total == 0
    assert _listing(runtime, status="all").total == 5


@pytest.mark.parametrize("bad", [{"status": "closed"}, {"owner": "sales"},
                                 {"type": "no_such_type"}])
def test_unknown_filters_are_refused_with_the_valid_choices(runtime: Runtime,
                                                            bad: dict[str, str]) -> None:
    with pytest.raises(actions.BadFilter, match=r"use one of|known types"):
        _listing(runtime, **bad)


def test_show_has_the_return_candidates_meaning_and_history(runtime: Runtime) -> None:
    ids = _seed_queue(runtime)
    with runtime.unit_of_work() as uow:
        view = actions.show_exception(uow, ids["sku"])
    assert view["candidates"] == ["JEAN-IND-32X", "JEAN-IND-3"]
    assert view["return"]["associated_ref"] == "LR-2"
    assert view["return"]["lines"][0]["sku"] == "JEAN-IND-32"
    assert "does not exist in the Khaos catalogue" in view["meaning"]
    assert view["history"] == []
    actions.ignore(runtime, ids["sku"], "alice", "fixed in Khaos by hand")
    with runtime.unit_of_work() as uow:
        view = actions.show_exception(uow, ids["sku"])
        no_return = actions.show_exception(uow, ids["signature"])
    assert [(h["actor"], h["action"], h["details"]["why"]) for h in view["history"]] == [
        ("alice", "exception.ignore", "fixed in Khaos by hand")]
    assert no_return["return"] is None and no_return["candidates"] == []


def test_resolve_is_audited_with_who_and_why_and_reopens_if_the_cause_returns(
        runtime: Runtime) -> None:
    ids = _seed_queue(runtime)
    result = actions.resolve(runtime, ids["tax"], "alice", "credit note CN123 adjusted")
    assert result.outcome == "resolved"
    assert result.exception["resolved_by"] == "alice"
    assert result.exception["resolution"] == "manual: credit note CN123 adjusted"
    [entry] = _audit(runtime)
    assert (entry.actor, entry.action, entry.subject) == ("alice", "exception.resolve",
                                                          f"exception:{ids['tax']}")
    assert entry.details["why"] == "credit note CN123 adjusted"
    assert entry.details["previous_status"] == "open"
    with runtime.sessions() as s:
        assert audit.verify_chain(s) == []
        ret = ReturnsRepository(s).by_ref("LR-2")
        assert ret is not None
        assert "resolved by alice (manual)" in ReturnsRepository(s).timeline(ret.id)[-1].message
    with pytest.raises(actions.ActionRefused, match="already resolved"):
        actions.resolve(runtime, ids["tax"], "bob", "again")
    # The same problem found again by a later evaluation re-opens it.
    with runtime.sessions() as s, s.begin():
        row = add_problem(s, "tax_drift", "LR-2:tax")
        assert row.status == "open" and row.resolution == "" and row.count == 2


def test_ignore_sticks_when_the_same_problem_is_raised_again(runtime: Runtime) -> None:
    ids = _seed_queue(runtime)
    result = actions.ignore(runtime, ids["customer"], "bob", "handled in Khaos by hand")
    assert result.outcome == "ignored" and "stays held" in result.message
    with runtime.sessions() as s:
        before = s.get_one(ExceptionRow, ids["customer"]).last_seen_at
    with runtime.sessions() as s, s.begin():
        add_problem(s, "unknown_customer", "LR-1:customer")
        add_problem(s, "unknown_customer", "LR-1:customer")
    with runtime.sessions() as s:
        row = s.get_one(ExceptionRow, ids["customer"])
        assert (row.status, row.count, row.resolved_by) == ("ignored", 3, "bob")
        assert row.last_seen_at >= before
        assert audit.verify_chain(s) == []
    assert ids["customer"] not in [e["id"] for e in _listing(runtime).items]
    assert [e["id"] for e in _listing(runtime, status="ignored").items] == [ids["customer"]]
    with pytest.raises(actions.ActionRefused, match="already ignored"):
        actions.ignore(runtime, ids["customer"], "bob", "again")


def test_resolve_and_ignore_need_a_reason(runtime: Runtime) -> None:
    ids = _seed_queue(runtime)
    for action in (actions.resolve, actions.ignore):
        with pytest.raises(actions.MissingReason, match="needs a reason"):
            action(runtime, ids["tax"], "alice", "   ")
    assert _audit(runtime) == []


def test_unknown_id_is_not_found_for_every_action(runtime: Runtime) -> None:
    with runtime.unit_of_work() as uow, pytest.raises(actions.ExceptionNotFound, match="999"):
        actions.show_exception(uow, 999)
    for call in (lambda: actions.resolve(runtime, 999, "a", "why"),
                 lambda: actions.ignore(runtime, 999, "a", "why"),
                 lambda: actions.retry(runtime, 999, "a")):
        with pytest.raises(actions.ExceptionNotFound):
            call()


def test_retry_refuses_what_it_cannot_re_evaluate(runtime: Runtime) -> None:
    ids = _seed_queue(runtime)
    with pytest.raises(actions.ActionRefused, match="does not concern one return"):
        actions.retry(runtime, ids["signature"], "alice")
    actions.resolve(runtime, ids["tax"], "alice", "done")
    with pytest.raises(actions.ActionRefused, match="only open exceptions"):
        actions.retry(runtime, ids["tax"], "alice")
    with runtime.sessions() as s, s.begin():
        served = add_return(s, "LR-3", [("TEE-BLK-M", "Too big", "", "restock")],
                            khaos_status="served")
        drift = add_problem(s, "status_drift", "LR-3:drift", ret=served).id
    with pytest.raises(actions.ActionRefused, match="never sends it again"):
        actions.retry(runtime, drift, "alice")


def _ingest(rt: Runtime, payload: dict[str, Any]) -> None:
    stored = store_event(rt.sessions, source="loop", body=json.dumps(payload).encode(),
                         headers={})
    apply_event(rt, stored.event_id)


def test_retry_re_evaluates_and_resolves_by_retry_once_the_cause_is_fixed(
        runtime_factory: Any) -> None:
    strict = runtime_factory(mapping={"reasons": [
        {"reason": "Too big", "khaos_reason_id": "6", "processing": "restock"}]})
    _ingest(strict, return_payload(12, Scenario("refund", ("TEE-BLK-M",))))  # "Too small"
    [exc] = _listing(strict, ref="LR-12").items
    assert exc["type"] == "unmapped_return_reason"

    still = actions.retry(strict, exc["id"], "alice", "checked")
    assert still.outcome == "still_open" and still.khaos_status == "held"

    fixed = runtime_factory()  # the catch-all mapping is configured now
    done = actions.retry(fixed, exc["id"], "alice", "added the mapping")
    assert done.outcome == "resolved" and done.khaos_status == "ready"
    assert done.exception["resolved_by"] == "alice"
    assert done.exception["resolution"] == (
        "by retry (added the mapping): re-evaluated, the problem is gone")
    assert [(e.actor, e.action, e.details["outcome"]) for e in _audit(fixed)] == [
        ("alice", "exception.retry", "still_open"), ("alice", "exception.retry", "resolved")]
    with fixed.sessions() as s:
        assert audit.verify_chain(s) == []


def test_resolving_a_blocking_exception_whose_cause_remains_reopens_it(
        runtime_factory: Any) -> None:
    strict = runtime_factory(mapping={"reasons": [
        {"reason": "Too big", "khaos_reason_id": "6", "processing": "restock"}]})
    _ingest(strict, return_payload(12, Scenario("refund", ("TEE-BLK-M",))))
    [exc] = _listing(strict, ref="LR-12").items
    result = actions.resolve(strict, exc["id"], "alice", "I think it is fine")
    assert result.outcome == "reopened" and result.khaos_status == "held"
    assert result.exception["status"] == "open"
    assert [(e.actor, e.action) for e in _audit(strict)] == [
        ("alice", "exception.resolve"), ("returnbridge", "exception.reopen")]

    fixed = runtime_factory()  # with the cause fixed, a manual resolve releases the return
    done = actions.resolve(fixed, exc["id"], "alice", "mapping added")
    assert done.outcome == "resolved" and done.khaos_status == "ready"
    assert done.exception["resolution"] == "manual: mapping added"
    with fixed.sessions() as s:
        assert audit.verify_chain(s) == []
