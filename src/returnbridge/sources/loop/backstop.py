"""Loop API backstop and backfill (ARCHITECTURE 5.6).

Both list returns with ``filter=updated_at`` (one pass per state, windows of at most 120 days)
and store each return object as an inbound event (``channel="backstop"``, topic ``return``,
trigger ``backstop``), deduplicated by the sha256 of its bytes, so an unchanged return
re-read later is a harmless duplicate. Stored events go through the same apply path as
webhooks (the caller enqueues the returned ids; the event pump also picks them up).

* :func:`run_backstop` covers "since the last complete pass" (watermark ``loop:backstop``,
  moved only after a complete pass, each pass overlapping the previous one).
* :func:`run_backfill` covers an explicit history range and records its position after
  every page (watermark ``loop:backfill``) so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from prometheus_client import Counter

from returnbridge.adapters.prefetch import Prefetch
from returnbridge.adapters.values import ident, is_placeholder
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.metrics import REGISTRY
from returnbridge.sources.loop.client import LoopClient, LoopError, ReturnPage, windows
from returnbridge.sources.loop.settings import loop_settings
from returnbridge.store.events import IntegrityError, StoredEvent, sha256
from returnbridge.store.models import utcnow
from returnbridge.store.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)

BACKSTOP_WATERMARK = "loop:backstop"
BACKFILL_WATERMARK = "loop:backfill"
CHANNEL = "backstop"
TRIGGER = "backstop"

BACKSTOP_STORED = Counter(
    "returnbridge_loop_backstop_events_total",
    "Return objects read by the Loop backstop/backfill, by result (new, known)",
    ["result"], registry=REGISTRY)
BACKSTOP_GAPS = Counter(
    "returnbridge_loop_webhook_gaps_total",
    "Loop returns the backstop found that no webhook had delivered", registry=REGISTRY)


def return_event_body(element: dict[str, Any]) -> bytes:
    """The stored bytes of one listed return: compact JSON in the order Loop sent it, so an
    unchanged return gives the same bytes (and the same sha256) every time."""
    return json.dumps(element, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def webhook_gap_count(uow: UnitOfWork) -> int:
    """Loop returns whose first event came from the backstop, not a webhook."""
    return uow.returns.count_first_seen_via("loop", "backstop")


# --- shared page handling ----------------------------------------------------------------


@dataclass
class _Tally:
    pages: int = 0
    returns_seen: int = 0
    already_known: int = 0
    gaps: int = 0
    new_events: list[StoredEvent] = field(default_factory=list)
    details_calls: int = 0  # GET /warehouse/return/details for a customer's name


def _known_refs(rt: Runtime, refs: Iterable[str]) -> set[str]:
    """Return ids we already have a return row or a webhook event for."""
    wanted = sorted({r for r in refs if r})
    if not wanted:
        return set()
    with rt.unit_of_work() as uow:
        rows = uow.returns.known_source_ids("loop", wanted)
        hooks = uow.events.refs_seen_on("loop", "webhook", wanted)
    return rows | hooks


_HEADERS = {"x-returnbridge-origin": "loop-list-api"}


def _ref(element: dict[str, Any]) -> str:
    raw_id = element.get("id")
    return "" if isinstance(raw_id, dict | list | bool) else ident(raw_id)[:80]


def _has_name(element: dict[str, Any]) -> bool:
    """Whether a return object names its customer (the list view never does)."""
    for key, fields in (("customer_detail", ("first_name", "last_name")),
                        ("customer", ("first_name", "last_name")), ("address", ("name",))):
        part = element.get(key)
        if isinstance(part, dict) and any(
                isinstance(part.get(f), str) and not is_placeholder(part.get(f))
                for f in fields):
            return True
    return False


def _named_already(rt: Runtime, refs: list[str]) -> set[str]:
    """Return ids whose stored return already has the customer's name."""
    if not refs:
        return set()
    with rt.unit_of_work() as uow:
        rows = uow.returns.cases_by_source_id("loop", refs)
    named = set()
    for ref, case in rows:
        customer = case.customer
        if customer.first_name or customer.last_name:
            named.add(ref)
    return named


_CUSTOMER_KEYS = ("customer_detail", "address", "customer")
_NEVER_SERVED = frozenset({"cancelled", "canceled", "expired"})  # no Khaos document: no call


