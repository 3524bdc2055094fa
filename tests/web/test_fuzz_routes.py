"""A reduced run of bench/fuzz_routes.py on SQLite and PostgreSQL: hypothesis-generated
payloads on every inbound route; no 5xx, every acknowledged body stored and processed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench" / "fuzz_routes.py"


def _harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_routes", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def test_generated_payloads_never_get_a_5xx_and_are_all_accounted_for(db_url: str) -> None:
    fuzz = _harness()
    report = fuzz.run_campaign(db_url, examples=30)
    for name, figures in report.routes.items():
        assert figures.requests == 30, name
        assert figures.server_errors == 0, (name, dict(figures.statuses))
        assert figures.unanswered == 0, (name, dict(figures.no_answer))
        if not name.startswith("/api"):
            assert figures.acknowledged, f"{name}: nothing was stored"
    assert report.missing == [] and report.unprocessed == []
    assert report.stored >= sum(1 for f in report.routes.values() if f.acknowledged)
