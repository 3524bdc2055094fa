"""The matching engine: one set-based SQL pass over the three legs. The statement lives with
the reconciliation tables (``store/reconciliation_repo.py``); the pack and the continuous run
read it through ``uow.reconciliation``. The engine's row and scope types, for the flows."""

from __future__ import annotations

from returnbridge.store.reconciliation_repo import (
    DIFF_COLUMNS,
    SPREADSHEET_FORMULA_STARTS,
    Row,
    Scope,
    split_differences,
)

__all__ = ["DIFF_COLUMNS", "SPREADSHEET_FORMULA_STARTS", "Row", "Scope", "split_differences"]
