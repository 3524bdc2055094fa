"""events list|show over the CLI and /api/v1/events: raw bytes safely, redacted headers,
what the event reads as now, filters and paging (both DBs, real HTTP)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from returnbridge.cli import app as cli_app
from returnbridge.cli import events as cli_events
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.sandbox.loop.samples import Scenario, return_payload
from returnbridge.sandbox.loop.sender import LoopSender
from tests.conftest import LOOP_SECRET

from ._support import event, exceptions_of_type, send, write_config, zigzag_app, zigzag_body

ENV = {"COLUMNS": "200", "USER": "night-operator", "RB_CONFIG": ""}
# Not JSON (unterminated), with Rich markup, terminal escape sequences (clear screen, set
# window title), a NUL and a right-to-left override: stored as sent, never interpreted.
HOSTILE = (b'{"eventType": "ReturnCreated", "returnReference": "RTN-9", '
           b'"note": "[bold red]owned[/] \x1b[2J\x1b]0;pwned\x07 \x00 \xe2\x80\xae end')


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_events, "out", Console(width=200))


def run(config: Path, *args: str) -> object:
    return CliRunner().invoke(cli_app, [*args, "--config", str(config)], env=ENV)


def test_show_and_list_from_the_command_line(runtime_factory: Callable[..., Runtime],
                                             db_url: str, tmp_path: Path) -> None:
    app = zigzag_app(runtime_factory)
    rt = app.rt
    config = write_config(tmp_path / "returnbridge.toml", db_url)
    try:
        created = send(app, zigzag_body("return_created.json"))
        graded = send(app, zigzag_body("return_graded.json"))
        hostile = send(app, HOSTILE)
        assert event(rt, hostile).status == "invalid"
        (invalid,) = exceptions_of_type(rt, "payload_invalid")
        assert f"'returnbridge events show {hostile}'" in invalid.next_action

        shown = run(config, "events", "show", str(hostile))
        assert shown.exit_code == 0, shown.output
        text = shown.output
        assert "\x1b" not in text and "\x00" not in text and "\u202e" not in text
        assert "\\x1b[2J" in text and "\\x07" in text and "\\u202e" in text
        assert "[bold red]owned[/]" in text  # shown literally, never rendered as markup
        assert "status invalid" in text and "Cannot be read now" in text
        assert f"exception {invalid.id} payload_invalid (open)" in text
        assert "events replay" in text

        raw = CliRunner().invoke(cli_app, ["events", "show", str(hostile), "--raw",
                                           "--config", str(config)], env=ENV)
        assert raw.exit_code == 0
        assert raw.stdout_bytes == HOSTILE  # piped: the exact bytes

        read = run(config, "events", "show", str(graded))
        assert read.exit_code == 0, read.output
        assert "status processed" in read.output and "trigger inspected" in read.output
        assert "ReturnGraded: 2 units graded (1 restock, 1 write_off)" in read.output
        assert "id:e0a4c3d2-5b6f-4a1c-8d9e-112233445566" in read.output  # dedupe key
        assert "attempts 1" in read.output

        table = run(config, "events", "list", "--source", "zigzag")
        assert table.exit_code == 0, table.output
        assert "3 event(s)" in table.output and "ReturnGraded" in table.output

        listed = json.loads(run(config, "events", "list", "--status", "invalid",
                                "--json").output)
        assert [e["id"] for e in listed["events"]] == [hostile]
        event_ref = json.loads(run(config, "events", "show", str(created),
                                         "--json").output)["associated_ref"]
        assert event_ref.endswith("RTN-000123")
        by_ref = json.loads(run(config, "events", "list", "--ref", event_ref, "--json").output)
        assert sorted(e["id"] for e in by_ref["events"]) == [created, graded]
        by_raw_id = json.loads(run(config, "events", "list", "--ref", "RTN-000123",
                                   "--json").output)
        assert by_raw_id["total"] == 2
        paged = json.loads(run(config, "events", "list", "--limit", "1", "--offset", "1",
                               "--json").output)
        assert (paged["total"], [e["id"] for e in paged["events"]]) == (3, [graded])
        assert json.loads(run(config, "events", "list", "--older-than", "1h",
                              "--json").output)["total"] == 0
        assert json.loads(run(config, "events", "list", "--since", "1h",
                              "--json").output)["total"] == 3

        bad = run(config, "events", "list", "--status", "exploded")
        assert bad.exit_code == 1 and "unknown status 'exploded'" in bad.output
        missing = run(config, "events", "show", "999999")
        assert missing.exit_code == 1 and "no stored event with id 999999" in missing.output
    finally:
        app.stop()


def test_the_api_lists_shows_and_redacts(runtime_factory: Callable[..., Runtime]) -> None:
    app = zigzag_app(runtime_factory)
    try:
        sender = LoopSender(f"{app.base_url}/webhooks/loop", LOOP_SECRET)
        response = sender.send(return_payload(4711, Scenario("refund", ("TEE-BLK-M",))))
        sender.close()
        assert response.status_code == 200
        loop_id = int(response.json()["event_id"])
        stored = event(app.rt, loop_id)
        signature = stored.headers["x-loop-signature"]
        assert signature

        with app.client() as anonymous:
            assert anonymous.get("/api/v1/events").status_code == 401
            assert anonymous.post(f"/api/v1/events/{loop_id}/replay").status_code == 401
        with app.api() as api:
            listed = api.get("/api/v1/events", params={"source": "loop"}).json()
            assert [e["id"] for e in listed["events"]] == [loop_id]
            assert listed["events"][0]["associated_ref"] == "LR-4711"
            assert api.get("/api/v1/events", params={"status": "nope"}).status_code == 400
            assert api.get("/api/v1/events", params={"since": "soon"}).status_code == 400
            assert api.get("/api/v1/events/424242").status_code == 404

            view = api.get(f"/api/v1/events/{loop_id}")
            assert view.status_code == 200
            shown = view.json()
            assert signature not in view.text
            assert shown["headers"]["x-loop-signature"] == "[redacted]"
            assert base64.b64decode(shown["body_base64"]) == stored.body
            assert shown["status"] == "processed" and shown["attempts"] == 1
            found = shown["interpretation"]
            assert found["handled"] and found["associated_ref"] == "LR-4711"
            assert found["snapshot"]["lines"][0]["sku"] == "TEE-BLK-M"
            assert shown["return"]["associated_ref"] == "LR-4711"

            raw = api.get(f"/api/v1/events/{loop_id}/raw")
            assert raw.content == stored.body
            assert raw.headers["content-type"] == "application/octet-stream"

            replayed = api.post(f"/api/v1/events/{loop_id}/replay", json={"why": "check"})
            assert replayed.json()["outcome"] == "unchanged"  # processed: left alone
    finally:
        app.stop()