def _with_customer(api: LoopClient, ref: str, element: dict[str, Any],
                   tally: _Tally) -> dict[str, Any]:
    """``element`` with the customer's name and address from Loop's return details
    (``GET /warehouse/return/details``), when the details have them."""
    tally.details_calls += 1
    try:
        details = api.return_details(ref)
    except LoopError as exc:
        log.warning("loop_details_failed", return_id=ref, error=str(exc))
        return element
    if not _has_name(details):
        return element
    enriched = dict(element)
    for key in _CUSTOMER_KEYS:
        value = details.get(key)
        if isinstance(value, dict) or (key == "customer" and value and not element.get(key)):
            enriched[key] = value
    return enriched


def _complete_customers(rt: Runtime, api: LoopClient | None,
                        items: list[tuple[str, bytes, dict[str, Any]]], tally: _Tally
                        ) -> list[tuple[str, bytes, str]]:
    """(ref, stored body, dedupe key) for one page. List elements carry no customer name or
    address; for a new (not yet stored) element of a return we have no name for, the
    customer comes from the return's details. The dedupe key stays the sha256 of the list
    element as Loop sent it, so an unchanged element re-read later is still a duplicate
    and costs no further details call."""
    keys = [sha256(body) for _, body, _ in items]
    with rt.unit_of_work() as uow:
        stored = uow.events.stored_keys("loop", keys)
    nameless = [ref for (ref, _, element), key in zip(items, keys, strict=True)
                if ref and key not in stored and not _has_name(element)
                and str(element.get("state", "")).casefold() not in _NEVER_SERVED]
    named = _named_already(rt, sorted(set(nameless)))
    out: list[tuple[str, bytes, str]] = []
    for (ref, listed, element), key in zip(items, keys, strict=True):
        body = listed
        if (api is not None and ref in nameless and ref not in named
                and tally.details_calls < loop_settings(rt.settings).details_calls_per_pass):
            enriched = _with_customer(api, ref, element, tally)
            if enriched is not element:
                body = return_event_body(enriched)
                named.add(ref)
        out.append((ref, body, key))
    return out


def _complete_held(rt: Runtime, api: LoopClient, tally: _Tally) -> None:
    """Returns held for want of a contact name (the details budget of an earlier pass or
    backfill ran out): fetch their details with what is left of this pass's budget, oldest
    first, and store the ones that now name the customer as events."""
    budget = loop_settings(rt.settings).details_calls_per_pass - tally.details_calls
    if budget <= 0:
        return
    with rt.unit_of_work() as uow:
        refs = uow.returns.held_for_contact_name("loop", sorted(_NEVER_SERVED), budget)
    bodies: list[tuple[str, bytes, str]] = []
    for ref in refs:
        tally.details_calls += 1
        try:
            details = api.return_details(ref)
        except LoopError as exc:
            log.warning("loop_details_failed", return_id=ref, error=str(exc))
            continue
        if _has_name(details):
            body = return_event_body(details)
            bodies.append((ref, body, sha256(body)))
    if bodies:
        tally.new_events.extend(e for e in _store_batch(rt, bodies) if not e.duplicate)


def _store_batch(rt: Runtime, bodies: list[tuple[str, bytes, str]]) -> list[StoredEvent]:
    """Store one page's return objects in one transaction: the same result as calling
    ``store_event`` for each (dedupe by key, duplicates counted), much faster."""
    keyed: dict[str, tuple[str, bytes]] = {}
    for ref, body, key in bodies:
        keyed.setdefault(key, (ref, body))
    with rt.unit_of_work() as uow:
        ids, rows = uow.events.store_many(source="loop", channel=CHANNEL, topic="return",
                                          trigger=TRIGGER, headers=_HEADERS, bodies=keyed)
    out: list[StoredEvent] = []
    first_use: set[str] = set()
    for _, _, digest in bodies:
        new = digest in rows and digest not in first_use
        first_use.add(digest)
        out.append(StoredEvent(ids[digest], "loop", digest, duplicate=not new))
    return out


