"""Helpers for the service tests: a real `likeness-audit serve` on 127.0.0.1 with a free port, accounts, polling."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import re

import httpx


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`likeness-audit serve` in its own process group (so a test can kill it and its scan workers at once)."""

    def __init__(self, home: Path, *args: str, env: dict | None = None):
        self.home, self.args, self.env = Path(home), args, env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> Server:
        env = {**os.environ, **(self.env or {}), "AUDIT_HOME": str(self.home)}
        log = open(self.home.parent / f"server-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "audit", "serve", "--host", "127.0.0.1", "--port", str(self.port), *self.args],
            env=env, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log()}")
            try:
                if httpx.get(self.url + "/api/v1/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server did not start: {self.log()}")

    def log(self) -> str:
        path = self.home.parent / f"server-{self.port}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def log_text(self) -> str:
        """The server's whole output so far (stdout and stderr)."""
        path = self.home.parent / f"server-{self.port}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Ctrl-C, as an operator would."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL the server and everything it started (a crash or power cut)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=20)


def add_account(home: Path, uid: str, role: str, person: str | None = None) -> tuple[str, str]:
    """(password, token) of a new account, through the CLI as an operator would."""
    from click.testing import CliRunner

    from audit.cli import cli

    out = CliRunner().invoke(cli, ["--home", str(home), "users", "add", uid, "--role", role,
                                   *(["--person", person] if person else [])], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    lines = dict(line.split(": ", 1) for line in out.stdout.splitlines())
    return lines["password"], lines["token"]


def bearer(token: str) -> dict:
    """The Authorization header of a token."""
    return {"Authorization": f"Bearer {token}"}


def wait_scan(url: str, token: str, jid: str, timeout: float = 120, until=("done", "failed")) -> dict:
    """Poll a scan until its status is one of `until`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.get(f"{url}/api/v1/scans/{jid}", headers=bearer(token), timeout=10)
        r.raise_for_status()
        if r.json()["status"] in until:
            return r.json()
        time.sleep(0.25)
    raise TimeoutError(f"scan {jid} still {r.json()['status']}")


def login(url: str, uid: str, password: str) -> tuple[httpx.Client, str]:
    """Log in through the page as a browser does; returns the session's client and its CSRF token."""
    client = httpx.Client(base_url=url, timeout=60)
    nonce = re.search(r'name="login_csrf" value="([^"]+)"', client.get("/login").text).group(1)
    r = client.post("/login", data={"user": uid, "password": password, "login_csrf": nonce})
    assert r.status_code == 303, r.text
    return client, re.search(r'name="csrf" value="([^"]+)"', client.get(r.headers["location"]).text).group(1)
