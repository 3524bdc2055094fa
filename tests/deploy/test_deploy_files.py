"""The deployment files, validated statically: no container engine can run on the machines
these tests run on (the Docker daemon is absent), so the Dockerfile, compose file, systemd
units and nginx example are parsed and checked against the real CLI and settings instead."""

from __future__ import annotations

import configparser
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from returnbridge import __version__
from returnbridge.cli import app
from returnbridge.composition import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CLI: Any = typer.main.get_command(app)


def _parses_as_cli(argv: list[str]) -> str:
    """The command an argument list names, parsed by the real CLI (unknown commands or
    options fail here)."""
    command: Any = CLI
    ctx = CLI.make_context("returnbridge", list(argv), resilient_parsing=False)
    args = list(argv)
    names: list[str] = []
    while hasattr(command, "list_commands"):  # a group (typer vendors its own click)
        name = args.pop(0)
        sub = command.get_command(ctx, name)
        assert sub is not None, f"'returnbridge {' '.join(argv)}': no command {name!r}"
        command = sub
        names.append(name)
        ctx = command.make_context(name, list(args), parent=ctx)
    return " ".join(names)


def _dockerfile_stages() -> list[tuple[str, list[str]]]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    stages: list[tuple[str, list[str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            match = re.match(r"FROM\s+\S+(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
            assert match
            stages.append((match.group(1) or "", []))
        elif stages:
            stages[-1][1].append(line)
    return stages


def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck() -> None:
    stages = _dockerfile_stages()
    assert [name for name, _ in stages] == ["build", "runtime"]
    build, runtime = stages[0][1], stages[1][1]
    assert any("uv sync --frozen --no-dev" in line for line in build)
    final_user = [line.split()[1] for line in runtime if line.upper().startswith("USER ")][-1]
    assert final_user.split(":")[0] not in ("root", "0")
    assert any(line.startswith("COPY --from=build") for line in runtime)
    assert not any("uv " in line for line in runtime)  # no build tools in the final image
    health = [line for line in runtime if line.startswith("HEALTHCHECK")]
    assert health and "/healthz" in health[0]
    entry = next(line for line in runtime if line.startswith("ENTRYPOINT"))
    cmd = next(line for line in runtime if line.startswith("CMD"))
    assert entry.endswith('["returnbridge"]')
    _parses_as_cli(yaml.safe_load(cmd.removeprefix("CMD")))
    for line in build:  # everything copied exists in the repository
        if line.startswith("COPY ") and "--from" not in line:
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), src
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert "returnbridge.toml" in ignored and ".git" in ignored


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(
        (DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))
    return data


def test_compose_runs_postgres_migrate_serve_and_two_workers(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "migrate", "serve", "worker-1", "worker-2"} <= set(services)
    assert services["prometheus"]["profiles"] == ["monitoring"]
    assert services["grafana"]["profiles"] == ["monitoring"]
    ours = {n: s for n, s in services.items() if "command" in s and n != "postgres"}
    commands = {n: _parses_as_cli(s["command"]) for n, s in ours.items()}
    assert commands == {"migrate": "migrate", "serve": "serve", "worker-1": "worker",
                        "worker-2": "worker"}
    assert "--no-worker" in services["serve"]["command"]
    executors = [services[n]["environment"]["RB_SERVER__EXECUTOR_ID"]
                 for n in ("serve", "worker-1", "worker-2")]
    assert len(set(executors)) == 3  # each process resumes only its own work
    for name in ("serve", "worker-1", "worker-2"):
        assert services[name]["depends_on"]["migrate"]["condition"] == \
            "service_completed_successfully"
    assert services["serve"]["ports"] == ["127.0.0.1:8000:8000"]  # only via the proxy


def test_compose_environment_names_real_settings_and_secret_files(
        compose: dict[str, Any]) -> None:
    env: dict[str, str] = compose["services"]["serve"]["environment"]
    declared = set(compose["secrets"])
    for key, value in env.items():
        if not key.startswith("RB_") or key == "RB_CONFIG":
            continue
        section, _, name = key.removeprefix("RB_").lower().partition("__")
        model = type(getattr(Settings(), section))
        field = name.removesuffix("_file")
        assert field in model.model_fields, key
        if name.endswith("_file"):
            assert value.startswith("/run/secrets/") and value.split("/")[-1] in declared
    for secret in compose["secrets"].values():
        assert secret["file"].startswith("./secrets/")
    generate = (DEPLOY / "secrets" / "generate.sh").read_text(encoding="utf-8")
    for name in declared:
        assert name in generate, f"generate.sh does not create {name}"
    config = tomllib.loads((DEPLOY / "returnbridge.toml").read_text(encoding="utf-8"))
    Settings(**config)  # the example settings are valid as they stand
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    job = prometheus["scrape_configs"][0]
    assert job["static_configs"][0]["targets"] == ["serve:8000"]
    assert job["authorization"]["credentials_file"] == "/run/secrets/metrics_token"


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / "systemd" / name, encoding="utf-8")
    return parser


@pytest.mark.parametrize("name,command", [
    ("returnbridge-migrate.service", "migrate"),
    ("returnbridge.service", "serve"),
    ("returnbridge-worker@.service", "worker"),
])
def test_systemd_units_run_real_commands_unprivileged(name: str, command: str) -> None:
    unit = _unit(name)
    assert set(unit.sections()) == {"Unit", "Service", "Install"}
    service = unit["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/returnbridge")
    assert _parses_as_cli(argv[1:]) == command
    assert service["User"] == "returnbridge" and service["NoNewPrivileges"] == "yes"
    assert service["UMask"] == "0077" and service["ProtectSystem"] == "strict"
    if command != "migrate":
        assert "returnbridge-migrate.service" in unit["Unit"]["Requires"]
    if command == "worker":  # one executor id per instance (repeated keys: read the text)
        text = (DEPLOY / "systemd" / name).read_text(encoding="utf-8")
        assert "Environment=RB_SERVER__EXECUTOR_ID=worker-%i" in text


def test_the_cli_check_catches_wrong_commands_and_options() -> None:
    for wrong in (["serve", "--no-such-option"], ["no-such-command"], ["audit-log", "x"]):
        with pytest.raises(Exception):  # noqa: B017 - click usage errors of any kind
            _parses_as_cli(wrong)
    assert _parses_as_cli(["audit-log", "verify"]) == "audit-log verify"


def test_nginx_example_has_tls_timeouts_and_per_route_body_limits() -> None:
    conf = (DEPLOY / "nginx" / "returnbridge.conf").read_text(encoding="utf-8")
    assert conf.count("{") == conf.count("}")
    for directive in ("ssl_certificate ", "ssl_certificate_key ", "client_header_timeout",
                      "client_body_timeout", "send_timeout", "proxy_read_timeout",
                      "limit_conn ", "keepalive_timeout"):
        assert directive in conf, directive
    assert "listen 443 ssl" in conf and "return 301 https://" in conf
    limits = dict(re.findall(r"location\s+(\S+)\s*\{[^}]*?client_max_body_size\s+(\w+);",
                             conf))
    size = {"k": 1024, "m": 1024 * 1024}
    as_bytes = {k: int(v[:-1]) * size[v[-1]] for k, v in limits.items()}
    defaults = Settings()
    assert as_bytes["/webhooks/"] <= defaults.server.max_body_bytes * 1.05
    assert as_bytes["/khaos/"] <= defaults.khaos.max_push_bytes * 1.05
    assert as_bytes["/api/"] <= defaults.server.max_api_body_bytes


def test_licence_changelog_and_version_agree() -> None:
    licence = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in licence and "Version 2.0" in licence
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "Apache-2.0" and project["version"] == __version__
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## [{__version__}]" in changelog
    from typer.testing import CliRunner

    assert CliRunner().invoke(app, ["--version"]).output.strip() == \
        f"returnbridge {__version__}"
