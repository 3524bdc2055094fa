"""Shared fixtures: a fresh, migrated database per test on SQLite and on PostgreSQL.

PostgreSQL is required (the run fails, never skips) when CI=true or
RB_TEST_REQUIRE_POSTGRES=1; elsewhere the PostgreSQL variants are skipped with a reason.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from returnbridge.composition import Settings
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.ingest.apply import apply_event
from returnbridge.sandbox.service import free_port
from returnbridge.store.db import make_engine
from returnbridge.store.migrate import upgrade
from returnbridge.web.app import create_app
from returnbridge.web.limits import uvicorn_options

PG_ADMIN_URL = os.environ.get(
    "RB_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_PG = os.environ.get("RB_TEST_REQUIRE_POSTGRES") == "1" or os.environ.get("CI") == "true"
# In-repository copies (tests never read outside the repository); provenance in
# tests/fixtures/README.md.
FIXTURES = Path(__file__).resolve().parent / "fixtures"
LOOP_FIXTURES = FIXTURES / "loop"
KHAOS_FIXTURES = FIXTURES / "khaos"

LOOP_SECRET = "test-loop-secret"
KHAOS_USER, KHAOS_PASSWORD = "khaos", "test-channel-password"
API_TOKEN = "test-api-token"


def _pg_problem() -> str | None:
    try:
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL at {PG_ADMIN_URL} is not reachable: {exc}"
    return None


def pytest_sessionstart(session: pytest.Session) -> None:
    if REQUIRE_PG:
        problem = _pg_problem()
        if problem:
            pytest.exit(f"PostgreSQL tests are required here but cannot run: {problem}",
                        returncode=1)


def _admin_exec(sql: str) -> None:
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()


def pg_url(name: str) -> str:
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def create_pg_database(template: str | None = None) -> str:
    name = f"rbt_{uuid.uuid4().hex[:12]}"
    _admin_exec(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return name


def drop_pg_database(name: str) -> None:
    _admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    problem = _pg_problem()
    if problem:
        if REQUIRE_PG:
            pytest.fail(problem)
        pytest.skip(problem + " (set RB_TEST_REQUIRE_POSTGRES=1 to make this fail)")
    name = create_pg_database()
    engine = make_engine(pg_url(name))
    upgrade(engine)
    engine.dispose()
    yield name
    drop_pg_database(name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tpl") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "returnbridge.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
    else:
        template_name: str = request.getfixturevalue("pg_template")
        name = create_pg_database(template_name)
        yield pg_url(name)
        drop_pg_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no schema at all."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
    else:
        request.getfixturevalue("pg_template")  # skip/fail like the others
        name = create_pg_database()
        yield pg_url(name)
        drop_pg_database(name)


@pytest.fixture(params=["import", "process"])
def credit_note_at(request: pytest.FixtureRequest) -> str:
    """When the Khaos sandbox raises a return's credit note: at import, or only when the
    return is processed (reference §3.3a). Journeys must pass in both until real Khaos
    settles it (ARCHITECTURE 11)."""
    return str(request.param)


def make_settings(url: str, **sections: Any) -> Settings:
    base: dict[str, Any] = {
        "database": {"url": url},
        "api": {"tokens": [API_TOKEN]},
        "loop": {"webhook_secrets": [LOOP_SECRET], "fallback_customer_urn": "LOOPWEB"},
        "khaos": {"channel_username": KHAOS_USER, "channel_password": KHAOS_PASSWORD},
        "mapping": {"reasons": [
            {"reason": "*damaged*", "khaos_reason_id": "7", "processing": "write_off"},
            {"khaos_reason_id": "6", "processing": "restock"},
        ]},
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return Settings(**base)


@pytest.fixture
def runtime_factory(db_url: str) -> Iterator[Callable[..., Runtime]]:
    made: list[Runtime] = []

    def factory(**sections: Any) -> Runtime:
        rt = Runtime.from_settings(make_settings(db_url, **sections))
        made.append(rt)
        return rt

    yield factory
    for rt in made:
        rt.close()


@pytest.fixture
def runtime(runtime_factory: Callable[..., Runtime]) -> Runtime:
    return runtime_factory()


class LiveApp:
    """The real ASGI app on a real socket; events are applied inline instead of via DBOS."""

    def __init__(self, rt: Runtime, port: int | None = None) -> None:
        self.rt = rt
        self.port = port or rt.settings.server.port
        self.base_url = f"http://127.0.0.1:{self.port}"
        app = create_app(rt, lambda _s, _k, event_id: apply_event(rt, event_id) and None)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="off",
                                                    **uvicorn_options(rt.settings)))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("test server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10, **kwargs)

    def api(self) -> httpx.Client:
        return self.client(headers={"Authorization": f"Bearer {API_TOKEN}"})

    def khaos(self) -> httpx.Client:
        return self.client(auth=(KHAOS_USER, KHAOS_PASSWORD))


def start_live_app(runtime_factory: Callable[..., Runtime], **sections: Any) -> LiveApp:
    """A LiveApp on a free port whose public_base_url points at itself."""
    port = free_port()
    server = {"port": port, "public_base_url": f"http://127.0.0.1:{port}",
              **sections.pop("server", {})}
    app = LiveApp(runtime_factory(server=server, **sections))
    app.start()
    return app


@pytest.fixture
def live_app(runtime_factory: Callable[..., Runtime]) -> Iterator[LiveApp]:
    app = start_live_app(runtime_factory)
    yield app
    app.stop()


def loop_fixture_bytes(name: str) -> bytes:
    return (LOOP_FIXTURES / name).read_bytes()
