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


# 3. Every answer carries the security headers, errors included; oversized input is a 4xx, never a 500.
def _secured(r) -> bool:
    return "default-src 'none'" in r.headers.get("content-security-policy", "") and \
        r.headers.get("x-frame-options") == "DENY" and r.headers.get("x-content-type-options") == "nosniff"


def test_security_headers_on_every_error(tmp_path, enrolled, monkeypatch):
    home, token = enrolled
    root = tmp_path / "media"
    root.mkdir()
    _, admin = add_account(home, "root", "admin")
    with TestClient(_app(home, scan_roots=[root], max_upload=4096), raise_server_exceptions=False) as client:
        answers = {
            404: client.get("/no/such/page"),
            405: client.delete("/api/v1/health"),
            413: client.post("/api/v1/scans", headers=bearer(token), files=[("files", ("a.jpg", b"\0" * 8000))]),
            422: client.post("/api/v1/invites", headers=bearer(admin), json={"role": ["not", "a", "word"]}),
        }
        for status, r in answers.items():
            assert r.status_code == status and _secured(r), (status, r.status_code, r.headers)
        for paths in (["x" * 5000], ["a" * 300 + "/b.jpg"], ["/" + "a/" * 2500], ["ok"] * 5000):
            r = client.post("/api/v1/scans", headers=bearer(token), json={"paths": paths})
            assert 400 <= r.status_code < 500 and _secured(r), (paths[0][:20], r.status_code)
        for body in (b"{not json", b"[" * 4000, b'{"paths": "one"}', b'{"paths": [1, 2]}'):
            r = client.post("/api/v1/scans", headers={**bearer(token), "content-type": "application/json"},
                            content=body)
            assert r.status_code == 422 and _secured(r), (body[:10], r.status_code)

        from audit.service import actions

        def broken(svc):
            raise RuntimeError("a bug")

        monkeypatch.setattr(actions, "people_view", broken)
        r = client.get("/api/v1/people", headers=bearer(token))
        assert r.status_code == 500 and _secured(r) and "a bug" not in r.text


# 4. Length limits on every text field: 422 beyond them; consent notes bounded in the library for every door.
def test_text_fields_are_bounded(tmp_path, enrolled):
    import audit
    from audit.errors import AuditError

    home, token = enrolled
    _, admin = add_account(home, "root", "admin")
    _, actor = add_account(home, "al", "actor", "alice")
    big = "x" * 1_000_000
    with TestClient(_app(home)) as client:
        r = client.put("/api/v1/people/alice/consent", headers=bearer(actor), json={"allow": ["film"], "note": big})
        assert r.status_code == 422
        r = client.put("/api/v1/people/alice/consent", headers=bearer(actor),
                       json={"allow": [f"s{i}" for i in range(1000)]})
        assert r.status_code == 422
        assert client.get("/api/v1/people/" + "a" * 100, headers=bearer(admin)).status_code == 422
        assert client.get("/api/v1/scans/" + "a" * 100, headers=bearer(token)).status_code == 422
        r = client.post("/api/v1/invites", headers=bearer(admin), json={"role": "actor", "person": "p" * 100})
        assert r.status_code == 422
        r = client.post("/api/v1/scans", headers=bearer(token), data={"use": "u" * 100},
                        files=[("files", ("a.jpg", b"x"))])
        assert r.status_code == 422
        r = client.post("/login", data={"user": "u" * 100, "password": "p", "login_csrf": "x"})
        assert r.status_code == 422
        r = client.post("/login", data={"user": "root", "password": "p" * 5000, "login_csrf": "x"})
        assert r.status_code == 422
        r = client.put("/api/v1/people/alice/consent", headers=bearer(actor), json={"allow": ["film"], "note": "n" * 2000})
        assert r.status_code == 200
    size = (home / "audit.log").stat().st_size
    with audit.open_store(home, key=None) as store, pytest.raises(AuditError, match="at most 2000"):
        store.consent("alice", allow=["news"], note=big)
    assert (home / "audit.log").stat().st_size == size
    from conftest import run

    out = run("--home", home, "consent", "alice", "--allow", "news", "--note", "y" * 2001, code=2)
    assert "at most 2000" in out.output
