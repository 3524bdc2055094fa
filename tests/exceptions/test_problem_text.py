"""A problem that quotes what a source sent can hold NUL characters, which PostgreSQL
refuses in text and JSON; the exception is stored without them instead of failing the
request that found the problem (found by tests/web/test_fuzz_routes.py: a Khaos
order-status push with an OrderID of "\\x00" was answered 500)."""

from __future__ import annotations

from returnbridge.domain.exceptions import Problem
from returnbridge.flows.engine.runtime import Runtime


def test_nul_characters_are_taken_out_of_a_stored_exception(runtime: Runtime) -> None:
    problem = Problem(type="payload_invalid",
                      message="Statuses[0] (OrderID \x00): AssociatedRef must be text",
                      dedupe_key="push:\x00:1", details={"order\x00id": "a\x00b"})
    with runtime.unit_of_work() as uow:
        uow.exceptions.raise_problem(problem, associated_ref="LR-\x001")
        uow.exceptions.raise_problem(problem, associated_ref="LR-\x001")  # counted again
    with runtime.unit_of_work() as uow:
        row = uow.exceptions.find("payload_invalid", "push::1")
        assert row is not None
        assert row.message == "Statuses[0] (OrderID ): AssociatedRef must be text"
        assert row.associated_ref == "LR-1" and row.count == 2
        assert row.details == {"orderid": "ab"}
