"""An event whose processing keeps failing: one event_failed exception, counted on /metrics,
resolved by a successful replay; replay is idempotent and audited (API, CLI, both DBs)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from sqlalchemy import func, select
from typer.testing import CliRunner

from returnbridge.cli import app as cli_app
from returnbridge.cli import events as cli_events
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.ingest.apply import apply_event
from returnbridge.flows.ingest.events import record_failure
from returnbridge.store import audit
from returnbridge.store.models import AuditEntry, TimelineEntry

from ._support import (
    allow_evidence,
    event,
    exceptions_of_type,
    refuse_evidence,
    send,
    the_return,
    write_config,
    zigzag_app,
    zigzag_body,
)

ENV = {"COLUMNS": "200", "USER": "night-operator", "RB_CONFIG": ""}


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_events, "out", Console(width=200))


def metric(client: httpx.Client, name: str, source: str) -> float:
    text = client.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("source") == source:
                return sample.value
    return 0.0


def timeline_count(rt: Runtime, return_id: int) -> int:
    with rt.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(TimelineEntry)
                                  .where(TimelineEntry.return_id == return_id)) or 0)


def test_failed_event_is_one_exception_on_metrics_and_a_replay_resolves_it(
        runtime_factory: Callable[..., Runtime], db_url: str, tmp_path: Path) -> None:
    app = zigzag_app(runtime_factory)
    rt = app.rt
    config = write_config(tmp_path / "returnbridge.toml", db_url)
    try:
        created = send(app, zigzag_body("return_created.json"))
        assert event(rt, created).status == "processed"
        ret = the_return(rt)
        refuse_evidence(rt)

        graded = send(app, zigzag_body("return_graded.json"))
        tried = event(rt, graded)
        # The try failed on the database; the event is kept, still waiting for its retry.
        assert tried.status == "received" and tried.attempts == 1
        assert "timeline refuses evidence" in tried.error
        with app.client() as plain:
            failed_total_before = metric(plain, "returnbridge_events_failed_total", "zigzag")

        # What the workflow does when its retries are exhausted.
        exception_id = record_failure(rt, graded, "DBOSMaxStepRetriesExceeded: 5 retries")
        assert exception_id is not None
        (exc,) = exceptions_of_type(rt, "event_failed")
        assert (exc.id, exc.status, exc.owner, exc.return_id) == (
            exception_id, "open", "ops", ret.id)
        assert exc.associated_ref == ret.associated_ref
        assert f"returnbridge events show {graded}" in exc.next_action
        assert f"returnbridge events replay {graded}" in exc.next_action
        assert "timeline refuses evidence" in exc.message  # the real error, not DBOS's
        assert event(rt, graded).status == "failed"

        with app.client() as plain:
            assert metric(plain, "returnbridge_failed_events", "zigzag") == 1
            assert metric(plain, "returnbridge_events_failed_total", "zigzag") == (
                failed_total_before + 1)

        with app.api() as api:
            listed = api.get("/api/v1/events", params={"status": "failed"}).json()
            assert [e["id"] for e in listed["events"]] == [graded]
            # Replaying while the cause is still there fails again: still one exception.
            again = api.post(f"/api/v1/events/{graded}/replay",
                             json={"by": "alice", "why": "first try"})
            assert again.status_code == 200
            assert again.json()["outcome"] == "failed"
        (exc,) = exceptions_of_type(rt, "event_failed")
        assert (exc.status, exc.count) == ("open", 2)
        assert event(rt, graded).attempts == 2

        allow_evidence(rt)
        result = CliRunner().invoke(cli_app, ["events", "replay", str(graded), "--by", "bob",
                                              "--why", "dropped the trigger",
                                              "--config", str(config)], env=ENV)
        assert result.exit_code == 0, result.output
        assert "processed" in result.output and str(exception_id) in result.output
        (exc,) = exceptions_of_type(rt, "event_failed")
        assert (exc.status, exc.resolved_by) == ("resolved", "bob")
        after = the_return(rt)
        assert (after.state, after.source_state) == ("inspected", "ReturnGraded")
        assert event(rt, graded).status == "processed"
        lines_before = timeline_count(rt, ret.id)
        case_before = after.case_json

        with app.api() as api:
            second = api.post(f"/api/v1/events/{graded}/replay", json={"why": "twice"}).json()
        assert second["outcome"] == "unchanged"
        assert timeline_count(rt, ret.id) == lines_before
        assert the_return(rt).case_json == case_before
        assert apply_event(rt, graded).status == "skipped"  # the workflow path agrees
        with app.client() as plain:
            assert metric(plain, "returnbridge_failed_events", "zigzag") == 0

        with rt.sessions() as session:
            entries = session.scalars(select(AuditEntry).where(
                AuditEntry.subject == f"event:{graded}").order_by(AuditEntry.id)).all()
            assert [(e.actor, e.details["outcome"]) for e in entries] == [
                (entries[0].actor, "failed"), ("bob", "processed"), (entries[2].actor, "unchanged")]
            # Over the API the actor is the authenticated token; what the caller typed is kept
            # beside it and can never replace it.
            assert entries[0].actor.startswith("api-token:") and entries[0].actor.endswith(
                "(alice)")
            assert entries[2].actor.startswith("api-token:")
            assert entries[1].details["why"] == "dropped the trigger"
            assert audit.verify_chain(session) == []
    finally:
        app.stop()


def test_an_event_for_an_unknown_return_fails_without_a_return_link(
        runtime_factory: Callable[..., Runtime]) -> None:
    app = zigzag_app(runtime_factory)
    rt = app.rt
    try:
        refuse_evidence(rt)
        # Graded first (out of order): it carries prices, so it opens the return itself;
        # the refused evidence row makes the whole event fail and nothing is kept.
        graded = send(app, zigzag_body("return_graded.json", returnReference="RTN-777"))
        assert event(rt, graded).status == "received"
        record_failure(rt, graded, "retries exhausted")
        record_failure(rt, graded, "retries exhausted")  # a second call changes nothing
        (exc,) = exceptions_of_type(rt, "event_failed")
        assert exc.return_id is None and exc.count == 1
        assert exc.associated_ref.endswith("RTN-777")
    finally:
        app.stop()
