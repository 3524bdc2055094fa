"""``POST /api/v1/returns/{ref}/confirm-credit``: an operator confirms the Khaos credit note."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import AliasChoices, BaseModel, Field

from returnbridge.flows.confirm.by_hand import confirm_credit
from returnbridge.flows.confirm.sightings import ConfirmRefused, UnknownReturn
from returnbridge.flows.console.accounts import Scope
from returnbridge.web.auth import actor_for, api_identity
from returnbridge.web.context import AppContext

router = APIRouter(prefix="/api/v1")


class ConfirmCredit(BaseModel):
    credit_note_code: str = Field(min_length=1, max_length=50,
                                  description="The Khaos credit note code, e.g. CN000123.")
    value: Decimal | None = Field(None, allow_inf_nan=False, max_digits=15,
                                  description="Credit note value (as served: Gross or "
                                  "Net); compared with what returnbridge served.")
    # "by" / "why", as on the exception actions; "actor" / "reason" are accepted too.
    actor: str = Field(min_length=1, max_length=120, description="Who confirms.",
                       validation_alias=AliasChoices("by", "actor"))
    reason: str = Field(min_length=1, max_length=500, description="Why / how it was checked.",
                        validation_alias=AliasChoices("why", "reason"))


@router.post("/returns/{associated_ref}/confirm-credit")
async def post_confirm_credit(associated_ref: str, body: ConfirmCredit,
                              request: Request) -> dict[str, Any]:
    ctx: AppContext = request.app.state.ctx
    identity = await run_in_threadpool(api_identity, request, ctx.rt, Scope.ACT)
    try:
        result = await run_in_threadpool(confirm_credit, ctx.rt, associated_ref,
                                         body.credit_note_code, body.value,
                                         actor_for(identity, body.actor),
                                         body.reason)
    except UnknownReturn as exc:
        raise HTTPException(404, str(exc)) from None
    except ConfirmRefused as exc:
        raise HTTPException(409, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return {
        "associated_ref": result.associated_ref, "outcome": result.outcome.value,
        "khaos_status": result.khaos_status, "credit_note_code": result.credit_note_code,
        "credit_note_value": None if result.credit_note_value is None
        else str(result.credit_note_value),
        "amount_mismatch": result.amount_mismatch,
    }
