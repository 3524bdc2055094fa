"""The exception vocabulary (ARCHITECTURE 7): who owns each problem and what they should do.

An *exception* here is a business problem shown to a team, not a Python exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Owner(StrEnum):
    CX = "cx"  # customer service
    WAREHOUSE = "warehouse"
    FINANCE = "finance"
    OPS = "ops"  # whoever runs returnbridge and its configuration


class Severity(StrEnum):
    BLOCKING = "blocking"  # a return cannot go to Khaos until this is fixed
    WARNING = "warning"  # the return moves on; someone should look


@dataclass(frozen=True)
class ExceptionType:
    name: str
    owner: Owner
    severity: Severity
    meaning: str
    next_action: str


CATALOGUE: dict[str, ExceptionType] = {
    t.name: t
    for t in (
        ExceptionType(
            "sku_mismatch", Owner.OPS, Severity.BLOCKING,
            "A returned SKU does not exist in the Khaos catalogue under the configured "
            "mapping, or the item came without a SKU and its variant id / barcode maps to none.",
            "Correct the SKU in Khaos (StockCode, OtherRef or barcode) or in the shop, then "
            "wait for the next stock upload; the return is released automatically.",
        ),
        ExceptionType(
            "unmapped_return_reason", Owner.OPS, Severity.BLOCKING,
            "No [[mapping.reasons]] entry matches this return reason and disposition.",
            "Add a [[mapping.reasons]] entry for this reason in returnbridge.toml (or a "
            "catch-all '*' entry), then restart or run 'returnbridge exceptions retry'.",
        ),
        ExceptionType(
            "unknown_customer", Owner.CX, Severity.BLOCKING,
            "Khaos cannot take this return's customer: no customer URN, no address, or no "
            "contact name (Khaos needs a Forename or Surname).",
            "Do what this exception's message says is missing: find or create the customer "
            "in Khaos (then load the customer mirror), or configure the fallback URN, "
            "address or contact name that is not set yet; the return is re-evaluated.",
        ),
        ExceptionType(
            "exchange_unknown_sku", Owner.CX, Severity.BLOCKING,
            "An exchange item does not exist in the Khaos catalogue.",
            "Check the exchange item with the customer and the catalogue; correct it in Khaos.",
        ),
        ExceptionType(
            "exchange_not_web_enabled", Owner.CX, Severity.BLOCKING,
            "An exchange item is not published to web in Khaos, so Khaos will refuse it.",
            "Tick 'Publish to web' on the item in Khaos or offer the customer another item.",
        ),
        ExceptionType(
            "exchange_out_of_stock", Owner.CX, Severity.BLOCKING,
            "There is not enough stock at the exchange site for an exchange item.",
            "Offer the customer another item or a refund, or wait for stock to arrive.",
        ),
        ExceptionType(
            "non_return_outcome_unmapped", Owner.OPS, Severity.BLOCKING,
            "A shipping refund or handling fee has no configured non-stock SKU.",
            "Configure the non-stock SKUs for shipping refunds and handling fees.",
        ),
        ExceptionType(
            "currency_mismatch", Owner.FINANCE, Severity.BLOCKING,
            "The return is in a currency other than the Khaos account's ([khaos].currency). "
            "Khaos documents carry plain numbers, so it would be booked in the wrong currency.",
            "Decide how this return is booked: convert and raise it in Khaos by hand (then "
            "resolve this exception with a note), or, if the Khaos account really uses this "
            "currency, set [khaos].currency and restart; the return is re-evaluated.",
        ),
        ExceptionType(
            "khaos_import_unconfirmed", Owner.OPS, Severity.WARNING,
            "Khaos fetched this return but no import has been confirmed within the SLA.",
            "Check the channel's import errors in Khaos (Channels > Imported Returns); fix "
            "and use Retry Import there.",
        ),
        ExceptionType(
            "credit_note_missing", Owner.FINANCE, Severity.WARNING,
            "The return is in Khaos but no credit note has been raised for it.",
            "Process the return in Khaos so that the credit note is raised.",
        ),
        ExceptionType(
            "refund_before_credit", Owner.FINANCE, Severity.WARNING,
            "Money went back to the customer before the credit note existed in Khaos.",
            "Raise the credit note in Khaos and match it to the refund.",
        ),
        ExceptionType(
            "duplicate_refund_suspected", Owner.FINANCE, Severity.BLOCKING,
            "The order already has a refund that returnbridge did not make.",
            "Check the order's refunds; if the customer is already paid, resolve this "
            "exception with a note; otherwise retry it to pay.",
        ),
        ExceptionType(
            "finance_task", Owner.FINANCE, Severity.WARNING,
            "Money work returnbridge must not do itself: settle store credit the platform "
            "asked for, or record a payment returnbridge made against its Khaos credit note.",
            "Do what the task's next action says (it names the amount, the customer, the "
            "credit note and the payment id), then resolve the task saying what you did.",
        ),
        ExceptionType(
            "tax_drift", Owner.FINANCE, Severity.WARNING,
            "Line values and the source's header total differ by more than the tolerance.",
            "Compare the return in the returns platform with the Khaos credit note and "
            "adjust the credit note if needed.",
        ),
        ExceptionType(
            "amount_mismatch", Owner.FINANCE, Severity.WARNING,
            "What the customer got back does not add up to the value of the return.",
            "Check the refund, store credit and exchange amounts in the returns platform.",
        ),
        ExceptionType(
            "status_drift", Owner.OPS, Severity.WARNING,
            "The return changed at the source after it was handed to Khaos.",
            "Compare the return in the returns platform with the Khaos document and amend "
            "Khaos by hand if the change matters.",
        ),
        ExceptionType(
            "source_processing_failed", Owner.CX, Severity.WARNING,
            "The returns platform could not process this return.",
            "Open the return in the returns platform, fix the cause it shows and process it again.",
        ),
        ExceptionType(
            "signature_invalid", Owner.OPS, Severity.WARNING,
            "Webhook deliveries arrived with a signature that matches no configured secret.",
            "Copy the webhook secret from the platform's developer settings into the "
            "configuration (one entry per subscription) and restart.",
        ),
        ExceptionType(
            "payload_invalid", Owner.OPS, Severity.WARNING,
            "A stored event could not be understood. The raw event is kept.",
            "Look at the raw event ('returnbridge events show ID'); if the source changed its "
            "format, report it with the event attached.",
        ),
        ExceptionType(
            "reconciliation_gap", Owner.FINANCE, Severity.WARNING,
            "The three-way reconciliation (platform outcome, Khaos credit note, payments) "
            "found a difference on a return or an orphan refund / credit note; the category "
            "is in the details and the message.",
            "Read the category in the details and follow docs/reconciliation.md for it; the "
            "exception resolves itself when the missing leg arrives or the figures agree.",
        ),
        ExceptionType(
            "credit_note_not_cleared", Owner.FINANCE, Severity.WARNING,
            "The platform processed or closed the return, but its Khaos credit note is not "
            "cleared (confirmed or at a [khaos] cleared_credit_note_stages stage) after "
            "[reconciliation] "
            "credit_note_clear_days.",
            "Process the credit note in Khaos (or confirm it with 'returnbridge khaos "
            "confirm'); it resolves itself once Khaos reports it cleared.",
        ),
        ExceptionType(
            "return_stuck", Owner.OPS, Severity.WARNING,
            "A return has been in one stage (pending, ready, served, imported, received "
            "not graded, refund held) longer than [reconciliation] stage_age_hours allows; "
            "routed to the team that owns that stage.",
            "Open the return ('returnbridge returns show REF') and move it on: the stage in "
            "the details says which system is waiting (see docs/runbooks/return_stuck.md).",
        ),
        ExceptionType(
            "event_failed", Owner.OPS, Severity.WARNING,
            "A stored event could not be processed, even after its automatic retries. The raw "
            "event is kept; what it says has not been applied to its return.",
            "Read the error and the event with 'returnbridge events show ID' (ID is the "
            "event id in the details), fix the cause (database, configuration, a bug to "
            "report), then run 'returnbridge events replay ID --why \"what you fixed\"'. "
            "This exception resolves itself when the replay succeeds.",
        ),
        ExceptionType(
            "alert_channel_failing", Owner.OPS, Severity.WARNING,
            "Alerts to one of the configured [[alerts.routes]] cannot be delivered; they are "
            "kept and retried, and go out once the channel works again.",
            "Check the route's Apprise URL and the service behind it (mail server, Slack or "
            "Teams webhook, receiver); 'returnbridge alerts test --owner TEAM' tries it. "
            "Resolves by itself on the first successful delivery.",
        ),
        ExceptionType(
            "connection_failing", Owner.OPS, Severity.WARNING,
            "Calls to an external system (a returns platform's API, Khaos SOAP, Shopify) have "
            "failed "
            "repeatedly; work that needs it waits and is retried.",
            "Check the system's status, the network and the credentials in the configuration "
            "(the details show the last error); 'returnbridge doctor' runs connection checks. "
            "Resolves by itself on the next successful call.",
        ),
        ExceptionType(
            "stock_push_rejected", Owner.WAREHOUSE, Severity.WARNING,
            "The returns platform refused the stock level of one SKU; the other SKUs of its "
            "batch were sent. Until this is fixed, the platform offers exchanges for this SKU "
            "on stale stock.",
            "Check the SKU named here at the returns platform (is it in the retailer's "
            "catalogue there?) and in Khaos; fix the SKU or remove it from the platform's "
            "stock_push_skus setting. The next push retries it and resolves this when the "
            "platform accepts it.",
        ),
        ExceptionType(
            "worker_down", Owner.OPS, Severity.WARNING,
            "The worker process of 'returnbridge serve' keeps dying: it was restarted "
            "several times in a few minutes. Webhooks are still received and stored (nothing "
            "is lost), but nothing is applied to returns, no scheduled job runs and no other "
            "alert goes out until it stays up.",
            "Read the service log for 'worker process exited' and the error printed just "
            "before it (database unreachable, out of memory, a bad configuration value); "
            "fix it and the worker catches up by itself (see docs/runbooks/worker_down.md). "
            "Resolves by itself once a worker process has stayed up for five minutes.",
        ),
        ExceptionType(
            "schedule_not_running", Owner.OPS, Severity.WARNING,
            "A scheduled job has not completed for three times its interval.",
            "Check that a 'returnbridge worker' process is running and look at its log for "
            "the job named here; resolves by itself on the job's next successful run.",
        ),
    )
}


@dataclass(frozen=True)
class Problem:
    """A detected problem, before it is stored as an exception row."""

    type: str
    message: str
    dedupe_key: str
    details: dict[str, str] = field(default_factory=dict)
    # What to do about *this* occurrence (e.g. naming the money gap's category, or when the
    # type's general next_action would be wrong for it). "" uses the type's.
    next_action: str = ""

    @property
    def kind(self) -> ExceptionType:
        return CATALOGUE[self.type]

    @property
    def blocking(self) -> bool:
        return self.kind.severity is Severity.BLOCKING
