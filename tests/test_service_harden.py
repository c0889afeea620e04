"""Service hardening (issue 21): scan roots that hold, security headers on every answer, bounded text, account
lifecycle, trusted proxies only when configured, and no leak of a withdrawn person through the service's own files.

Most tests run the app in-process (FastAPI's TestClient, scans in real worker processes); the proxy test needs a
real server.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time

import pytest
from fastapi.testclient import TestClient
from tests.helpers.server import add_account, bearer

pytestmark = pytest.mark.service


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
        audit.enroll_faces(store, "alice", [photos["yaoming"]], name="Alice")
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
    assert "Nothing was audited" not in text and "Nothing was found" in text  # two files were read
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
    from tests.helpers.cli import run

    out = run("--home", home, "consent", "alice", "--allow", "news", "--note", "y" * 2001, code=2)
    assert "at most 2000" in out.output


# 6. The service's own leaks: a withdrawn person's findings and crops, stale uploads, other people in exports.
def _login(client, uid: str, password: str) -> None:
    import re

    nonce = re.search(r'name="login_csrf" value="([^"]+)"', client.get("/login").text).group(1)
    r = client.post("/login", data={"user": uid, "password": password, "login_csrf": nonce}, follow_redirects=False)
    assert r.status_code == 303, r.text


def _files_holding(folder, needle: bytes) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes())


def _cli(home, *args: str) -> str:
    """The CLI in its own process, as an operator runs it beside the server (in-process, SQLite shares one process's
    locks and caches with the server's connections)."""
    done = subprocess.run([sys.executable, "-m", "audit", "--home", str(home), *args], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_withdrawal_erases_the_services_findings_and_crops(tmp_path, photos):
    import httpx

    import audit
    from tests.helpers.server import Server

    home = tmp_path / "store"
    with audit.open_store(home, key=None) as store:
        audit.enroll_faces(store, "alice", [photos["yaoming"]], name="Alice Example")
        audit.enroll_faces(store, "bob", [photos["gdp"]], name="Bob Example", pick="largest")
    _, aud = add_account(home, "aud", "auditor")
    _, al = add_account(home, "al", "actor", "alice")
    # A real server: the CLI below runs beside it, as an operator's would.
    server = Server(home).start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            jids = {}
            for who, photo in (("alice", "yaoming"), ("bob", "gdp")):
                r = client.post("/api/v1/scans", headers=bearer(aud), data={"use": "advertising"},
                                files=[("files", (f"{who}-ad.jpg", photos[photo].read_bytes(), "image/jpeg"))])
                jids[who] = r.json()["id"]
                assert _wait(client, aud, jids[who])["status"] == "done"
            crops = {who: sorted((home / "jobs" / jid / "crops").iterdir()) for who, jid in jids.items()}
            crop = {who: c[0].read_bytes()[-200:] for who, c in crops.items()}
            assert len(client.get("/api/v1/people/alice/export", headers=bearer(al)).json()["found_in"]) == 1
            # The web door: alice withdraws.
            assert client.delete("/api/v1/people/alice", headers=bearer(al)).status_code == 200
            # The CLI door: the operator removes bob while the server runs (another process, as in real life).
            _cli(home, "remove", "bob")
            for who, name in (("alice", b"Alice Example"), ("bob", b"Bob Example")):
                assert _files_holding(home / "jobs", crop[who]) == []
                assert _files_holding(home / "jobs", name) == []
                assert _files_holding(home / "jobs", f'"{who}"'.encode()) == []
            # A new actor later given the same person id finds nothing.
            out = dict(line.split(": ", 1) for line in _cli(home, "users", "add", "al2", "--role", "actor",
                                                           "--person", "alice").splitlines())
            password, al2 = out["password"], out["token"]
            r = client.get("/api/v1/people/alice/export", headers=bearer(al2))
            assert r.status_code == 200 and r.json()["found_in"] == [], r.text
            _login(client, "al2", password)
            page = client.get("/me/found")
            assert page.status_code == 200 and "alice-ad.jpg" not in page.text
            # The auditor's scans still say what was in their files, without naming who.
            rows = client.get(f"/api/v1/scans/{jids['alice']}/findings", headers=bearer(aud)).json()
            assert [r["kind"] for r in rows] == ["match"] and rows[0]["person"] is None
            assert client.get(f"/api/v1/scans/{jids['alice']}/report", headers=bearer(aud)).status_code == 200
    finally:
        server.stop()
    import sqlite3

    with sqlite3.connect(home / "service.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM found").fetchone() == (0,)


def test_stale_uploads_are_cleared_when_the_server_starts(enrolled):
    home, _ = enrolled
    with TestClient(_app(home)):
        pass
    left = [home / "tmp" / "upload-x1y2" / "001.jpg", home / "jobs" / "0123456789abcdef" / "input" / "001.part"]
    for p in left:
        p.parent.mkdir(parents=True)
        p.write_bytes(b"\xff\xd8\xff a photo of someone")
    with TestClient(_app(home)):
        assert not any(p.parent.exists() for p in left)


def test_actor_export_shows_others_only_as_another_person(enrolled):
    import audit
    from audit.evidence import Evidence
    from audit.service.accounts import Accounts

    home, _ = enrolled
    _, al = add_account(home, "al", "actor", "alice")
    accounts = Accounts(home)
    accounts.add_job("00aa", "aud", "film", [{"path": "/srv/media/ad.jpg", "name": "/srv/media/ad.jpg"}])
    row = {"path": "/srv/media/ad.jpg", "sha256": "ab" * 32, "modality": "face", "kind": "composite",
           "consent": "denied", "contributors": [
               {"person": "alice", "name": "Alice", "similarity": 0.5, "weight": 0.6, "consent": "unknown"},
               {"person": "bob", "name": "Bob Secret", "similarity": 0.4, "weight": 0.4, "consent": "denied"}]}
    audit.write_record(Evidence.of([row], {"started": "2026-01-01T00:00:00"}), accounts.job_dir("00aa") /
                       "findings.json")
    accounts.finish_job("00aa", {}, [(0, "alice"), (0, "bob")])
    accounts.close()
    with TestClient(_app(home)) as client:
        export = client.get("/api/v1/people/alice/export", headers=bearer(al)).json()
    (found,) = export["found_in"]
    text = str(found)
    assert "bob" not in text and "Bob" not in text and "/srv" not in text and found["finding"]["path"] == "ad.jpg"
    assert [c["name"] for c in found["finding"]["contributors"]] == ["Alice", "another registered person"]
    assert found["finding"]["consent"] == "unknown"  # alice's own decision, not bob's denial


# 5. Account lifecycle: revoked tokens and deleted accounts' sessions are refused at once; the log names web accounts.
def test_account_lifecycle_takes_effect_at_once(enrolled):
    from tests.helpers.cli import run

    home, aud = enrolled
    root_pw, _ = add_account(home, "root", "admin")
    al_pw, al = add_account(home, "al", "actor", "alice")
    with TestClient(_app(home)) as client, TestClient(_app(home)) as browser:
        assert client.get("/api/v1/me", headers=bearer(aud)).status_code == 200
        new = run("--home", home, "users", "rotate-token", "aud").stdout.split("token: ")[1].strip()
        assert client.get("/api/v1/me", headers=bearer(aud)).status_code == 401
        assert client.get("/api/v1/me", headers=bearer(new)).json()["id"] == "aud"

        _login(browser, "al", al_pw)
        assert browser.get("/me").status_code == 200
        password = run("--home", home, "users", "reset-password", "al").stdout.split("password: ")[1].strip()
        assert browser.get("/me").status_code == 401  # its sessions ended
        _login(browser, "al", password)
        run("--home", home, "users", "delete", "al")
        assert browser.get("/me").status_code == 401 and client.get("/api/v1/me", headers=bearer(al)).status_code == 401
        assert "al\t" not in run("--home", home, "users", "list").stdout
        out = run("--home", home, "users", "delete", "root", code=2)
        assert "last admin" in out.output
        assert "no account" in run("--home", home, "users", "rotate-token", "nobody", code=2).output

        # The admin page does the same.
        _login(browser, "root", root_pw)
        import re

        csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get("/admin").text).group(1)
        page = browser.post("/admin/users/aud/token", data={"csrf": csrf})
        token = re.search(r'id="account-secret">([^<]+)<', page.text).group(1)
        assert client.get("/api/v1/me", headers=bearer(new)).status_code == 401
        assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200
        page = browser.post("/admin/users/aud/delete", data={"csrf": csrf})
        assert page.status_code == 200 and "aud</td>" not in page.text
        assert client.get("/api/v1/me", headers=bearer(token)).status_code == 401
        assert browser.post("/admin/users/root/delete", data={"csrf": csrf}).status_code == 400  # the last admin


def test_audit_log_names_the_web_account(enrolled, photos):
    import audit

    home, aud = enrolled
    _, al = add_account(home, "al", "actor", "alice")
    with TestClient(_app(home)) as client:
        assert client.put("/api/v1/people/alice/consent", headers=bearer(al),
                          json={"allow": ["film"], "note": "contract 7"}).status_code == 200
        r = client.post("/api/v1/scans", headers=bearer(aud), data={"use": "film"},
                        files=[("files", ("ad.jpg", photos["yaoming"].read_bytes(), "image/jpeg"))])
        assert _wait(client, aud, r.json()["id"])["status"] == "done"
    with audit.open_store(home, key=None) as store:
        actors = {e["event"]: e["actor"] for e in store.log.about()}
    assert actors["consent"] == "web:al" and actors["scan"] == "web:aud", actors


# 2. Proxy headers believed only from a configured proxy: a forged X-Forwarded-For does not reset the login limit.
def _fail_logins(url: str, n: int, forwarded) -> list[int]:
    import re

    import httpx

    statuses = []
    with httpx.Client(base_url=url) as client:
        for i in range(n):
            nonce = re.search(r'name="login_csrf" value="([^"]+)"', client.get("/login").text).group(1)
            r = client.post("/login", headers={"X-Forwarded-For": forwarded(i)},
                            data={"user": f"nobody{i}", "password": "wrong password", "login_csrf": nonce})
            statuses.append(r.status_code)
    return statuses


def test_forged_forwarded_for_does_not_bypass_the_address_limit(enrolled):
    from tests.helpers.server import Server

    home, _ = enrolled
    server = Server(home).start()
    try:  # 30 failures from this address, each claiming another: then this address is blocked all the same
        assert set(_fail_logins(server.url, 30, lambda i: f"10.9.{i}.1")) == {401}
        assert _fail_logins(server.url, 1, lambda i: "10.9.200.1") == [429]
    finally:
        server.stop()
    server = Server(home, "--trust-proxy", "127.0.0.1").start()
    try:  # behind a configured proxy, the address it forwards is the one counted
        assert set(_fail_logins(server.url, 30, lambda i: "10.8.0.1")) == {401}
        assert _fail_logins(server.url, 1, lambda i: "10.8.0.2") == [401]
        assert _fail_logins(server.url, 1, lambda i: "10.8.0.1") == [429]
    finally:
        server.stop()
