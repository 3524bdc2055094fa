"""Re-evaluate held and pending returns when their cause may have changed.

Causes: a stock mirror push (a missing SKU now exists, an exchange item is back in stock),
a customer mirror update, a mapping change in the configuration (detected at start-up
by a fingerprint kept in ``watermarks``), or an operator's retry. Each return is
re-evaluated in its own transaction, so one bad return never stops the others, and the
exceptions that went away are resolved saying by what.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

from returnbridge.domain.khaos_status import KhaosStatus
from returnbridge.flows.decide.evaluate import evaluate
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store import returns_repo

log = logging.getLogger(__name__)

_OPEN = (KhaosStatus.HELD.value, KhaosStatus.PENDING.value)
MAPPING_FINGERPRINT = "policy:mapping-fingerprint"


@dataclass(frozen=True)
class ReevaluationResult:
    examined: int
    released: int
    still_held: int
    failed: int


def reevaluate_return(rt: Runtime, return_id: int, *, by: str, why: str) -> str:
    """Re-run the policy for one return; its new Khaos status (unchanged once delivered)."""
    with rt.unit_of_work() as uow:
        row = uow.returns.lock(return_id)
        if row is None:
            raise LookupError(f"no return with id {return_id}")
        before = row.khaos_status
        evidence = {"by": by, "why": why}
        status = evaluate(rt, uow, row, returns_repo.case_of(row), evidence,
                          cause=f"{why} ({by})", recount=False)
        if status == before and by != "returnbridge":  # a person asked: say what happened
            uow.returns.add_timeline(row, "reevaluated",
                                      f"re-evaluated ({why}, by {by}): still {status}",
                                      evidence)
        return status


def reevaluate_open(rt: Runtime, *, by: str, why: str, limit: int = 10_000,
                    held_only: bool = False) -> ReevaluationResult:
    """Re-evaluate every held (and, unless ``held_only``, pending) return, oldest first.

    Master-data changes can only unblock *held* returns; a configuration change can also
    change when pending ones are released."""
    statuses = (KhaosStatus.HELD.value,) if held_only else _OPEN
    with rt.unit_of_work() as uow:
        ids = uow.returns.ids_with_status(statuses, limit)
    released = held = failed = 0
    for return_id in ids:
        try:
            status = reevaluate_return(rt, return_id, by=by, why=why)
        except Exception:  # one bad return must not stop the others
            log.exception("re-evaluation of return %s failed", return_id)
            failed += 1
            continue
        if status == KhaosStatus.READY.value:
            released += 1
        elif status == KhaosStatus.HELD.value:
            held += 1
    return ReevaluationResult(len(ids), released, held, failed)


def mapping_fingerprint(rt: Runtime) -> str:
    s = rt.settings
    data = {"mapping": s.mapping.model_dump(mode="json"),
            "policy": s.policy.model_dump(mode="json"),
            "sku_mapping": s.khaos.sku_mapping,
            "currency": s.khaos.currency,
            "fallbacks": [rt.platform_settings(n).fallback_customer_urn
                          for n in rt.platforms.names()],
            "owners": [rt.platform_settings(n).goods_in_owner.value
                       for n in rt.platforms.names()]}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def reevaluate_if_mapping_changed(rt: Runtime) -> ReevaluationResult | None:
    """At start-up: if the mapping or policy configuration changed, re-evaluate."""
    now = mapping_fingerprint(rt)
    with rt.unit_of_work() as uow:
        mark = uow.watermarks.get(MAPPING_FINGERPRINT, for_update=True)
        if mark == now:
            return None
        first = mark is None
        uow.watermarks.set(MAPPING_FINGERPRINT, now)
    why = "configuration loaded" if first else "mapping or policy configuration changed"
    return reevaluate_open(rt, by="returnbridge", why=why)
