"""Run ``returnbridge serve`` as a real process (demo, tests, bench)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux /proc), e.g. ``serve``'s worker child."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return [c for c in found if alive(c)]


def alive(pid: int) -> bool:
    """``pid`` runs (not gone, not a zombie waiting to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo += children(current)
    return out


class ManagedProcess:
    """A returnbridge process this harness started: SIGKILL it as a crash, or stop it."""

    proc: subprocess.Popen[bytes] | None = None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


class ServiceProcess(ManagedProcess):
    def __init__(self, config: Path, port: int, log_file: Path, *args: str,
                 module: str = "returnbridge") -> None:
        self.config = config
        # The module run with ``python -m``: the product, or a test launcher around it.
        self.module = module
        self.port = port
        self.log_file = log_file
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0, env: dict[str, str] | None = None,
              wait: bool = True) -> None:
        env = {**os.environ, "RB_CONFIG": str(self.config), **(env or {})}
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", self.module, "serve", "--port", str(self.port),
                 *self.args],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )
        if wait:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"returnbridge serve exited with {self.proc.returncode}; "
                                   f"see {self.log_file}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"returnbridge serve not ready after {timeout}s; see {self.log_file}")
