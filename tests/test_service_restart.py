"""Restart safety: a scan interrupted by a server restart is resumed, or marked failed; never lost silently."""

from __future__ import annotations

import itertools
import os
import signal
import time

import httpx
import pytest

from tests.helpers.server import Server, add_account, bearer, wait_scan

pytestmark = pytest.mark.service

COPIES = 40  # enough files that a scan (resumed ones partly from the cache) is still running when it is killed
SUBMISSIONS = itertools.count(1)


@pytest.fixture
def setup(tmp_path, photos):
    import audit

    home = tmp_path / "store"
    store = audit.open_store(home, key=None)
    audit.enroll_faces(store, "alice", [photos["yaoming"]], name="Alice")
    store.close()
    _, token = add_account(home, "aud", "auditor")
    data = photos["yaoming"].read_bytes()
    files = [("files", (f"frame{i}.jpg", data, "image/jpeg")) for i in range(COPIES)]
    return home, token, files


def submit_and_wait_running(server: Server, token: str, files) -> str:
    """Queue a scan and return once its worker has scanned at least one file (so it is mid-scan)."""
    # Distinct bytes in every file of every submission: a scan analyses identical files once, and the store's
    # scan cache remembers files scanned before, either of which would let the scan end before it is interrupted.
    n = next(SUBMISSIONS)
    files = [(field, (name, data + n.to_bytes(4, "big") + bytes([i]), kind))
             for i, (field, (name, data, kind)) in enumerate(files)]
    r = httpx.post(server.url + "/api/v1/scans", headers=bearer(token), files=files, timeout=60)
    assert r.status_code == 202
    return mid_scan(server, token, r.json()["id"])


def mid_scan(server: Server, token: str, jid: str) -> str:
    """Return once the scan is running and has scanned at least one file."""
    status = wait_scan(server.url, token, jid, until=("running",))
    deadline = time.monotonic() + 60
    while status["progress"]["files_done"] < 1:
        assert status["status"] == "running" and time.monotonic() < deadline, status
        time.sleep(0.05)
        status = httpx.get(f"{server.url}/api/v1/scans/{jid}", headers=bearer(token)).json()
    assert status["progress"]["files_done"] < COPIES, "the scan finished before the test could interrupt it"
    return jid


@pytest.mark.slow
def test_interrupted_scans_are_resumed_or_failed(setup):
    """One store through five server lifetimes: crash, crash again, orphaned worker, Ctrl-C."""
    home, token, files = setup
    server = Server(home).start()
    try:
        # A crash (SIGKILL to the server and its scan worker) mid-scan: the next start resumes the scan...
        crashed = submit_and_wait_running(server, token, files)
        server.kill()
        server = Server(home).start()
        mid_scan(server, token, crashed)
        # ...and a second crash while it runs again marks it failed, with the reason, its uploads deleted.
        server.kill()
        server = Server(home).start()
        status = httpx.get(f"{server.url}/api/v1/scans/{crashed}", headers=bearer(token)).json()
        assert status["status"] == "failed" and status["attempts"] == 2
        assert "interrupted by a server restart 2 times" in status["error"]
        assert not (home / "jobs" / crashed / "input").exists()

        # Only the server dies: its orphaned worker stops, and the next server scans the whole job again.
        orphaned = submit_and_wait_running(server, token, files)
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait()
        server = Server(home).start()
        status = wait_scan(server.url, token, orphaned)
        assert status["status"] == "done" and status["attempts"] == 2
        assert "interrupted by a server restart" in status["note"]
        assert status["summary"]["files"] == COPIES and status["summary"]["findings"] == COPIES
        rows = httpx.get(f"{server.url}/api/v1/scans/{orphaned}/findings", headers=bearer(token)).json()
        assert len(rows) == COPIES and {r["person"] for r in rows} == {"alice"}

        # Ctrl-C mid-scan: the worker is stopped, the job left running, and the next start finishes it.
        stopped = submit_and_wait_running(server, token, files)
        server.stop()
        server = Server(home).start()
        status = wait_scan(server.url, token, stopped)
        assert status["status"] == "done" and status["attempts"] == 2
    finally:
        server.stop()


def test_crashed_worker_marks_the_scan_failed(setup):
    home, token, files = setup
    server = Server(home, env={"AUDIT_TEST_KILL_AT": "jobs.worker:scanning"}).start()
    try:
        r = httpx.post(server.url + "/api/v1/scans", headers=bearer(token), files=files[:1])
        status = wait_scan(server.url, token, r.json()["id"])
        assert status["status"] == "failed" and "scan worker stopped (exit code -9)" in status["error"]
        assert not (home / "jobs" / r.json()["id"] / "input").exists()
    finally:
        server.stop()