def _store_page(rt: Runtime, page: ReturnPage, tally: _Tally,
                api: LoopClient | None = None) -> None:
    tally.pages += 1
    tally.returns_seen += len(page.returns)
    bodies = _complete_customers(
        rt, api, [(_ref(element), return_event_body(element), element)
                  for element in page.returns], tally)
    try:
        stored = _store_batch(rt, bodies) if bodies else []
    except IntegrityError:  # a concurrent pass stored some of them: one by one instead
        stored = [_store_one(rt, ref, body, key) for ref, body, key in bodies]
    fresh: list[tuple[str, StoredEvent]] = []
    for (ref, _, _), event in zip(bodies, stored, strict=True):
        if event.duplicate:
            tally.already_known += 1
            BACKSTOP_STORED.labels("known").inc()
        else:
            fresh.append((ref, event))
            BACKSTOP_STORED.labels("new").inc()
    if fresh:
        known = _known_refs(rt, (ref for ref, _ in fresh))
        # A return with no webhook and no row yet: the webhook never came (or not yet).
        gaps = {ref for ref, _ in fresh if ref and ref not in known}
        tally.gaps += len(gaps)
        BACKSTOP_GAPS.inc(len(gaps))
        tally.new_events.extend(stored for _, stored in fresh)


def _store_one(rt: Runtime, ref: str, body: bytes, key: str) -> StoredEvent:
    """One event in its own transaction (dedupe by key, a duplicate counted)."""
    with rt.unit_of_work() as uow:
        return uow.events.store(source="loop", body=body, headers=dict(_HEADERS),
                                topic="return", trigger=TRIGGER, source_ref=ref,
                                channel=CHANNEL, dedupe_key=key)


def _read_mark(rt: Runtime, name: str) -> str | None:
    with rt.unit_of_work() as uow:
        return uow.watermarks.get(name)


def _write_mark(rt: Runtime, name: str, value: str | None) -> None:
    with rt.unit_of_work() as uow:
        uow.watermarks.set(name, value)


def _client(rt: Runtime, client: LoopClient | None) -> tuple[LoopClient, bool]:
    if client is not None:
        return client, False
    return LoopClient(loop_settings(rt.settings)), True


# --- backstop ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BackstopResult:
    start: datetime
    end: datetime
    pages: int
    returns_seen: int
    already_known: int
    gaps: int  # returns no webhook had told us about
    new_events: tuple[StoredEvent, ...]
    rate_limited: int  # 429 answers honoured
    throttled: int  # calls the local limiter held back

    @property
    def new_event_ids(self) -> list[int]:
        return [e.event_id for e in self.new_events]


def backstop_watermark(rt: Runtime) -> datetime | None:
    value = _read_mark(rt, BACKSTOP_WATERMARK)
    return datetime.fromisoformat(value) if value else None


def run_backstop(rt: Runtime, *, client: LoopClient | None = None,
                 now: datetime | None = None) -> BackstopResult:
    """One pass over returns updated since the last complete pass; the watermark moves to
    ``now`` only when every state and window was read. Loop errors propagate (typed
    ``LoopError``) and leave the watermark where it was."""
    settings = loop_settings(rt.settings)
    end = (now or utcnow()).astimezone(UTC)
    mark = backstop_watermark(rt)
    if mark is None:
        start = end - timedelta(hours=settings.backstop_first_lookback_hours)
    else:
        start = min(mark, end) - timedelta(minutes=settings.backstop_overlap_minutes)
    api, owned = _client(rt, client)
    before = (api.stats.rate_limited, api.stats.throttled)
    tally = _Tally()
    try:
        for page in api.iter_pages(start=start, end=end):
            _store_page(rt, page, tally, api)
        _complete_held(rt, api, tally)
    finally:
        if owned:
            api.close()
    _write_mark(rt, BACKSTOP_WATERMARK, end.isoformat())
    result = BackstopResult(start, end, tally.pages, tally.returns_seen, tally.already_known,
                            tally.gaps, tuple(tally.new_events),
                            api.stats.rate_limited - before[0], api.stats.throttled - before[1])
    return result


Enqueue = Callable[[str, str, int], None]


# --- backfill ----------------------------------------------------------------------------


@dataclass
class BackfillProgress:
    """Running totals for one backfill run, handed to the ``progress`` callback after every
    page (after that page's position has been saved)."""

    slices_total: int
    slices_done: int = 0
    state: str = ""
    window: tuple[datetime, datetime] | None = None
    pages: int = 0
    returns_seen: int = 0
    new_events: int = 0
    already_known: int = 0
    gaps: int = 0
    rate_limited: int = 0
    throttled: int = 0
    resumed: bool = False


