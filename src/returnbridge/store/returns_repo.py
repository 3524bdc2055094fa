"""Returns, their lines and their timeline."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    Column,
    Connection,
    Table,
    event,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Mapper, Session, selectinload

from returnbridge.domain.khaos_status import KhaosStatus, move
from returnbridge.domain.model import ReturnCase
from returnbridge.domain.policy import Decision
from returnbridge.domain.receipts import effective_lines
from returnbridge.store.codec import case_from_json, case_to_json
from returnbridge.store.models import (
    ExceptionRow,
    ExchangeLineRow,
    KhaosDeliveryItem,
    ReturnLineRow,
    ReturnRow,
    TimelineEntry,
    utcnow,
)
from returnbridge.store.reads import reading


def case_of(row: ReturnRow) -> ReturnCase:
    return case_from_json(row.case_json)


_TIMELINE = cast(Table, TimelineEntry.__table__)
_LINES = cast(Table, ReturnLineRow.__table__)
_EXCHANGES = cast(Table, ExchangeLineRow.__table__)
_WAITING_TIMELINE = "_timeline_waiting"  # entries of a row not written yet


@event.listens_for(ReturnRow, "after_insert")
def _write_waiting_timeline(_mapper: Mapper[ReturnRow], connection: Connection,
                            row: ReturnRow) -> None:
    """The timeline entries added while the row was new, right after its INSERT, in order."""
    waiting = row.__dict__.pop(_WAITING_TIMELINE, None)
    if waiting:
        connection.execute(_TIMELINE.insert(), [{"return_id": row.id, **e} for e in waiting])


def _column_value(row: object, column: Column[Any]) -> Any:
    """``column``'s value on ``row``: set, or what its INSERT would write by default."""
    if column.key in row.__dict__:
        return row.__dict__[column.key]
    default = column.default
    if default is None:
        return None
    arg = getattr(default, "arg", None)
    return arg(None) if callable(arg) else arg


def _same_children(stored: Sequence[object], wanted: Sequence[object], table: Table) -> bool:
    """Whether ``wanted`` (new objects) would write what ``stored`` (rows) already hold, in
    the same order: every column but the keys."""
    if len(stored) != len(wanted):
        return False
    columns = [c for c in table.columns if not c.primary_key and not c.foreign_keys]
    return all(getattr(old, c.key) == _column_value(new, c)
               for old, new in zip(stored, wanted, strict=True) for c in columns)


def _set_lines(row: ReturnRow, lines: list[ReturnLineRow]) -> None:
    """Replace the return's lines, unless they are already these: an update of a return
    (a label, a note, a state) mostly leaves its lines as they were, and replacing them
    costs a DELETE and an INSERT of every line."""
    if row.id is None or not _same_children(row.lines, lines, _LINES):
        row.lines = lines


def _set_exchanges(row: ReturnRow, exchanges: list[ExchangeLineRow]) -> None:
    if row.id is None or not _same_children(row.exchanges, exchanges, _EXCHANGES):
        row.exchanges = exchanges


