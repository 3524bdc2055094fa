"""Propose a reason-mapping rule in the console, preview what it changes, save it.

Preview answers two questions before anything is stored:

- **would release**: held returns blocked by ``unmapped_return_reason`` whose every line
  maps once the rule is added, and that no other open blocking exception holds;
- **would map differently**: returns still to be sent to Khaos (pending, held, ready) with
  a line whose Khaos reason (or processing) changes, e.g. because the new rule comes before
  a file rule. Returns already with Khaos are never sent again, so a rule cannot change them.

Saving stores the rule (``console_mapping_rules``, checked before the TOML rules), writes
``mapping.rule_add`` to the audit log, and re-evaluates held and pending returns at once so
the released ones are ready for Khaos's next poll."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from returnbridge.config import ReasonMappingEntry
from returnbridge.domain.exceptions import Severity
from returnbridge.domain.khaos_status import KhaosStatus
from returnbridge.domain.policy import PolicyConfig
from returnbridge.domain.reasons import Processing, ReasonRule
from returnbridge.flows.decide.reevaluate import ReevaluationResult, reevaluate_open
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.exceptions.coverage import map_line
from returnbridge.store.models import utcnow
from returnbridge.store.unit_of_work import UnitOfWork

IN_FLIGHT = (KhaosStatus.PENDING.value, KhaosStatus.HELD.value, KhaosStatus.READY.value)
PREVIEW_LIMIT = 500


class RuleInvalid(ValueError):
    """The proposed rule is not a valid [[mapping.reasons]] entry."""


@dataclass
class Preview:
    rule: dict[str, str]
    would_release: list[dict[str, Any]] = field(default_factory=list)
    would_change: list[dict[str, Any]] = field(default_factory=list)
    still_unmapped: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False


def parse_rule(fields: dict[str, str]) -> ReasonRule:
    """Validate like returnbridge.toml does (same model, same messages)."""
    data = {k: (fields.get(k) or "").strip() for k in
            ("source", "reason", "condition", "disposition", "khaos_reason_id", "processing")}
    for key in ("source", "reason", "condition", "disposition"):
        data[key] = data[key] or "*"
    try:
        return ReasonMappingEntry.model_validate(data).rule()
    except Exception as exc:  # pydantic ValidationError: say it plainly
        errors = getattr(exc, "errors", None)
        if callable(errors):
            text = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in errors())
        else:
            text = str(exc)
        raise RuleInvalid(text) from None


def rule_dict(rule: ReasonRule) -> dict[str, str]:
    return {"source": rule.source, "reason": rule.reason, "condition": rule.condition,
            "disposition": rule.disposition, "khaos_reason_id": rule.khaos_reason_id,
            "processing": rule.processing.value}


def _with_rule(config: PolicyConfig, rule: ReasonRule, console_count: int) -> PolicyConfig:
    """The config as it would be after saving: the rule goes after the console rules."""
    rules = list(config.rules)
    rules.insert(console_count, rule)
    return replace(config, rules=tuple(rules))


def preview(rt: Runtime, rule: ReasonRule) -> Preview:
    current = rt.policy_config()
    proposed = _with_rule(current, rule, len(rt.console_rules()))
    result = Preview(rule=rule_dict(rule))
    with rt.unit_of_work() as uow:
        _held(uow, current, proposed, result)
        _changed(uow, current, proposed, result)
    return result


def _held(uow: UnitOfWork, current: PolicyConfig, proposed: PolicyConfig,
          result: Preview) -> None:
    blocked = uow.console.blocking_on_status(Severity.BLOCKING.value,
                                             KhaosStatus.HELD.value)
    by_return: dict[int, set[str]] = {}
    for rid, type_ in blocked:
        if rid is not None:
            by_return.setdefault(int(rid), set()).add(str(type_))
    candidates = sorted(r for r, types in by_return.items() if "unmapped_return_reason" in types)
    if not candidates:
        return
    returns = uow.console.returns_by_id(candidates[:5000])
    lines = uow.console.lines_by_return(list(returns))
    for rid in candidates[:5000]:
        ret = returns.get(rid)
        if ret is None:
            continue
        statuses = [map_line(proposed, ret.source, ln.reason, ln.condition, ln.disposition,
                             not ln.physical_return_expected) for ln in lines.get(rid, [])]
        unmapped = [ln.reason for ln, st in zip(lines.get(rid, []), statuses, strict=True)
                    if st[0] == "unmapped"]
        other = sorted(by_return[rid] - {"unmapped_return_reason"})
        entry = {"associated_ref": ret.associated_ref, "source": ret.source,
                 "reasons": sorted({ln.reason for ln in lines.get(rid, [])}),
                 "other_blocks": other}
        if not unmapped and not other:
            result.would_release.append(entry)
        else:
            entry["unmapped"] = sorted(set(unmapped))
            result.still_unmapped.append(entry)
    _ = current


def _changed(uow: UnitOfWork, current: PolicyConfig, proposed: PolicyConfig,
             result: Preview) -> None:
    combos = uow.console.line_combos(IN_FLIGHT)
    changed = []
    for source, reason, condition, disposition, physical in combos:
        before = map_line(current, source, reason, condition, disposition, not physical)
        after = map_line(proposed, source, reason, condition, disposition, not physical)
        if before[0] != "unmapped" and before[1:3] != after[1:3]:
            changed.append((source, reason, condition, disposition, before, after))
    for source, reason, condition, disposition, before, after in changed:
        refs = uow.console.refs_with_combo(IN_FLIGHT, source, reason, condition,
                                           disposition, PREVIEW_LIMIT)
        for ref, status in refs:
            if len(result.would_change) >= PREVIEW_LIMIT:
                result.truncated = True
                return
            result.would_change.append({
                "associated_ref": ref, "khaos_status": status, "reason": reason,
                "disposition": disposition,
                "before": f"{before[1]} ({before[2]}, {before[3]})",
                "after": f"{after[1]} ({after[2]}, {after[3]})",
                "note": "changes before it goes to Khaos"})


@dataclass(frozen=True)
class Saved:
    rule_id: int
    reevaluation: ReevaluationResult


def save(rt: Runtime, rule: ReasonRule, *, by: str, note: str = "") -> Saved:
    with rt.unit_of_work() as uow:
        rule_id = uow.mapping_rules.add(rule, note=note[:2000], by=by[:120], at=utcnow())
        uow.audit.record(actor=by, action="mapping.rule_add",
                         subject=f"mapping_rule:{rule_id}",
                         details={**rule_dict(rule), "note": note[:2000]})
    rt.forget_console_rules()
    result = reevaluate_open(rt, by=by, why=f"mapping rule {rule_id} saved in the console")
    return Saved(rule_id, result)


def remove(rt: Runtime, rule_id: int, *, by: str) -> bool:
    with rt.unit_of_work() as uow:
        row = uow.mapping_rules.deactivate(rule_id)
        if row is None:
            return False
        uow.audit.record(actor=by, action="mapping.rule_remove",
                         subject=f"mapping_rule:{rule_id}",
                         details={"khaos_reason_id": row.khaos_reason_id, "reason": row.reason})
    rt.forget_console_rules()
    reevaluate_open(rt, by=by, why=f"mapping rule {rule_id} removed in the console")
    return True


def console_rules_view(uow: UnitOfWork) -> list[dict[str, Any]]:
    return [{"id": r.id, **rule_dict(ReasonRule(
        source=r.source, reason=r.reason, disposition=r.disposition, condition=r.condition,
        khaos_reason_id=r.khaos_reason_id, processing=_processing(r.processing))),
        "note": r.note, "created_by": r.created_by, "created_at": r.created_at.isoformat()}
        for r in uow.mapping_rules.active_rows()]


def _processing(value: str) -> Any:
    return Processing(value)