@dataclass(frozen=True)
class BackfillResult:
    since: datetime
    until: datetime
    pages: int
    returns_seen: int
    already_known: int
    gaps: int
    new_events: tuple[StoredEvent, ...]
    rate_limited: int
    throttled: int
    resumed: bool  # this run continued an interrupted one

    @property
    def new_event_ids(self) -> list[int]:
        return [e.event_id for e in self.new_events]


def _position(since: datetime, until: datetime, slice_index: int, cursor: str) -> str:
    head = f"{since.isoformat()}|{until.isoformat()}|{slice_index}|"
    value = head + cursor
    # The column holds 255 characters; without the cursor the slice restarts (dedupe makes
    # re-reading harmless).
    return value if len(value) <= 255 else head


def _parse_position(value: str | None) -> tuple[datetime, datetime, int, str] | None:
    if not value:
        return None
    try:
        since, until, index, cursor = value.split("|", 3)
        return (datetime.fromisoformat(since), datetime.fromisoformat(until), int(index),
                cursor)
    except ValueError:
        return None


def backfill_position(rt: Runtime) -> tuple[datetime, datetime, int, str] | None:
    """(since, until, slice index, cursor) of an interrupted backfill, if any."""
    return _parse_position(_read_mark(rt, BACKFILL_WATERMARK))


def run_backfill(rt: Runtime, since: datetime, until: datetime | None = None, *,
                 progress: Callable[[BackfillProgress], None] | None = None,
                 client: LoopClient | None = None) -> BackfillResult:
    """Store every Loop return updated in [since, until] as an event. Resumes an interrupted
    run for the same ``since`` (and ``until``, when given) from its last saved page."""
    settings = loop_settings(rt.settings)
    since = since.astimezone(UTC) if since.tzinfo else since.replace(tzinfo=UTC)
    saved = backfill_position(rt)
    if until is None:
        until = saved[1] if saved and saved[0] == since else utcnow()
    until = until.astimezone(UTC) if until.tzinfo else until.replace(tzinfo=UTC)
    if until <= since:
        raise ValueError("--until must be after --since")
    states = list(settings.list_states)
    slices = [(w, s) for w in windows(since, until, timedelta(days=settings.max_window_days))
              for s in states]
    first, cursor, resumed = 0, "", False
    if saved and saved[0] == since and saved[1] == until:
        first, cursor, resumed = min(saved[2], len(slices)), saved[3], True
    api, owned = _client(rt, client)
    before = (api.stats.rate_limited, api.stats.throttled)
    tally = _Tally()
    status = BackfillProgress(slices_total=len(slices), slices_done=first, resumed=resumed)
    try:
        for index in range(first, len(slices)):
            window, state = slices[index]
            status.state, status.window = state, window
            start_cursor, cursor = cursor, ""
            # the next page is asked for while this one is stored: the rate limit, not
            # the storing, sets the pace
            pages = Prefetch(api.iter_state(start=window[0], end=window[1], state=state,
                                            cursor=start_cursor), name="backfill-prefetch")
            with pages:
                for page in pages:
                    _store_page(rt, page, tally, api)
                    if page.next_cursor:
                        _write_mark(rt, BACKFILL_WATERMARK,
                                    _position(since, until, index, page.next_cursor))
                    else:
                        _write_mark(rt, BACKFILL_WATERMARK,
                                    _position(since, until, index + 1, ""))
                        status.slices_done = index + 1
                    status.pages, status.returns_seen = tally.pages, tally.returns_seen
                    status.new_events = len(tally.new_events)
                    status.already_known = tally.already_known
                    status.gaps = tally.gaps
                    status.rate_limited = api.stats.rate_limited - before[0]
                    status.throttled = api.stats.throttled - before[1]
                    if progress is not None:
                        progress(status)
            status.slices_done = index + 1
    finally:
        if owned:
            api.close()
    _write_mark(rt, BACKFILL_WATERMARK, None)
    return BackfillResult(since, until, tally.pages, tally.returns_seen, tally.already_known,
                          tally.gaps, tuple(tally.new_events),
                          api.stats.rate_limited - before[0], api.stats.throttled - before[1],
                          resumed)
