"""Khaos pushes (ARCHITECTURE 5.7): StockUpload, StockStatusUpload and OrderStatusUpload.

Each push is stored as an inbound event with its raw bytes first (source ``khaos``, channel
``push``, topic = the push kind), then parsed and upserted into the mirror in one transaction
that also marks the event processed. The caller answers 200 only when ``receive_push``
returns; any database error propagates so that the route answers 500 and Khaos sends the same
data again (Khaos retries every non-200). A body that is not the documented document is kept
as an ``invalid`` event with a ``payload_invalid`` exception and still counts as stored.

After the mirror changed, call ``run_after_mirror_change``: every hook in
``AFTER_MIRROR_CHANGE`` is called with the runtime and the push kind; a failing hook is logged
and never affects the push.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

from returnbridge.adapters.errors import PayloadInvalid
from returnbridge.domain.exceptions import Problem
from returnbridge.erp.khaos.pushes import (
    PUSH_KINDS,
    PushKind,
    body_format,
    parse_order_statuses,
    parse_stock_statuses,
    parse_stock_upload,
)
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store import catalogue
from returnbridge.store.events import sha256
from returnbridge.store.khaos_repo import UnstorableValue
from returnbridge.store.models import InboundEvent, utcnow
from returnbridge.store.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)

AFTER_MIRROR_CHANGE: list[Callable[[Runtime, str], None]] = []
"""Called after a push changed the mirror, with (runtime, kind); kind is one of
"stock", "stock-status", "order-status". Register re-evaluation of held returns here."""

_MAX_PROBLEMS = 20


@dataclass(frozen=True)
class PushOutcome:
    kind: str
    event_id: int
    duplicate_body: bool  # the very same bytes were pushed before (still applied again)
    status: str  # "processed" | "partial" | "invalid"
    change: catalogue.MirrorChange
    problems: tuple[str, ...] = ()

    @property
    def mirror_changed(self) -> bool:
        return self.change.changed > 0


def _problem(kind: str, event_id: int, message: str, problems: tuple[str, ...]) -> Problem:
    shown = "; ".join(problems[:_MAX_PROBLEMS])
    more = f" (+{len(problems) - _MAX_PROBLEMS} more)" if len(problems) > _MAX_PROBLEMS else ""
    return Problem(
        type="payload_invalid",
        message=f"Khaos {kind} push (event {event_id}) {message}: {shown}{more}",
        dedupe_key=f"event:{event_id}",
        details={"event_id": str(event_id), "kind": kind, "error": shown[:2000]},
    )


def receive_push(rt: Runtime, kind: PushKind, body: bytes, *, content_type: str = "",
                 headers: dict[str, str] | None = None) -> PushOutcome:
    """Store ``body`` and upsert the mirror. Raises (e.g. SQLAlchemyError) when not persisted."""
    if kind not in PUSH_KINDS:
        raise ValueError(f"unknown Khaos push kind {kind!r}")
    with rt.unit_of_work() as uow:  # stored (committed) before anything else is tried
        stored = uow.events.store(
            source="khaos", body=body, headers=headers or {},
            dedupe_key=f"{kind}:{sha256(body)}", topic=kind, channel="push",
            trigger=body_format(body, content_type))
    with rt.unit_of_work() as uow:
        outcome = apply_push(uow, kind, body, stored.event_id, content_type=content_type,
                             duplicate_body=stored.duplicate)
    change = outcome.change
    log.info("khaos push stored", kind=kind, event_id=stored.event_id, status=outcome.status,
             inserted=change.inserted, updated=change.updated, unchanged=change.unchanged,
             deleted=change.deleted, problems=len(outcome.problems))
    return outcome


def apply_push(uow: UnitOfWork, kind: str, body: bytes, event_id: int, *,
               content_type: str = "", duplicate_body: bool = False) -> PushOutcome:
    """Parse a stored push and upsert the mirror in ``uow``; marks the event processed
    (or invalid, with a ``payload_invalid`` exception). Also the way to re-apply a stored
    ``khaos`` event found unprocessed (e.g. after a failed transaction)."""
    if kind not in PUSH_KINDS:
        raise ValueError(f"unknown Khaos push kind {kind!r}")
    now = utcnow()
    try:
        with uow.khaos.mirror_update():
            change, problems = _upsert(uow, kind, body, content_type, now)
    except UnstorableValue as exc:  # a value the database cannot hold: resending never helps
        unstorable = PayloadInvalid(f"a value in the push cannot be stored ({exc})")
        return _invalid(uow, kind, event_id, duplicate_body, unstorable)
    except PayloadInvalid as exc:
        return _invalid(uow, kind, event_id, duplicate_body, exc)
    if problems:
        uow.exceptions.raise_problem(_problem(kind, event_id,
                                     f"had {len(problems)} unusable entries (the rest were "
                                     "stored)", problems))
    uow.events.mark(event_id, "processed",
                        "; ".join(problems[:_MAX_PROBLEMS]) if problems else "")
    return PushOutcome(kind, event_id, duplicate_body, "partial" if problems else "processed",
                       change, problems)


def _invalid(uow: UnitOfWork, kind: str, event_id: int, duplicate_body: bool,
             exc: PayloadInvalid) -> PushOutcome:
    uow.events.mark(event_id, "invalid", str(exc))
    uow.exceptions.raise_problem(
        _problem(kind, event_id, "could not be read", (str(exc),)))
    log.warning("khaos push invalid; kept with a payload_invalid exception", kind=kind,
                event_id=event_id, error=str(exc)[:300])
    return PushOutcome(kind, event_id, duplicate_body, "invalid", catalogue.MirrorChange(),
                       (str(exc),))


def _upsert(uow: UnitOfWork, kind: str, body: bytes, content_type: str, now: datetime
            ) -> tuple[catalogue.MirrorChange, tuple[str, ...]]:
    if kind == "stock":
        upload = parse_stock_upload(body, content_type)
        change = uow.catalogue.upsert_stock_items(upload.items, upload.deleted, now=now)
        return change, upload.problems
    if kind == "stock-status":
        levels = parse_stock_statuses(body, content_type)
        return uow.catalogue.upsert_stock_levels(levels.statuses, now=now), levels.problems
    orders = parse_order_statuses(body, content_type)
    return uow.catalogue.upsert_order_statuses(orders.statuses, now=now), orders.problems


def reapply_event(uow: UnitOfWork, event: InboundEvent) -> PushOutcome:
    """Apply a stored ``khaos`` push event (source "khaos", channel "push") that is still
    ``received``, e.g. because the transaction after storing it failed. For the event pump."""
    if event.source != "khaos" or event.topic not in PUSH_KINDS:
        raise ValueError(f"event {event.id} is not a Khaos push")
    content_type = "application/xml" if event.trigger == "XML" else "application/json"
    return apply_push(uow, event.topic, event.body, event.id, content_type=content_type)


def run_after_mirror_change(rt: Runtime, kind: str) -> None:
    """Call every registered hook; a failing hook is logged, never raised."""
    for hook in list(AFTER_MIRROR_CHANGE):
        try:
            hook(rt, kind)
        except Exception as exc:
            log.error("after-mirror-change hook failed", kind=kind,
                      hook=getattr(hook, "__qualname__", repr(hook)), error=str(exc))
