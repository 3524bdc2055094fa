"""Confirm (ARCHITECTURE 5.4): move each delivered return ``served -> imported ->
credit_confirmed`` from evidence, and watch the confirmation SLA.

Sighting, strongest first, all landing in :func:`apply_sighting`:

- ``soap``: desktop ``ExportOrderStatusEx`` by AssociatedRef (ORDER_TYPE 2 = credit note; its
  invoice code is the credit note code; SORDER_CODE is the Khaos return code);
- ``push``: ``khaos_order_statuses`` rows Khaos pushed (ORDER_TYPE 2, our AssociatedRef);
- ``file``: a credit-note export file imported by finance (CSV, see docs/khaos.md);
- ``operator``: someone confirms by hand (``POST /api/v1/returns/{ref}/confirm-credit``).

Every transition is written to the return's timeline with its evidence and to the audit log
with who and why. Confirming twice is a no-op; a *different* credit note for a confirmed
return is refused. A credit note whose value differs from what we served opens
``amount_mismatch``; a served return unconfirmed past ``credit_confirm_sla_hours`` opens
``khaos_import_unconfirmed``, which any later evidence of the import resolves.

SOAP calls made by the scheduled sweep go through the DBOS queue ``SOAP_QUEUE_NAME``, rate
limited by ``[khaos].soap_calls_per_minute``."""
