"""Refunds: the refund gate (credit note first, then what the platform decided, once), its
durable workflow, and recording platform-made refunds against the credit note."""
