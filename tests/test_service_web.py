"""What the API and the pages share: one person-id rule, one upload filter, one error mapping."""

from __future__ import annotations


import httpx
import pytest
from tests.helpers.server import Server, add_account, bearer, login

pytestmark = pytest.mark.service


@pytest.fixture(scope="module")
def door(tmp_path_factory, photos):
    """A server where `_alice` (an id the CLI accepts) is enrolled, with an admin and her actor account."""
    from click.testing import CliRunner

    from audit.cli import cli

    home = tmp_path_factory.mktemp("web") / "store"
    done = CliRunner().invoke(cli, ["--home", str(home), "enroll", "face", "_alice", str(photos["yaoming"])])
    assert done.exit_code == 0, done.output
    tokens, passwords = {}, {}
    for uid, role, person in [("root", "admin", None), ("al", "actor", "_alice"), ("aud", "auditor", None)]:
        passwords[uid], tokens[uid] = add_account(home, uid, role, person)
    server = Server(home).start()
    yield {"url": server.url, "tokens": tokens, "passwords": passwords}
    server.stop()




def test_id_enrolled_from_the_cli_is_accepted_by_the_api(door, photos):
    url, tokens = door["url"], door["tokens"]
    for uid in ("root", "al"):
        r = httpx.get(f"{url}/api/v1/people/_alice", headers=bearer(tokens[uid]))
        assert r.status_code == 200 and r.json()["id"] == "_alice", r.text
    with open(photos["yaoming"], "rb") as f:
        r = httpx.post(f"{url}/api/v1/people/_alice/faces", headers=bearer(tokens["al"]),
                       files=[("files", ("me.jpg", f, "image/jpeg"))])
    assert r.status_code == 200 and r.json()["already"] == 1, r.text
    r = httpx.post(f"{url}/api/v1/people/-x/faces", headers=bearer(tokens["root"]),
                   files=[("files", ("me.jpg", b"x", "image/jpeg"))])
    assert r.status_code == 400 and "not starting with '-'" in r.text


def _nameless(csrf: str | None = None) -> dict:
    """A multipart body whose only file part has an empty name, as a browser sends for an empty file input."""
    body = b""
    if csrf is not None:
        body += b'--x\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n' + csrf.encode() + b"\r\n"
    body += (b'--x\r\nContent-Disposition: form-data; name="files"; filename=""\r\n'
             b"Content-Type: application/octet-stream\r\n\r\n\r\n--x--\r\n")
    return {"content": body, "headers": {"content-type": "multipart/form-data; boundary=x"}}


def test_both_doors_refuse_the_same_files(door):
    """One upload filter: a nameless file part is no file, at either door, for enrolment and for scans."""
    url, tokens, passwords = door["url"], door["tokens"], door["passwords"]
    for uid, path in {"al": "/api/v1/people/_alice/faces", "aud": "/api/v1/scans"}.items():
        request = _nameless()
        request["headers"].update(bearer(tokens[uid]))
        r = httpx.post(url + path, **request)
        assert r.status_code == 422 and "no files" in r.json()["detail"], r.text
    for uid, path in {"al": "/me/faces", "aud": "/scans"}.items():
        client, csrf = login(url, uid, passwords[uid])
        r = client.post(path, **_nameless(csrf))
        assert r.status_code == 422 and "Choose one or more files" in r.text, r.text[:300]
        # The CSRF check comes before anything is read from the files.
        assert client.post(path, **_nameless("x" + csrf)).status_code == 403


def test_errors_carry_fields_in_json_and_no_flags_on_pages(door, photos):
    url, tokens, passwords = door["url"], door["tokens"], door["passwords"]
    r = httpx.post(f"{url}/api/v1/people/-x/voices", headers=bearer(tokens["root"]),
                   files=[("files", ("a.flac", b"x", "audio/flac"))])
    assert r.status_code == 400 and r.json()["code"] == "bad-person-id" and r.json()["error"] == "AuthError"
    r = httpx.put(f"{url}/api/v1/people/_alice/consent", headers=bearer(tokens["al"]), json={"allow": ["ads; x"]})
    assert r.status_code == 400 and "is not a scope" in r.json()["detail"] and r.json()["error"] == "AuditError"
    client, csrf = login(url, "al", passwords["al"])
    with open(photos["gdp"], "rb") as f:
        page = client.post("/me/faces", data={"csrf": csrf}, files=[("files", ("group.jpg", f, "image/jpeg"))])
    assert page.status_code == 200 and "only you in it" in page.text and "--pick" not in page.text
    assert "/tmp" not in page.text and "upload-" not in page.text  # no server path


def test_a_store_opened_beside_the_service_in_one_process_keeps_working(photos, tmp_path):
    """Opening a store used to open and close a descriptor of the registry file, which drops every POSIX lock the
    process holds on it, SQLite's connections of the service included: after a web removal the next open failed
    with 'disk I/O error'."""
    import time

    from fastapi.testclient import TestClient

    import audit
    from audit.service.app import create_app
    from audit.service.state import ServiceConfig

    home = tmp_path / "store"
    with audit.open_store(home, key=None) as store:
        audit.enroll_faces(store, "alice", [photos["yaoming"]], name="Alice")
    _, actor = add_account(home, "al", "actor", "alice")
    _, auditor = add_account(home, "aud", "auditor")
    with TestClient(create_app(ServiceConfig(home=home, key=None))) as client:
        jid = client.post("/api/v1/scans", headers=bearer(auditor), files=[
            ("files", ("a.jpg", photos["yaoming"].read_bytes(), "image/jpeg"))]).json()["id"]
        deadline = time.monotonic() + 120
        while client.get(f"/api/v1/scans/{jid}", headers=bearer(auditor)).json()["status"] not in ("done", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.3)
        assert client.delete("/api/v1/people/alice", headers=bearer(actor)).status_code == 200
        for _ in range(2):
            with audit.open_store(home, key=None) as again:
                assert again.people() == [] and again.verify().ok
        assert client.get("/api/v1/people", headers=bearer(auditor)).json() == []
