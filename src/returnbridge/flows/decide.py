"""Run the posting policy for one (not yet delivered) return and store what it decided.

Used by event processing, by re-evaluation when a cause changes (stock mirror, mapping,
customer mirror) and by the operator's retry. Opens the problems found, resolves the ones
that went away (saying by what), and moves the Khaos status.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy.orm import Session

from returnbridge.domain.khaos_status import DELIVERED, KhaosStatus
from returnbridge.domain.model import ReturnCase
from returnbridge.domain.policy import Decision, decide
from returnbridge.flows import facts
from returnbridge.flows.money import sync_off_note
from returnbridge.flows.runtime import Runtime
from returnbridge.store import exceptions_repo, returns_repo
from returnbridge.store.models import ReturnRow


def evaluate(rt: Runtime, session: Session, row: ReturnRow, case: ReturnCase,
             evidence: dict[str, Any], *, cause: str, recount: bool = True) -> str:
    """Decide and persist; returns the new Khaos status. No-op for delivered returns.

    ``recount`` False (a re-evaluation with no new news from the source) refreshes the
    exceptions' last-seen time without counting the same problem again."""
    if KhaosStatus(row.khaos_status) in DELIVERED:
        return row.khaos_status
    from returnbridge.flows.sku_fix import apply_aliases

    case = apply_aliases(session, case)  # SKU candidates a person chose in the console
    known = facts.gather(rt, session, case)
    decision = decide(case, rt.policy_config(session), rt.source_policy(case.source), known)
    problems = tuple(
        replace(p, details={**p.details, "origin": "policy"}) for p in decision.problems
    )
    returns_repo.apply_decision(row, decision)
    sync_off_note(session, row, case, decision.off_note, evidence)
    for problem in problems:
        exceptions_repo.raise_problem(session, problem, return_id=row.id,
                                      associated_ref=row.associated_ref,
                                      times=1 if recount else 0)
    for gone in exceptions_repo.resolve_missing(
        session, row.id, problems, by="returnbridge",
        how=f"re-evaluated after {cause}: the problem is gone",
    ):
        returns_repo.add_timeline(session, row, "exception_resolved",
                                  f"{gone.type} resolved: {gone.resolution}", evidence)
    _move_status(session, row, decision, evidence)
    if decision.release and decision.split_off:
        from returnbridge.flows.follow_up import open_split

        open_split(rt, session, row, case, decision.split_off, evidence)
    return row.khaos_status


def _move_status(session: Session, row: ReturnRow, decision: Decision,
                 evidence: dict[str, Any]) -> None:
    if decision.release:
        why = "validated; waiting for Khaos to fetch it"
        if decision.notes:
            why += " (" + "; ".join(decision.notes) + ")"
        returns_repo.set_khaos_status(session, row, KhaosStatus.READY, why, evidence)
    elif decision.blocked:
        types = sorted({p.type for p in decision.problems if p.blocking})
        returns_repo.set_khaos_status(session, row, KhaosStatus.HELD,
                                      "held until fixed: " + (", ".join(types)
                                                              or "a blocking problem"),
                                      evidence)
    else:
        returns_repo.set_khaos_status(
            session, row, KhaosStatus.PENDING,
            f"not released yet: {decision.wait_reason or 'waiting for the returns platform'}",
            evidence)
