"""Write-back to Loop (docs/loop.md): CX work in Loop, so a held Loop return gets a note there.

Every run of the ``loop-notes`` job:

1. **plan**: for each Loop return held from Khaos, each open blocking exception is a cause
   ``held:{type}:{dedupe key}``; causes never noted on that return get a ``loop_notes`` row
   (unique per return and cause, so a cause is noted once, even when the return is released
   and held again for the same reason). Optionally a ``flag`` cause (once per return) and,
   when the credit note is confirmed, ``credit:{code}``.
2. **send**: the new causes of one return become **one** note (``POST
   /warehouse/return/{id}/note``, under 255 characters) through the Loop client, so it
   shares the per-key rate limiter with every other Loop call. A row is marked ``sending``
   before the POST; a row found ``sending`` after a crash is checked against Loop's notes
   first, so a note is never posted twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import structlog

from returnbridge.domain.exceptions import Owner
from returnbridge.domain.khaos_status import KhaosStatus
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.exceptions.health import record_failure, record_success
from returnbridge.sources.loop.client import (
    LoopClient,
    LoopError,
    LoopHTTPError,
    LoopUnavailable,
)
from returnbridge.sources.loop.notes_table import LoopNote, LoopNotes
from returnbridge.sources.loop.settings import loop_settings
from returnbridge.store.models import ExceptionRow, ReturnRow, utcnow

log = structlog.get_logger(__name__)

MAX_NOTE = 254  # Loop: "under 255 characters"

_WHAT = {
    "sku_mismatch": "a returned SKU is not in the Khaos catalogue",
    "unmapped_return_reason": "the return reason has no Khaos reason mapped",
    "unknown_customer": "the customer was not found in Khaos",
    "exchange_unknown_sku": "an exchange item is not in the Khaos catalogue",
    "exchange_not_web_enabled": "an exchange item is not published to web in Khaos",
    "exchange_out_of_stock": "an exchange item is out of stock",
    "non_return_outcome_unmapped": "a shipping refund or fee has no Khaos SKU",
    "duplicate_refund_suspected": "the order already has a refund",
}
_WHO = {Owner.CX.value: "customer service", Owner.WAREHOUSE.value: "the warehouse",
        Owner.FINANCE.value: "finance", Owner.OPS.value: "the returnbridge admin"}


def held_note(ref: str, causes: list[tuple[str, str, str]]) -> str:
    """One note for ``causes`` (type, owner, detail), under 255 characters."""
    parts = []
    for type_, owner, detail in causes:
        what = _WHAT.get(type_, type_.replace("_", " "))
        if detail:
            what = f"{what} ({detail})"
        parts.append(f"{what}; {_WHO.get(owner, owner)} is fixing it")
    text = f"returnbridge: {ref} is held from Khaos: " + ". ".join(parts) + "."
    return text if len(text) <= MAX_NOTE else text[:MAX_NOTE - 1] + "…"


def _detail(row: ExceptionRow) -> str:
    details = row.details or {}
    for key in ("sku", "reason"):  # never personal data: Loop shows notes to many people
        value = details.get(key)
        if value:
            return str(value)[:40]
    return ""


@dataclass(frozen=True)
class NoteRun:
    planned: int
    notes_sent: int
    flags_sent: int
    failed: int

    def __str__(self) -> str:
        return (f"{self.planned} cause(s) planned, {self.notes_sent} note(s) and "
                f"{self.flags_sent} flag(s) sent to Loop, {self.failed} failed")


def enabled(rt: Runtime) -> bool:
    loop = loop_settings(rt.settings)
    return bool(loop.api_key.get_secret_value()) and loop.write_back_notes


def plan(rt: Runtime) -> int:
    """Write the ``loop_notes`` rows for causes not yet noted; how many were written."""
    loop = loop_settings(rt.settings)
    written = 0
    with rt.unit_of_work() as uow:
        notes = uow.repository(LoopNotes)
        for ret, exc in notes.held_causes("loop"):
            written += _add(notes, ret, f"held:{exc.type}:{exc.dedupe_key}"[:255],
                            exc.owner, exc.type, _detail(exc))
            if loop.write_back_flag:
                written += _add(notes, ret, "flag", "", "", "")
        if loop.write_back_credit_note:
            since = utcnow() - timedelta(days=7)
            for ret in notes.credited_since("loop", since):
                written += _add(notes, ret, f"credit:{ret.credit_note_code}", "", "", "")
    return written


def _add(notes: LoopNotes, ret: ReturnRow, cause: str, owner: str, type_: str,
         detail: str) -> int:
    if cause == "flag":
        content = ""
    elif cause.startswith("credit:"):
        content = (f"returnbridge: Khaos credit note {cause.split(':', 1)[1]} raised for "
                   f"{ret.associated_ref}.")[:MAX_NOTE]
    else:
        # the content of a held cause is composed per note at send time; keep its parts
        content = f"{type_}|{owner}|{detail}"[:255]
    return 1 if notes.add(ret, cause, content) else 0


def _client(rt: Runtime) -> LoopClient:
    return LoopClient(loop_settings(rt.settings))


def send(rt: Runtime, client: LoopClient | None = None) -> tuple[int, int, int]:
    """Send pending notes and flags, one note per return; (notes, flags, failed)."""
    owned = client is None
    api = client or _client(rt)
    notes = flags = failed = 0
    try:
        with rt.unit_of_work() as uow:
            return_ids = uow.repository(LoopNotes).returns_to_send()
        for return_id in return_ids:
            n, f, bad = _send_for_return(rt, api, return_id)
            notes, flags, failed = notes + n, flags + f, failed + bad
    except LoopUnavailable as exc:
        record_failure(rt, "loop", str(exc))
        log.warning("Loop notes wait: Loop is unavailable", error=str(exc))
        failed += 1
    finally:
        if owned:
            api.close()
    return notes, flags, failed


def _send_for_return(rt: Runtime, api: LoopClient, return_id: int) -> tuple[int, int, int]:
    with rt.unit_of_work() as uow:
        table = uow.repository(LoopNotes)
        ret = uow.returns.get(return_id)
        rows = table.to_send(return_id)
        if ret is None or not rows:
            return 0, 0, 0
        still_held = ret.khaos_status == KhaosStatus.HELD.value
        held_rows = [r for r in rows if r.cause.startswith("held:")]
        for row in held_rows if not still_held else []:
            # released before the note went: nothing to say any more
            table.drop(row, "the return was released before the note was sent")
        held_rows = held_rows if still_held else []
        # New causes become one note; rows already 'sending' (a crash after the POST, maybe)
        # keep the exact note they were sending, so it can be found on the return.
        fresh = [r for r in held_rows if r.status == "pending"]
        if fresh:
            causes = []
            for r in fresh:
                type_, owner, detail = [*r.content.split("|", 2), "", "", ""][:3]
                causes.append((type_, owner, detail))
            note = held_note(ret.associated_ref, causes)
            for r in fresh:
                table.set_content(r, note)
        by_content: dict[str, list[LoopNote]] = {}
        for r in held_rows:
            by_content.setdefault(r.content, []).append(r)
        groups: list[tuple[str, list[LoopNote]]] = list(by_content.items())
        groups.extend((r.content, [r]) for r in rows if r.cause.startswith("credit:"))
        flag_rows = [r for r in rows if r.cause == "flag" and still_held]
        for r in rows:
            if r.cause == "flag" and not still_held:
                table.drop(r)
        resend_check = any(r.status == "sending" for r in rows)
        for _content, group in groups:
            for r in group:
                table.sending(r)
        for r in flag_rows:
            table.sending(r)
        loop_id = ret.source_return_id
    notes = flags = failed = 0
    existing: list[str] = api.notes(loop_id) if resend_check else []
    for content, group in groups:
        outcome = _post(api, loop_id, content, existing)
        _finish(rt, [r.id for r in group], outcome)
        if outcome == "":
            notes += 1
        else:
            failed += 1
    for row in flag_rows:
        try:
            api.flag(loop_id)
            outcome = ""
            flags += 1
        except LoopHTTPError as exc:
            outcome = str(exc)
            failed += 1
        _finish(rt, [row.id], outcome)
    record_success(rt, "loop")
    return notes, flags, failed


def _post(api: LoopClient, loop_id: str, content: str, existing: list[str]) -> str:
    """'' when the note is on the return (posted now or found from before), else the error.
    LoopUnavailable propagates: the rows stay ``sending`` and are checked next time."""
    if content in existing:
        return ""
    try:
        api.note(loop_id, content)
    except LoopUnavailable:
        raise
    except (LoopError, ValueError) as exc:
        return str(exc)[:1000]
    return ""


def _finish(rt: Runtime, ids: list[int], error: str) -> None:
    with rt.unit_of_work() as uow:
        uow.repository(LoopNotes).finish(ids, error)


def write_back(rt: Runtime, client: LoopClient | None = None) -> NoteRun:
    """One cycle: plan, then send."""
    if not enabled(rt):
        return NoteRun(0, 0, 0, 0)
    planned = plan(rt)
    notes, flags, failed = send(rt, client)
    return NoteRun(planned, notes, flags, failed)
