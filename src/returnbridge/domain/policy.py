"""Posting policy (ARCHITECTURE 6): what a canonical return becomes in Khaos, and when.

``decide`` is a pure function of the return, the configuration and the facts the flow
looked up (catalogue items, stock levels, the customer mirror). It answers with the Khaos
document lines (reason per line, prices allocated to the penny, non-stock lines), the
customer URN, ``ProcessReturn``, whether the return may be released now, why not, and
every problem found. A return is released only when Khaos will accept it; anything else is
held with exceptions (which never delay other returns).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from returnbridge.domain.exceptions import Problem
from returnbridge.domain.lifecycle import ReturnState, rank
from returnbridge.domain.model import Disposition, ExchangeLine, ReturnCase, ReturnLine
from returnbridge.domain.money import ZERO, quantize
from returnbridge.domain.pricing import price_lines
from returnbridge.domain.reasons import Processing, ReasonRule, match_reason
from returnbridge.domain.receipts import effective_lines, unmatched_receipts
from returnbridge.domain.settlement import (
    CreditBasis,
    OffNote,
    Stage,
    money_problems,
    off_note,
)
from returnbridge.domain.source_checks import (
    contact_problems,
    currency_problems,
    resolve_blank_skus,
    source_out_of_stock,
    vat_rate_problems,
)


class GoodsInOwner(StrEnum):
    KHAOS = "khaos"
    RETURNS_PLATFORM = "returns_platform"


class ReleaseOn(StrEnum):
    """When a return may go to Khaos (ARCHITECTURE 6.3)."""

    DECIDED = "decided"  # goods-in in Khaos: once the outcome is decided (not in review)
    CLOSED = "closed"  # goods-in in Khaos, stricter: once the source has closed it
    RECEIVED = "received"  # goods-in on the platform: once units are received
    GRADED = "graded"  # goods-in on the platform: once units are received and graded


@dataclass(frozen=True)
class SourcePolicy:
    goods_in_owner: GoodsInOwner
    fallback_customer_urn: str
    release_on: ReleaseOn | None = None  # None: the owner's default (decided / graded)
    # The refund gate will process the return over SOAP (ProcessReturn with the refund's
    # auth code), which also processes it: do not process it on import as well.
    processed_by_refund_gate: bool = False

    @property
    def release_rule(self) -> ReleaseOn:
        if self.release_on is not None:
            return self.release_on
        return (ReleaseOn.DECIDED if self.goods_in_owner is GoodsInOwner.KHAOS
                else ReleaseOn.GRADED)


@dataclass(frozen=True)
class DefaultReason:
    """Per-disposition default when no ``[[mapping.reasons]]`` rule matches."""

    disposition: str
    khaos_reason_id: str
    processing: Processing


@dataclass(frozen=True)
class PolicyConfig:
    rules: tuple[ReasonRule, ...] = ()
    defaults: tuple[DefaultReason, ...] = ()
    tolerance: Decimal = Decimal("0.01")
    keep_item_reason_id: str = ""  # a no-stock reason for keep-item / no-shipment lines
    shipping_refund_sku: str = ""
    handling_fee_sku: str = ""
    non_stock_reason_id: str = ""
    stock_stale_after: timedelta = timedelta(hours=24)
    allow_non_stock_controlled_exchanges: bool = False
    fallback_address: bool = False  # an InvoiceAddress is configured for address-less returns
    fallback_contact: bool = False  # a contact name is configured for nameless customers
    currency: str = ""  # the Khaos account's currency; "" = not checked
    vat_rates: tuple[Decimal, ...] = ()  # allowed VAT rates; () = not checked
    vat_rate_tolerance: Decimal = Decimal("0.01")  # per unit


@dataclass(frozen=True)
class ItemFacts:
    """What the Khaos mirror says about one SKU (under the configured mapping)."""

    stock_code: str
    publish_on_web: bool = True
    discontinued: bool = False
    stock_controlled: bool = True
    deleted: bool = False


@dataclass(frozen=True)
class LevelFacts:
    available: Decimal
    updated_at: datetime


@dataclass(frozen=True)
class Facts:
    """Looked up by the flow before deciding; empty facts mean "not known"."""

    now: datetime
    catalogue_loaded: bool = False
    items: Mapping[str, ItemFacts] = field(default_factory=dict)
    candidates: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    levels: Mapping[str, LevelFacts] = field(default_factory=dict)
    customer_urn: str = ""  # from the customer mirror (email -> URN)
    # StockCodes for items sent without a SKU, by source_checks.sku_keys (variant / barcode)
    resolved_skus: Mapping[str, str] = field(default_factory=dict)


class LineKind(StrEnum):
    GOODS = "goods"
    SHIPPING_REFUND = "shipping_refund"
    HANDLING_FEE = "handling_fee"


@dataclass(frozen=True)
class DocumentLine:
    """One ``ReturnedItems`` entry of the Khaos document."""

    line: ReturnLine
    khaos_reason_id: str
    processing: Processing
    kind: LineKind = LineKind.GOODS


# Kept for callers that only need the reason per source line.
@dataclass(frozen=True)
class LineDecision:
    khaos_reason_id: str
    processing: Processing


@dataclass(frozen=True)
class Decision:
    release: bool
    urn: str
    document: tuple[DocumentLine, ...]
    process_return: bool
    problems: tuple[Problem, ...]
    wait_reason: str = ""
    notes: tuple[str, ...] = ()
    open_units: int = 0  # units still expected (not in this document)
    # Keep-item lines of a return that also has goods coming back: they go as their own
    # document, processed on import, instead of waiting for the parcel (ARCHITECTURE 6.3).
    split_off: tuple[DocumentLine, ...] = ()
    # Shipping refund / handling fee not on the document (no SKU configured): each is an
    # open reconciliation item for finance (flows/decide/money.py persists them).
    off_note: tuple[OffNote, ...] = ()
    # The exchange items as they go to Khaos (blank SKUs resolved).
    exchanges: tuple[ExchangeLine, ...] = ()

    @property
    def blocked(self) -> bool:
        return any(p.blocking for p in self.problems)

    @property
    def lines(self) -> tuple[LineDecision, ...]:
        return tuple(LineDecision(d.khaos_reason_id, d.processing) for d in self.document)

    @property
    def credit_value(self) -> Decimal:
        return sum((d.line.unit_gross * d.line.quantity for d in self.document), ZERO)


_RESTOCKS = frozenset({Disposition.RESTOCK})
_NEVER_RESTOCK = frozenset({Disposition.WRITE_OFF, Disposition.RECYCLE, Disposition.DONATE,
                            Disposition.MISSING, Disposition.RESALE_HOLD})


def _problem(case: ReturnCase, type_: str, message: str, key: str,
             **details: str) -> Problem:
    return Problem(type=type_, message=message, dedupe_key=f"{case.associated_ref}:{key}",
                   details=details)


def _reason_for(case: ReturnCase, line: ReturnLine, config: PolicyConfig,
                problems: list[Problem]) -> tuple[str, Processing] | None:
    if not line.physical_return_expected and config.keep_item_reason_id:
        return config.keep_item_reason_id, Processing.NO_STOCK
    rule = match_reason(config.rules, source=case.source, reason=line.reason,
                        disposition=line.disposition.value, condition=line.condition)
    found: tuple[str, Processing] | None = None
    if rule is not None:
        found = rule.khaos_reason_id, rule.processing
    else:
        for default in config.defaults:
            if default.disposition in (line.disposition.value, "*"):
                found = default.khaos_reason_id, default.processing
                break
    what = (f"{case.source} reason {line.reason or '(none)'!r}, condition "
            f"{line.condition or '(none)'!r}, disposition {line.disposition.value!r}")
    if found is None:
        problems.append(_problem(
            case, "unmapped_return_reason",
            f"No reason mapping for {what} (SKU {line.sku}).",
            f"reason:{line.reason.casefold()}:{line.condition.casefold()}:"
            f"{line.disposition.value}",
            reason=line.reason, condition=line.condition, disposition=line.disposition.value,
            sku=line.sku,
        ))
        return None
    reason_id, processing = found
    unsafe = ""
    if processing is Processing.RESTOCK and line.disposition in _NEVER_RESTOCK:
        unsafe = (f"maps to Khaos reason {reason_id}, which returns goods to stock, but the "
                  f"unit was graded {line.disposition.value}")
    elif processing is Processing.RESTOCK and not line.physical_return_expected:
        unsafe = (f"maps to Khaos reason {reason_id}, which returns goods to stock, but the "
                  "customer keeps the item (no parcel comes back)")
    elif processing is not Processing.RESTOCK and line.disposition in _RESTOCKS:
        unsafe = (f"maps to Khaos reason {reason_id} ({processing.value}), but the unit was "
                  "graded resellable (back to stock)")
    if unsafe:
        problems.append(_problem(
            case, "unmapped_return_reason", f"SKU {line.sku}: {what} {unsafe}.",
            f"unsafe:{line.reason.casefold()}:{line.disposition.value}:{reason_id}",
            reason=line.reason, disposition=line.disposition.value, khaos_reason_id=reason_id,
            sku=line.sku,
        ))
        return None
    return found


def _release_state(case: ReturnCase, policy: SourcePolicy,
                   lines: tuple[ReturnLine, ...]) -> tuple[tuple[ReturnLine, ...], str, int]:
    """(lines that go in the document, why not yet or "", units left out)."""
    name = case.source
    if case.state in (ReturnState.CANCELLED, ReturnState.EXPIRED):
        return (), f"the return is {case.state.value} at {name}", 0
    if not lines:
        return (), "the return has no returned items yet", 0
    rule = policy.release_rule
    if rule is ReleaseOn.DECIDED:
        if case.state is ReturnState.REVIEW:
            return (), f"the return is in review at {name}; the outcome is not decided", 0
        return lines, "", 0
    if rule is ReleaseOn.CLOSED:
        if case.state is not ReturnState.CLOSED:
            return (), f"waiting for {name} to close the return", 0
        return lines, "", 0
    # Goods-in on the platform: only what physically arrived (and was graded) goes.
    needed = ReturnState.INSPECTED if rule is ReleaseOn.GRADED else ReturnState.RECEIVED
    keep = tuple(ln for ln in lines if not ln.physical_return_expected)
    arrived = tuple(ln for ln in lines if ln.physical_return_expected and ln.received_at
                    and (rule is ReleaseOn.RECEIVED or ln.disposition is not Disposition.UNKNOWN))
    left_out = sum(ln.quantity for ln in lines) - sum(ln.quantity for ln in keep + arrived)
    if rank(case.state) < rank(needed) and not keep:
        what = "received and graded" if rule is ReleaseOn.GRADED else "received"
        return (), f"waiting for {name} to report the goods {what}", left_out
    if not arrived and not keep:
        what = "graded" if rule is ReleaseOn.GRADED else "received"
        return (), f"no units have been {what} at {name} yet", left_out
    return keep + arrived, "", left_out


def _non_stock_lines(case: ReturnCase, config: PolicyConfig,
                     notes: list[str]) -> list[DocumentLine]:
    out: list[DocumentLine] = []
    s = case.settlement
    for kind, amount, sku, sign in (
        (LineKind.SHIPPING_REFUND, s.shipping_refund, config.shipping_refund_sku, 1),
        (LineKind.HANDLING_FEE, s.handling_fee, config.handling_fee_sku, -1),
    ):
        if amount == ZERO:
            continue
        label = kind.value.replace("_", " ")
        if sku and config.non_stock_reason_id:
            value = quantize(amount) * sign
            out.append(DocumentLine(
                ReturnLine(sku=sku, quantity=1, unit_net=value, unit_tax=ZERO,
                           unit_gross=value, physical_return_expected=False,
                           title=label.capitalize()),
                config.non_stock_reason_id, Processing.NO_STOCK, kind,
            ))
            notes.append(f"{label} {quantize(amount)} sent as non-stock line {sku}")
        else:
            category = "shipping" if kind is LineKind.SHIPPING_REFUND else kind.value
            notes.append(f"{label} {quantize(amount)} not on the Khaos document: listed as an "
                         f"open reconciliation item (category {category}) for finance "
                         f"(set policy.{kind.value}_sku and policy.non_stock_reason_id to "
                         "send it as a non-stock line)")
    return out


def credit_basis(case: ReturnCase, config: PolicyConfig, goods_net: Decimal,
                 goods_tax: Decimal, units: int) -> CreditBasis:
    """What the credit note will carry before handover (non-stock lines as configured)."""
    s = case.settlement
    lines_on = bool(config.non_stock_reason_id)
    shipping = (quantize(s.shipping_refund)
                if s.shipping_refund and config.shipping_refund_sku and lines_on else None)
    fee = (quantize(s.handling_fee)
           if s.handling_fee and config.handling_fee_sku and lines_on else None)
    return CreditBasis(goods_net=goods_net, goods_tax=goods_tax, shipping_line=shipping,
                       fee_line=fee, stage=Stage.BEFORE_HANDOVER, units=units)


def _money_problems(case: ReturnCase, config: PolicyConfig, lines: tuple[ReturnLine, ...],
                    problems: list[Problem], notes: list[str]
                    ) -> tuple[tuple[ReturnLine, ...], tuple[OffNote, ...]]:
    check = price_lines(lines, case.totals, config.tolerance)
    cur = case.currency or ""
    if check.allocated:
        notes.append(f"{check.allocated:+} {cur} of rounding allocated across lines so that "
                     "they add up to the source's header total".strip())
    basis = credit_basis(case, config, check.line_net, check.line_tax,
                         sum(ln.quantity for ln in lines))
    # One exception per gap and category (domain/settlement.py), never the same gap twice.
    problems.extend(money_problems(case, basis, config.tolerance))
    return check.lines, off_note(case, basis)


def _catalogue_problems(case: ReturnCase, facts: Facts, config: PolicyConfig,
                        lines: tuple[ReturnLine, ...], problems: list[Problem]) -> None:
    if not facts.catalogue_loaded:
        return
    for sku in dict.fromkeys(ln.sku for ln in lines if ln.sku):
        item = facts.items.get(sku)
        if item is None or item.deleted:
            near = facts.candidates.get(sku, ())
            hint = f" Nearest in the catalogue: {'; '.join(near)}." if near else ""
            problems.append(_problem(
                case, "sku_mismatch",
                f"SKU {sku} is not in the Khaos catalogue"
                f"{' (it is deleted there)' if item and item.deleted else ''}.{hint}",
                f"sku:{sku}", sku=sku, candidates="; ".join(near)))
    for ex in case.exchanges:
        if not ex.sku:
            continue  # no SKU: already held by source_checks.resolve_blank_skus
        item = facts.items.get(ex.sku)
        if item is None or item.deleted:
            near = facts.candidates.get(ex.sku, ())
            problems.append(_problem(
                case, "exchange_unknown_sku",
                f"Exchange item {ex.sku} is not in the Khaos catalogue."
                + (f" Nearest: {'; '.join(near)}." if near else ""),
                f"exchange-sku:{ex.sku}", sku=ex.sku, candidates="; ".join(near)))
            continue
        if not item.publish_on_web or item.discontinued:
            why = "is discontinued" if item.discontinued else "is not published to web"
            problems.append(_problem(
                case, "exchange_not_web_enabled",
                f"Exchange item {ex.sku} {why} in Khaos, so Khaos would refuse the exchange.",
                f"exchange-web:{ex.sku}", sku=ex.sku))
            continue
        if not item.stock_controlled:
            if not config.allow_non_stock_controlled_exchanges:
                problems.append(_problem(
                    case, "exchange_unknown_sku",
                    f"Exchange item {ex.sku} is not stock controlled in Khaos; exchanges of "
                    "such items are not allowed by policy.allow_non_stock_controlled_exchanges.",
                    f"exchange-nsc:{ex.sku}", sku=ex.sku))
            continue
        if ex.out_of_stock:
            continue  # the source's own word: source_checks.source_out_of_stock
        level = facts.levels.get(ex.sku)
        if level is None:
            why = "Khaos has not sent a stock level for it"
        elif facts.now - level.updated_at > config.stock_stale_after:
            why = (f"its stock level is stale (last update {level.updated_at:%Y-%m-%d %H:%M} "
                   "UTC)")
        elif level.available < ex.quantity:
            why = f"only {level.available.normalize():f} available, {ex.quantity} needed"
        else:
            continue
        problems.append(_problem(
            case, "exchange_out_of_stock",
            f"Exchange item {ex.sku} cannot be confirmed in stock: {why}.",
            f"exchange-stock:{ex.sku}", sku=ex.sku))


def decide(case: ReturnCase, config: PolicyConfig, policy: SourcePolicy,
           facts: Facts) -> Decision:
    problems: list[Problem] = []
    notes: list[str] = []
    case = resolve_blank_skus(case, facts.resolved_skus, problems)
    lines = effective_lines(case)
    for stray in unmatched_receipts(case):
        notes.append(f"receipt for {stray.quantity} unit(s) of "
                     f"{stray.sku or stray.variant_id or stray.line_item_id} matches no "
                     "returned line; ignored")
    priced, unlisted = _money_problems(case, config, lines, problems, notes)
    problems.extend(vat_rate_problems(case, lines, config.vat_rates, config.vat_rate_tolerance))
    problems.extend(currency_problems(case, config.currency))
    problems.extend(source_out_of_stock(case))
    chosen, wait, left_out = _release_state(case, policy, priced)
    # Validate everything the return holds, not just today's part, so problems surface early.
    document: list[DocumentLine] = []
    platform = policy.goods_in_owner is GoodsInOwner.RETURNS_PLATFORM
    # On the platform, ungraded units have no disposition yet: map only what is going now.
    to_map = chosen if platform else priced
    reasons = {id(ln): _reason_for(case, ln, config, problems) for ln in to_map}
    for ln in chosen:
        found = reasons[id(ln)]
        if found is not None:
            document.append(DocumentLine(ln, found[0], found[1]))
    if chosen:
        document.extend(_non_stock_lines(case, config, notes))
    _catalogue_problems(case, facts, config, priced, problems)

    urn = case.customer.urn or facts.customer_urn or policy.fallback_customer_urn
    if not urn:
        problems.append(_problem(
            case, "unknown_customer",
            f"No Khaos customer URN for {case.customer.email or 'this customer'} "
            "(not in the customer mirror, and no fallback URN for "
            f"{case.source}).", "customer", email=case.customer.email))
        problems[-1] = replace(problems[-1], next_action=(
            "Find or create the customer in Khaos and load it into the customer mirror "
            "('returnbridge khaos load-customers'), or set "
            f"[{case.source}].fallback_customer_urn; the return is re-evaluated."))
    if case.customer.address is None and not config.fallback_address:
        problems.append(_problem(
            case, "unknown_customer",
            f"{case.source} sent no address for {case.customer.email or 'the customer'}"
            ", and Khaos requires an InvoiceAddress on every return (set the "
            "policy.fallback_address_* keys to the fallback account's address).",
            "address", email=case.customer.email))
        problems[-1] = replace(problems[-1], next_action=(
            f"{case.source} sent no address: set [policy].fallback_address_line1, "
            "_town and _postcode (the fallback account's address) and restart, or add the "
            "return in Khaos by hand and resolve this exception; the URN "
            f"{'(' + urn + ') ' if urn else ''}is not the problem."))
    problems.extend(contact_problems(case, config.fallback_contact))
    if left_out and not wait:
        notes.append(f"{left_out} unit(s) not received yet; they stay open on this return")

    split: list[DocumentLine] = []
    if not platform:
        kept = [d for d in document
                if d.kind is LineKind.GOODS and not d.line.physical_return_expected]
        shipped = [d for d in document
                   if d.kind is LineKind.GOODS and d.line.physical_return_expected]
        if kept and shipped:
            split = kept
            document = [d for d in document if d not in kept]
            notes.append(f"{sum(d.line.quantity for d in kept)} kept unit(s) go as their own "
                         "document, processed on import; the rest waits for the parcel")
    goods = [d for d in document if d.kind is LineKind.GOODS]
    # Keep-item and donate lines move no stock: such a return is processed on import.
    all_keep = bool(goods) and all(
        not d.line.physical_return_expected or d.line.disposition is Disposition.DONATE
        for d in goods)
    blocked = any(p.blocking for p in problems)
    return Decision(
        release=bool(chosen) and not wait and not blocked,
        urn=urn,
        document=tuple(document),
        process_return=(platform and not policy.processed_by_refund_gate) or all_keep,
        problems=tuple(problems),
        wait_reason=wait,
        notes=tuple(notes),
        open_units=left_out,
        split_off=tuple(split),
        off_note=unlisted,
        exchanges=case.exchanges,
    )
