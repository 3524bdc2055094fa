"""``returnbridge sandbox …`` starts a real sandbox and prints the settings that point at it."""

import json
import subprocess
import sys
import time

import httpx
import pytest


@pytest.mark.parametrize("name", ["shopify", "zigzag", "loop"])
def test_sandbox_command_serves_and_prints_its_settings(name: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "returnbridge", "sandbox", name], stdout=subprocess.PIPE,
        text=True, env={"COLUMNS": "200", "PATH": ""})
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if line.startswith("}"):
                break
        settings = json.loads("".join(lines))[name]
        url = settings["base_url"]
        answer = httpx.get(url, timeout=5)
        assert answer.status_code < 500  # the sandbox is listening
    finally:
        proc.terminate()
        proc.wait(10)
