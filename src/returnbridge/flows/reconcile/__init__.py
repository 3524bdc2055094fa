"""Reconciliation (issue #13): legs, the set-based matching engine, the month-end pack and
the continuous exceptions."""
