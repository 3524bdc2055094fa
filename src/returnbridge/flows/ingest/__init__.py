"""Ingest: stored events applied to returns (micro-batches, one transaction each), and the
operators' view of the stored events."""
