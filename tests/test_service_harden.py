"""Service hardening (issue 21): scan roots that hold, security headers on every answer, bounded text, account
lifecycle, trusted proxies only when configured, and no leak of a withdrawn person through the service's own files.

Most tests run the app in-process (FastAPI's TestClient, scans in real worker processes); the proxy test needs a
real server.
"""

from __future__ import annotations

import hashlib
import shutil
import time

import pytest
from fastapi.testclient import TestClient
from serve_util import add_account, bearer


def _app(home, **cfg):
    from audit.service.app import create_app
    from audit.service.state import ServiceConfig

    return create_app(ServiceConfig(home=home, key=None, **cfg))


def _wait(client: TestClient, token: str, jid: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/api/v1/scans/{jid}", headers=bearer(token)).json()
        if status["status"] in ("done", "failed"):
            return status
        time.sleep(0.25)
    raise TimeoutError(jid)


@pytest.fixture
def enrolled(tmp_path, photos):
    """A store with alice enrolled (yaoming's photo) and an auditor's token."""
    import audit

    home = tmp_path / "store"
    with audit.open_store(home, key=None) as store:
        store.enroll_face("alice", [photos["yaoming"]], name="Alice")
    _, token = add_account(home, "aud", "auditor")
    return home, token


# 1. Path-mode scans: every file under a root is checked against it; links out of it are never followed.
def test_links_leaving_the_scan_root_are_refused_while_walking(tmp_path, photos, enrolled):
    home, token = enrolled
    root, outside = tmp_path / "media", tmp_path / "secret"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    shutil.copy(photos["yaoming"], outside / "private.jpg")
    shutil.copy(photos["gdp"], root / "sub" / "own.jpg")
    (root / "sub" / "evil.jpg").symlink_to(outside / "private.jpg")  # a file link out of the root
    (root / "sub" / "out").symlink_to(outside)  # a folder link out of the root
    (root / "sub" / "fine.jpg").symlink_to(root / "sub" / "own.jpg")  # a link that stays inside is read
    secret_sha = hashlib.sha256((outside / "private.jpg").read_bytes()).hexdigest()
    with TestClient(_app(home, scan_roots=[root])) as client:
        r = client.post("/api/v1/scans", headers=bearer(token), json={"paths": ["sub/evil.jpg"]})
        assert r.status_code == 400 and "outside" in r.text  # given directly: refused at once
        r = client.post("/api/v1/scans", headers=bearer(token), json={"paths": ["sub"]})
        assert r.status_code == 202, r.text
        jid = r.json()["id"]
        assert _wait(client, token, jid)["status"] == "done"
        rows = client.get(f"/api/v1/scans/{jid}/findings", headers=bearer(token)).json()
        text = client.get(f"/api/v1/scans/{jid}/report", headers=bearer(token)).text
    assert not [r for r in rows if r["person"]], rows  # the secret photo of alice was never read
    errors = {r["path"]: r["error"] for r in rows if r["kind"] == "error"}
    assert "outside the scan root" in errors["sub/evil.jpg"] and "outside the scan root" in errors["sub/out"]
    assert secret_sha not in str(rows) and secret_sha not in text
    assert str(tmp_path) not in str(rows) and str(tmp_path) not in text  # names relative to the root only