class ReturnsRepository:
    """Returns, their lines and their timeline, in one unit of work's session."""

    def __init__(self, session: Session) -> None:
        self._session = session
        # (source, source_return_id) -> the row, or None when it does not exist: what
        # ``prefetch_for_update`` read for a batch (and rows created since), so that
        # ``find_for_update`` needs no query of its own for those keys.
        self._known: dict[tuple[str, str], ReturnRow | None] = {}

    def prefetch_for_update(self, keys: Sequence[tuple[str, str]]) -> None:
        """Read and lock, in one query, the returns ``keys`` name (the event worker's batch:
        one round trip instead of one per event); absent ones are remembered as absent."""
        wanted = sorted({k for k in keys if k[1]} - set(self._known))
        if not wanted:
            return
        with reading(self._session, ReturnRow):
            rows = self._session.scalars(
                select(ReturnRow)
                .where(tuple_(ReturnRow.source, ReturnRow.source_return_id).in_(wanted))
                # An update compares and may replace a return's lines: read them with the
                # batch (one query each) rather than one lazy load per event.
                .options(selectinload(ReturnRow.lines), selectinload(ReturnRow.exchanges))
                .with_for_update()).all()
        self._known.update(dict.fromkeys(wanted))
        self._known.update({(row.source, row.source_return_id): row for row in rows})

    def find_for_update(self, source: str, source_return_id: str) -> ReturnRow | None:
        key = (source, source_return_id)
        if key in self._known:
            known = self._known[key]
            if known is None or known in self._session:  # (not one a savepoint rolled back)
                return known
        stmt = (
            select(ReturnRow)
            .where(ReturnRow.source == source, ReturnRow.source_return_id == source_return_id)
            .with_for_update()
        )
        return self._session.scalars(stmt).first()

    def by_ref(self, associated_ref: str) -> ReturnRow | None:
        return self._session.scalars(
            select(ReturnRow)
            .where(ReturnRow.associated_ref == associated_ref)
            .options(selectinload(ReturnRow.lines), selectinload(ReturnRow.exchanges))
        ).first()

    def save_case(self, row: ReturnRow | None, case: ReturnCase, *,
                  keep_lines: bool = False, lines_decided_next: bool = False) -> ReturnRow:
        """Create or update the row and its line tables from ``case``.

        The line tables hold the *effective* lines (split by receipts); once the policy has
        decided, ``apply_decision`` replaces them with the Khaos document lines. With
        ``keep_lines`` (after delivery) the stored document lines are left as served. With
        ``lines_decided_next`` the caller runs the policy at once and ``apply_decision``
        (given ``effective=case``) writes the lines, once, instead of twice; a new row is
        then not written yet (its ``id`` is None) until ``write_new``."""
        if row is None:
            row = ReturnRow(
                associated_ref=case.associated_ref, source=case.source,
                source_return_id=case.source_return_id, state=case.state.value,
                khaos_status=KhaosStatus.PENDING.value, first_seen_at=utcnow(),
            )
            self._session.add(row)
            self._known[(row.source, row.source_return_id)] = row
        row.order_ref = case.order_ref[:80]
        row.customer_email = case.customer.email[:255]
        row.currency = case.currency[:3]
        row.state = case.state.value
        row.source_state = case.source_state[:40]
        row.source_created_at = case.created_at
        row.source_updated_at = case.updated_at
        row.last_event_at = utcnow()
        row.case_json = case_to_json(case)
        if lines_decided_next and row.id is None:
            # New, and decided next: written once, decision and all, by ``write_new`` (or
            # the next flush); its timeline entries wait on the object until then.
            row.lines, row.exchanges = [], []
            return row
        if lines_decided_next or (keep_lines and row.id is not None):
            self._session.flush()
            return row
        self._write_effective_lines(row, case)
        self._session.flush()
        return row

    def _write_effective_lines(self, row: ReturnRow, case: ReturnCase) -> None:
        _set_lines(row, [
            ReturnLineRow(
                position=i, sku=line.sku[:100], quantity=line.quantity, unit_net=line.unit_net,
                unit_tax=line.unit_tax, unit_gross=line.unit_gross, discount=line.discount,
                reason=line.reason[:255], parent_reason=line.parent_reason[:255],
                condition=line.condition[:80], disposition=line.disposition.value,
                physical_return_expected=line.physical_return_expected,
                received_at=line.received_at, source_unit_ids=list(line.source_unit_ids),
            )
            for i, line in enumerate(effective_lines(case))
        ])
        _set_exchanges(row, [
            ExchangeLineRow(
                position=i, sku=ex.sku[:100], quantity=ex.quantity, unit_net=ex.unit_net,
                unit_tax=ex.unit_tax, unit_gross=ex.unit_gross, out_of_stock=ex.out_of_stock,
            )
            for i, ex in enumerate(case.exchanges)
        ])

    def apply_decision(self, row: ReturnRow, decision: Decision,
                       effective: ReturnCase | None = None) -> None:
        """Store the policy's answer: the Khaos document lines once released, the URN,
        ProcessReturn and why the return waits. ``effective``: the case whose lines
        ``save_case`` left to this call (``lines_decided_next``); stored as they are when
        the return is not released."""
        row.khaos_urn = decision.urn[:50]
        row.process_return = decision.process_return
        row.wait_reason = decision.wait_reason[:255]
        if not decision.release:
            if effective is not None:
                self._write_effective_lines(row, effective)
            return
        _set_lines(row, [
            ReturnLineRow(
                position=i, sku=d.line.sku[:100], quantity=d.line.quantity,
                unit_net=d.line.unit_net, unit_tax=d.line.unit_tax, unit_gross=d.line.unit_gross,
                discount=d.line.discount, reason=d.line.reason[:255],
                parent_reason=d.line.parent_reason[:255], condition=d.line.condition[:80],
                disposition=d.line.disposition.value,
                physical_return_expected=d.line.physical_return_expected,
                received_at=d.line.received_at, source_unit_ids=list(d.line.source_unit_ids),
                khaos_reason_id=d.khaos_reason_id, processing=d.processing.value,
            )
            for i, d in enumerate(decision.document)
        ])
        if decision.exchanges:  # items sent without a SKU carry their resolved StockCode now
            _set_exchanges(row, [
                ExchangeLineRow(
                    position=i, sku=ex.sku[:100], quantity=ex.quantity, unit_net=ex.unit_net,
                    unit_tax=ex.unit_tax, unit_gross=ex.unit_gross, out_of_stock=ex.out_of_stock,
                )
                for i, ex in enumerate(decision.exchanges)
            ])

    def add_timeline(self, row: ReturnRow, kind: str, message: str,
                     evidence: dict[str, Any] | None = None) -> None:
        """One timeline entry, written at once with a plain INSERT: an entry is never changed
        after, so it needs no ORM object (which cost the event worker a flush's work for
        each of a return's two or three entries). Entries are numbered in call order."""
        entry = {"at": utcnow(), "kind": kind, "message": message, "evidence": evidence or {}}
        if row.id is None:  # a new return not written yet: written right after it
            waiting: list[dict[str, Any]] = row.__dict__.setdefault(_WAITING_TIMELINE, [])
            waiting.append(entry)
            return
        self._session.connection().execute(_TIMELINE.insert(), {"return_id": row.id, **entry})

    def write_new(self, row: ReturnRow) -> int:
        """Write a new row (``save_case`` with ``lines_decided_next`` left it unwritten) and
        what waits for it; its id. Call before anything needs the id."""
        if row.id is None:
            self._session.flush()
        return row.id

    def timeline(self, return_id: int) -> Sequence[TimelineEntry]:
        return self._session.scalars(
            select(TimelineEntry).where(TimelineEntry.return_id == return_id)
            .order_by(TimelineEntry.id)
        ).all()

    def add_timeline_entries(self, entries: Sequence[tuple[int, str, str, dict[str, Any]]]
                             ) -> None:
        """``(return id, kind, message, evidence)`` each, in one multi-row INSERT."""
        if entries:
            now = utcnow()
            self._session.execute(insert(TimelineEntry), [
                {"return_id": rid, "at": now, "kind": kind, "message": message,
                 "evidence": evidence} for rid, kind, message, evidence in entries])

    def mark_served(self, returns: Sequence[tuple[int, str]], why: str,
                    evidence: dict[str, Any]) -> None:
        """Hand a page of returns over: each ``(return id, its current Khaos status)`` moves
        to ``served`` with its timeline entry (as ``set_khaos_status`` writes it), in one
        UPDATE and one multi-row INSERT. A page holds up to a thousand returns; row by row,
        this was most of the page's time. The page was read as plain rows, so no ORM
        object of these returns is in the session to bring up to date."""
        if not returns:
            return
        before = [(rid, KhaosStatus(status)) for rid, status in returns]
        for _, current in before:
            move(current, KhaosStatus.SERVED)  # refuses a move the lifecycle does not allow
        now = utcnow()
        self._session.execute(
            update(ReturnRow).where(ReturnRow.id.in_([rid for rid, _ in before]))
            .values(khaos_status=KhaosStatus.SERVED.value, served_at=now)
            .execution_options(synchronize_session=False))
        why = why.strip()
        self.add_timeline_entries([
            (rid, "khaos_status",
             f"{current.value} -> {KhaosStatus.SERVED.value}" + (f": {why}" if why else ""),
             evidence)
            for rid, current in before])

    def set_khaos_status(self, row: ReturnRow, target: KhaosStatus, why: str,
                         evidence: dict[str, Any] | None = None) -> bool:
        """Move the Khaos status and write it to the timeline; False when already there."""
        current = KhaosStatus(row.khaos_status)
        if current is target:
            return False
        move(current, target)
        row.khaos_status = target.value
        now = utcnow()
        if target is KhaosStatus.READY:
            row.ready_at = now
        if target is KhaosStatus.SERVED:
            row.served_at = now
        why = why.strip()
        self.add_timeline(row, "khaos_status",
                     f"{current.value} -> {target.value}" + (f": {why}" if why else ""), evidence)
        return True

    # --- refunds, confirm, khaos ---

    def lock_by_ref(self, associated_ref: str, *, with_lines: bool = False) -> ReturnRow | None:
        """The return with this AssociatedRef, locked for the rest of the unit of work
        (its lines loaded with it when ``with_lines``)."""
        stmt = select(ReturnRow).where(ReturnRow.associated_ref == associated_ref)
        if with_lines:
            stmt = stmt.options(selectinload(ReturnRow.lines))
        return self._session.scalars(stmt.with_for_update()).first()

    def follow_ups(self, row: ReturnRow) -> Sequence[ReturnRow]:
        """The further documents of ``row``'s return (follow-ups), oldest first."""
        return self._session.scalars(select(ReturnRow).where(ReturnRow.parent_id == row.id)
                                     .order_by(ReturnRow.id)).all()

    def refs_due_for_refund(self, sources: Sequence[str], statuses: Sequence[str], *,
                            not_waiting_for: str, held_by: str, limit: int) -> list[str]:
        """AssociatedRefs of these sources' returns in these Khaos statuses, oldest credit
        first; not those waiting with ``not_waiting_for``, nor those with an open exception
        of type ``held_by``."""
        held = (select(ExceptionRow.id).where(
            ExceptionRow.return_id == ReturnRow.id,
            ExceptionRow.type == held_by,
            ExceptionRow.status == "open").exists())
        return list(self._session.scalars(
            select(ReturnRow.associated_ref)
            .where(ReturnRow.source.in_(list(sources)),
                   ReturnRow.khaos_status.in_(list(statuses)),
                   ReturnRow.wait_reason != not_waiting_for, ~held)
            .order_by(ReturnRow.credit_confirmed_at, ReturnRow.id).limit(limit)
        ))

    def credit_confirmed_of(self, sources: Sequence[str], limit: int) -> Sequence[ReturnRow]:
        """These sources' credit-confirmed returns, oldest credit first."""
        return self._session.scalars(
            select(ReturnRow).where(ReturnRow.source.in_(list(sources)),
                                    ReturnRow.khaos_status == KhaosStatus.CREDIT_CONFIRMED.value)
            .order_by(ReturnRow.credit_confirmed_at, ReturnRow.id).limit(limit)).all()

    def refs_in_status(self, statuses: Sequence[str], limit: int | None = None) -> list[str]:
        """AssociatedRefs of the returns in these Khaos statuses, served first."""
        stmt = (select(ReturnRow.associated_ref)
                .where(ReturnRow.khaos_status.in_(list(statuses)))
                .order_by(ReturnRow.served_at, ReturnRow.id))
        if limit:
            stmt = stmt.limit(limit)
        return list(self._session.scalars(stmt))

    def served_before(self, cutoff: datetime) -> Sequence[ReturnRow]:
        """Returns still ``served`` that were served before ``cutoff``."""
        return self._session.scalars(select(ReturnRow).where(
            ReturnRow.khaos_status == KhaosStatus.SERVED.value,
            ReturnRow.served_at.is_not(None), ReturnRow.served_at < cutoff)).all()

    def imported_before(self, cutoff: datetime) -> Sequence[ReturnRow]:
        """Returns still ``imported`` that were imported before ``cutoff``."""
        return self._session.scalars(select(ReturnRow).where(
            ReturnRow.khaos_status == KhaosStatus.IMPORTED.value,
            ReturnRow.imported_at.is_not(None), ReturnRow.imported_at < cutoff)).all()

    def mark_waiting(self, row: ReturnRow, reason: str) -> None:
        """The return waits, for ``reason``."""
        row.wait_reason = reason

    def clear_wait(self, row: ReturnRow) -> None:
        """The return no longer waits."""
        row.wait_reason = ""

    def set_refund_request(self, row: ReturnRow, request: dict[str, Any]) -> None:
        """Keep the platform's refund decision for the refund gate."""
        row.refund_request = request

    def note_khaos_return_code(self, row: ReturnRow, code: str) -> None:
        """Khaos's own code for the return (what ProcessReturn needs)."""
        row.khaos_order_code = code[:50]

    def mark_imported(self, row: ReturnRow, at: datetime) -> None:
        """Khaos has imported the return (seen there) at ``at``."""
        row.imported_at = at

    def note_credit_note_stage(self, row: ReturnRow, stage: str) -> None:
        """The credit note's current stage in Khaos."""
        row.credit_note_stage = stage[:40]

    def note_credit_note(self, row: ReturnRow, code: str, value: Decimal | None,
                         stage: str) -> None:
        """A credit note seen in Khaos (not cleared yet: the return is not confirmed)."""
        row.credit_note_code = code[:50]
        row.credit_note_value = value
        row.credit_note_stage = stage[:40]

    def confirm_credit_note(self, row: ReturnRow, code: str, value: Decimal | None,
                            stage: str, *, at: datetime, seen_by: str) -> None:
        """The cleared credit note that confirms the return, seen by ``seen_by``."""
        row.credit_note_code = code[:50]
        row.credit_note_value = value
        row.credit_note_stage = stage[:40]
        row.credit_confirmed_at = at
        row.credit_source = seen_by

    # --- ingest, decide ---

    def get(self, return_id: int) -> ReturnRow | None:
        return self._session.get(ReturnRow, return_id)

    def lock(self, return_id: int) -> ReturnRow | None:
        """The return with this id, locked for the rest of the unit of work."""
        return self._session.scalars(
            select(ReturnRow).where(ReturnRow.id == return_id).with_for_update()
        ).first()

    def by_source_id(self, source: str, source_return_id: str) -> ReturnRow | None:
        return self._session.scalars(select(ReturnRow).where(
            ReturnRow.source == source, ReturnRow.source_return_id == source_return_id)
        ).first()

    def children(self, row: ReturnRow) -> Sequence[ReturnRow]:
        """The further documents of ``row`` (split-off kept items, follow-ups)."""
        return self._session.scalars(select(ReturnRow).where(ReturnRow.parent_id == row.id)).all()

    def ids_with_status(self, statuses: Sequence[str], limit: int) -> list[int]:
        """Ids of returns in these Khaos statuses, oldest first."""
        return list(self._session.scalars(
            select(ReturnRow.id).where(ReturnRow.khaos_status.in_(list(statuses)))
            .order_by(ReturnRow.id).limit(limit)
        ))

    def note_first_seen_via(self, row: ReturnRow, via: str) -> None:
        row.first_seen_via = via

    def link_follow_up(self, child: ReturnRow, parent: ReturnRow) -> None:
        """``child`` is a further document of ``parent``'s return."""
        child.parent_id = parent.id
        child.first_seen_via = parent.first_seen_via

    def last_delivery_id(self, return_id: int) -> int | None:
        """The Khaos download (delivery) that last served this return, if any."""
        return self._session.scalars(
            select(KhaosDeliveryItem.delivery_id).where(KhaosDeliveryItem.return_id == return_id)
            .order_by(KhaosDeliveryItem.id.desc())).first()

    def customers_held_unknown(self) -> list[tuple[str, str]]:
        """(customer email, order ref) of returns with an open ``unknown_customer``."""
        rows = self._session.execute(
            select(ReturnRow.customer_email, ReturnRow.order_ref).join(
                ExceptionRow, ExceptionRow.return_id == ReturnRow.id)
            .where(ExceptionRow.type == "unknown_customer", ExceptionRow.status == "open")
        ).all()
        return [(str(email), str(order)) for email, order in rows]

    # --- platforms (sources/) ---

    def skus_of_source(self, source: str) -> set[str]:
        """SKUs on the stored lines of this platform's returns."""
        rows = self._session.scalars(
            select(ReturnLineRow.sku).join(ReturnRow, ReturnRow.id == ReturnLineRow.return_id)
            .where(ReturnRow.source == source).distinct())
        return {sku for sku in rows if sku}

    def count_first_seen_via(self, source: str, via: str) -> int:
        """How many of this platform's returns were first seen through ``via``."""
        count = self._session.scalar(select(func.count()).select_from(ReturnRow).where(
            ReturnRow.source == source, ReturnRow.first_seen_via == via))
        return int(count or 0)

    def known_source_ids(self, source: str, source_return_ids: Sequence[str]) -> set[str]:
        """Which of these platform return ids have a stored return."""
        return set(self._session.scalars(select(ReturnRow.source_return_id).where(
            ReturnRow.source == source, ReturnRow.source_return_id.in_(list(source_return_ids)))))

    def cases_by_source_id(self, source: str, source_return_ids: Sequence[str]
                           ) -> list[tuple[str, ReturnCase]]:
        """(platform return id, stored case) of these returns."""
        rows = self._session.execute(select(ReturnRow.source_return_id, ReturnRow.case_json)
                                     .where(ReturnRow.source == source,
                                            ReturnRow.source_return_id.in_(
                                                list(source_return_ids)))).all()
        return [(str(ref), case_from_json(case_json)) for ref, case_json in rows]

    def held_for_contact_name(self, source: str, not_states: Sequence[str],
                              limit: int) -> list[str]:
        """Platform return ids (oldest first, once each) held as ``unknown_customer`` for
        want of a contact name, except those in ``not_states``."""
        return list(dict.fromkeys(self._session.scalars(
            select(ReturnRow.source_return_id)
            .join(ExceptionRow, ExceptionRow.return_id == ReturnRow.id)
            .where(ReturnRow.source == source, ReturnRow.state.not_in(list(not_states)),
                   ExceptionRow.type == "unknown_customer",
                   ExceptionRow.status == "open",
                   ExceptionRow.dedupe_key.like("%:contact-name"))
            .order_by(ReturnRow.id).limit(limit))))
