"""Authorization matrix over a real server: every route x every role x own/other resource; uploads as hostile input."""

from __future__ import annotations

import re
import shutil

import httpx
import pytest

from tests.helpers.server import Server, add_account, bearer, wait_scan

pytestmark = pytest.mark.service

# Roles asking, and what "own" means for each: the actor's person, the auditor's scan.
ROLES = ("anon", "admin", "auditor", "actor")
JPEG_TEXT = ("notes.jpg", b"this is not a picture", "image/jpeg")  # refused per file: nothing changes


@pytest.fixture(scope="module")
def world(tmp_path_factory, photos):
    """Two enrolled people (alice, bob), two auditors with one finished scan each, and a login per role."""
    import audit

    root = tmp_path_factory.mktemp("matrix")
    home = root / "store"
    store = audit.open_store(home, key=None)
    audit.enroll_faces(store, "alice", [photos["yaoming"]], name="Alice")
    audit.enroll_faces(store, "bob", [photos["gdp"]], name="Bob", pick="largest")
    store.close()
    tokens, passwords = {}, {}
    for uid, role, person in [("root", "admin", None), ("aud1", "auditor", None), ("aud2", "auditor", None),
                              ("alice", "actor", "alice"), ("bob", "actor", "bob"), ("carol", "actor", "carol"),
                              ("dave", "auditor", None), ("eve", "auditor", None)]:
        passwords[uid], tokens[uid] = add_account(home, uid, role, person)
    server = Server(home, "--max-upload-mb", "3", "--max-file-mb", "1", "--max-files", "4",
                    "--webhook-allow-private").start()
    scans = {}
    for uid in ("aud1", "aud2"):
        with open(photos["yaoming"], "rb") as f:
            r = httpx.post(server.url + "/api/v1/scans", headers=bearer(tokens[uid]),
                           files=[("files", ("alice-ad.jpg", f, "image/jpeg"))], data={"use": "advertising"})
        assert r.status_code == 202, r.text
        scans[uid] = r.json()["id"]
    for uid, jid in scans.items():
        assert wait_scan(server.url, tokens[uid], jid)["status"] == "done"
    cookies = {}
    for uid in ("root", "aud1", "alice"):
        c = httpx.Client(base_url=server.url, follow_redirects=False)
        page = c.get("/login")
        nonce = re.search(r'name="login_csrf" value="([^"]+)"', page.text).group(1)
        r = c.post("/login", data={"user": uid, "password": passwords[uid], "login_csrf": nonce})
        assert r.status_code == 303, r.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', c.get(r.headers["location"]).text).group(1)
        cookies[uid] = (c, csrf)
    yield {"server": server, "home": home, "tokens": tokens, "scans": scans, "cookies": cookies,
           "passwords": passwords}
    for c, _ in cookies.values():
        c.close()
    server.stop()


SUBJECT = {"admin": "root", "auditor": "aud1", "actor": "alice"}
OWN = {"person": "alice", "scan": "aud1", "account": "dave"}  # the actor alice's own person; aud1's own scan
OTHER = {"person": "bob", "scan": "aud2", "account": "eve"}  # (accounts: two that only the admin may change)

# (method, path, kind, success status, request kwargs). Kinds: public; roles:<who may>; person; scan.
API = [
    ("GET", "/api/v1/health", "public", 200, {}),
    ("GET", "/api/v1/me", "roles:admin,auditor,actor", 200, {}),
    ("GET", "/api/v1/people", "roles:admin,auditor", 200, {}),
    ("GET", "/api/v1/people/{person}", "person", 200, {}),
    ("GET", "/api/v1/people/{person}/reference", "person", 200, {}),
    ("GET", "/api/v1/people/{person}/export", "person", 200, {}),
    ("POST", "/api/v1/people/{person}/faces", "person", 200, {"files": [("files", JPEG_TEXT)]}),
    ("POST", "/api/v1/people/{person}/voices", "person", 200, {"files": [("files", JPEG_TEXT)]}),
    ("PUT", "/api/v1/people/{person}/consent", "person", 200, {"json": {"allow": ["research"]}}),
    ("DELETE", "/api/v1/people/{person}", "person-denied-only", 200, {}),
    ("POST", "/api/v1/scans", "roles:admin,auditor", 202, {"files": [("files", ("x.bin", b"\0" * 10, "x/y"))]}),
    ("GET", "/api/v1/scans", "roles:admin,auditor", 200, {}),
    ("GET", "/api/v1/scans/{scan}", "scan", 200, {}),
    ("GET", "/api/v1/scans/{scan}/findings", "scan", 200, {}),
    ("GET", "/api/v1/scans/{scan}/report", "scan", 200, {}),
    ("GET", "/api/v1/scans/{scan}/findings/{n}/picture", "scan", 200, {}),
    ("POST", "/api/v1/invites", "roles:admin", 201, {"json": {"role": "auditor"}}),
    ("GET", "/api/v1/scans/{scan}/reviews", "scan", 200, {}),
    ("PUT", "/api/v1/scans/{scan}/findings/{n}/review", "scan", 200, {"json": {"state": "open", "note": "matrix"}}),
    ("PUT", "/api/v1/me/found/{scan}/{n}", "found", 200, {"json": {"answer": "me"}}),
    ("GET", "/api/v1/reviews/summary", "roles:admin,auditor", 200, {}),
    # operations (audit/service/ops.py): liveness and readiness for anyone; metrics for admins (serve --metrics)
    ("GET", "/healthz", "public", 200, {}),
    ("GET", "/readyz", "public", 200, {}),
    ("GET", "/metrics", "roles:admin", 200, {}),
    ("GET", "/api/v1/webhook", "roles:admin,auditor,actor", 200, {}),
    ("PUT", "/api/v1/webhook", "roles:admin,auditor,actor", 200, {"json": {"url": "http://127.0.0.1:9/hook"}}),
    ("GET", "/api/v1/watches", "roles:admin", 200, {}),
    ("POST", "/api/v1/watches", "roles:admin", 400, {"json": {"path": "x"}}),  # 400: this server has no scan root
]
PAGES = [
    ("GET", "/login", "public", 200, {}),
    ("GET", "/docs", "public", 200, {}),
    ("GET", "/openapi.json", "public", 200, {}),
    ("GET", "/static/style.css", "public", 200, {}),
    ("GET", "/", "roles:admin,auditor,actor", 303, {}),
    ("GET", "/me", "roles:actor", 200, {}),
    ("GET", "/me/found", "roles:actor", 200, {}),
    ("GET", "/me/reference", "roles:actor", 200, {}),
    ("GET", "/me/export", "roles:actor", 200, {}),
    ("GET", "/me/withdraw", "roles:actor", 200, {}),
    ("POST", "/me/consent", "roles:actor", 303, {"data": {"scope": "news", "decision": "deny"}}),
    ("POST", "/me/faces", "roles:actor", 200, {"files": [("files", JPEG_TEXT)]}),
    ("POST", "/me/voices", "roles:actor", 200, {"files": [("files", JPEG_TEXT)]}),
    ("GET", "/me/found/{scan}/{n}", "found", 200, {}),
    ("GET", "/scans", "roles:admin,auditor", 200, {}),
    ("GET", "/scans/{scan}", "scan", 200, {}),
    ("GET", "/scans/{scan}/report", "scan", 200, {}),
    ("GET", "/scans/{scan}/findings.json", "scan", 200, {}),
    ("GET", "/scans/{scan}/picture/{n}", "scan", 200, {}),
    ("GET", "/people", "roles:admin,auditor", 200, {}),
    ("GET", "/admin", "roles:admin", 200, {}),
    ("POST", "/admin/invites", "roles:admin", 200, {"data": {"role": "auditor"}}),
    ("POST", "/admin/users/{account}/password", "roles:admin", 200, {}),
    ("POST", "/admin/users/{account}/token", "roles:admin", 200, {}),
    ("POST", "/admin/users/{account}/delete", "roles:admin", 200, {}),
    ("POST", "/scans/{scan}/findings/{n}/review", "scan", 303, {"data": {"state": "open"}}),
    ("POST", "/me/found/{scan}/{n}/answer", "found", 303, {"data": {"answer": "me"}}),
    ("GET", "/reviews", "roles:admin,auditor", 200, {}),
    ("GET", "/account/webhook", "roles:admin,auditor,actor", 200, {}),
    ("POST", "/account/webhook", "roles:admin,auditor,actor", 200, {"data": {"url": "http://127.0.0.1:9/hook"}}),
    ("GET", "/admin/watches", "roles:admin", 200, {}),
    ("POST", "/admin/watches", "roles:admin", 400, {"data": {"path": "x"}}),
]
# Routes tested elsewhere in this file or in the browser test (state-changing or anonymous by design).
ELSEWHERE = {"POST /logout", "GET /register/{code}", "POST /register/{code}", "POST /login", "POST /scans",
             "GET /me/withdraw", "POST /me/withdraw", "DELETE /api/v1/people/{pid}",
             # tests/test_service_continuous.py: deleting a webhook, a watched folder (admin only, others 403)
             "DELETE /api/v1/webhook", "POST /account/webhook/delete", "DELETE /api/v1/watches/{wid}",
             "POST /admin/watches/{wid}/delete"}


def expected(kind: str, role: str, own: bool, ok: int) -> int:
    """The status a role should get."""
    if kind == "public":
        return ok
    if role == "anon":
        return 401
    if kind.startswith("roles:"):
        return ok if role in kind[6:].split(",") else 403
    if kind == "person-denied-only":
        return 200 if role == "admin" or (role == "actor" and own) else 404
    if kind == "found":
        return ok if role == "actor" and own else 403 if role != "actor" else 404
    if role == "admin":
        return ok
    who = "actor" if kind == "person" else "auditor"
    return ok if role == who and own else 404


def cases(table):
    for method, path, kind, ok, kwargs in table:
        for role in ROLES:
            for own in ((True, False) if "{" in path else (True,)):
                if kind == "person-denied-only" and expected(kind, role, own, ok) == 200:
                    continue  # deleting is allowed here; test_delete_person does it on purpose
                yield pytest.param(method, path, kind, ok, kwargs, role, own,
                                   id=f"{method} {path} {role} {'own' if own else 'other'}")


def fill(path: str, world: dict, own: bool) -> str:
    side = OWN if own else OTHER
    return path.format(person=side["person"], scan=world["scans"][side["scan"]], n=0, account=side["account"])


@pytest.mark.parametrize("method,path,kind,ok,kwargs,role,own", list(cases(API)))
def test_api_matrix(world, method, path, kind, ok, kwargs, role, own):
    headers = {} if role == "anon" else bearer(world["tokens"][SUBJECT[role]])
    if kind == "found":  # a finding that names alice: the actor bob asks about it as the "other" case
        path = path.format(scan=world["scans"]["aud1"], n=0)
        if role == "actor" and not own:
            headers = bearer(world["tokens"]["bob"])
    r = httpx.request(method, world["server"].url + fill(path, world, own), headers=headers, timeout=60, **kwargs)
    assert r.status_code == expected(kind, role, own, ok), r.text[:300]
    if r.status_code < 300 and r.headers["content-type"].startswith("application/json"):
        assert '"vector"' not in r.text or path.endswith("/export")  # vectors only in a person's own export
    if r.status_code == 401:
        assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("method,path,kind,ok,kwargs,role,own", list(cases(PAGES)))
def test_page_matrix(world, method, path, kind, ok, kwargs, role, own):
    if role == "anon":
        client, csrf = httpx.Client(base_url=world["server"].url), ""
    else:
        client, csrf = world["cookies"][SUBJECT[role]]
    kwargs = dict(kwargs)
    if method == "POST":
        kwargs["data"] = {**kwargs.get("data", {}), "csrf": csrf}
    if kind == "found":
        path = path.format(scan=world["scans"]["aud1"], n=0)
        if role == "actor" and not own:  # a finding that names someone else: bob asks for alice's finding
            client = httpx.Client(base_url=world["server"].url)
            _login(client, "bob", world["passwords"]["bob"])
    else:
        path = fill(path, world, own)
    r = client.request(method, path, timeout=60, follow_redirects=False, **kwargs)
    assert r.status_code == expected(kind, role, own, ok), r.text[:300]
    assert "content-security-policy" in r.headers and r.headers["x-frame-options"] == "DENY"


def _login(client: httpx.Client, uid: str, password: str) -> str:
    nonce = re.search(r'name="login_csrf" value="([^"]+)"', client.get("/login").text).group(1)
    r = client.post("/login", data={"user": uid, "password": password, "login_csrf": nonce})
    assert r.status_code == 303, r.text
    return re.search(r'name="csrf" value="([^"]+)"', client.get(r.headers["location"]).text).group(1)


def test_every_route_is_in_the_matrix():
    from audit.service import api, continuous, ops, pages

    def shape(route: str) -> str:
        return re.sub(r"{[^}]+}", "{}", route)

    covered = {shape(f"{m} {p}") for m, p, *_ in API + PAGES} | {shape(e) for e in ELSEWHERE}
    routers = (api.router, pages.router, ops.router, continuous.router)
    routes = [f"{m} {r.path}" for router in routers for r in router.routes for m in r.methods]
    assert routes and not [r for r in routes if shape(r) not in covered]


def test_people_list_has_no_vectors_or_crops(world):
    r = httpx.get(world["server"].url + "/api/v1/people", headers=bearer(world["tokens"]["aud1"]))
    assert {p["id"] for p in r.json()} >= {"alice", "bob"}
    assert set(r.json()[0]) == {"id", "name", "created", "samples", "consent"}


def test_auditor_sees_only_own_scans_in_list(world):
    r = httpx.get(world["server"].url + "/api/v1/scans", headers=bearer(world["tokens"]["aud1"]))
    assert {s["owner"] for s in r.json()} == {"aud1"}
    assert world["scans"]["aud2"] not in {s["id"] for s in r.json()}


def test_findings_are_the_cli_format_and_name_alice(world):
    r = httpx.get(f"{world['server'].url}/api/v1/scans/{world['scans']['aud1']}/findings",
                  headers=bearer(world["tokens"]["aud1"]))
    rows = r.json()
    assert [f["person"] for f in rows] == ["alice"] and rows[0]["kind"] == "match"
    # evidence names the file as the auditor uploaded it, never by the server's name for it (001.jpg)
    assert rows[0]["consent"] == "unknown" and rows[0]["path"] == "alice-ad.jpg"
    report = httpx.get(f"{world['server'].url}/api/v1/scans/{world['scans']['aud1']}/report",
                       headers=bearer(world["tokens"]["aud1"]))
    assert "Alice" in report.text and "sandbox" in report.headers["content-security-policy"]
    assert "alice-ad.jpg" in report.text and "001.jpg" not in report.text


def test_forms_need_the_csrf_token(world):
    client, csrf = world["cookies"]["alice"]
    r = client.post("/me/consent", data={"scope": "film", "decision": "allow"})
    assert r.status_code == 403
    r = client.post("/me/consent", data={"scope": "film", "decision": "allow", "csrf": "wrong" + csrf})
    assert r.status_code == 403
    person = httpx.get(world["server"].url + "/api/v1/people/alice", headers=bearer(world["tokens"]["alice"])).json()
    assert "film" not in person["consent"]


def test_scan_use_must_be_a_scope_word(world):
    client, csrf = world["cookies"]["aud1"]
    files = [("files", ("a.bin", b"x", "x/y"))]
    r = client.post("/scans", data={"csrf": csrf, "use": "ads; DROP TABLE"}, files=files)
    assert r.status_code == 400 and "is not a scope" in r.text
    r = httpx.post(world["server"].url + "/api/v1/scans", headers=bearer(world["tokens"]["aud1"]),
                   data={"use": "<script>"}, files=files)
    assert r.status_code == 400 and "is not a scope" in r.json()["detail"]


def test_delete_person(world, photos):
    """Allowed deletions: an actor withdraws their own person; an admin removes anyone. Both verified."""
    url, tokens = world["server"].url, world["tokens"]
    with open(photos["gdp"], "rb") as f:
        r = httpx.post(f"{url}/api/v1/people/carol/faces", headers=bearer(tokens["carol"]),
                       files=[("files", ("me.jpg", f, "image/jpeg"))], timeout=60)  # the server loads its model
    assert r.status_code == 200 and r.json()["files"][0]["status"] == "refused"  # 5 faces: refused
    assert "only you in it" in r.json()["files"][0]["reason"]
    # Carol's own face: another face of the gdp photo (yaoming.jpg is alice's, and a photo enrolled for one person
    # is refused for another).
    import cv2

    from audit import media

    carol = cv2.imencode(".jpg", media.load_image(photos["gdp"])[0:200, 60:260])[1].tobytes()
    r = httpx.post(f"{url}/api/v1/people/carol/faces", headers=bearer(tokens["root"]),
                   files=[("files", ("me.jpg", carol, "image/jpeg"))])
    assert r.json()["added"] == 1, r.text
    export = httpx.get(f"{url}/api/v1/people/carol/export", headers=bearer(tokens["carol"])).json()
    assert export["person"]["id"] == "carol" and len(export["samples"][0]["vector"]) == 512
    assert [e["event"] for e in export["log"]][-1] == "enroll" and export["reference_jpeg_base64"]
    r = httpx.delete(f"{url}/api/v1/people/carol", headers=bearer(tokens["carol"]))
    assert r.status_code == 200 and r.json()["vectors_removed"] == 1
    assert httpx.get(f"{url}/api/v1/people/carol", headers=bearer(tokens["carol"])).status_code == 404
    assert httpx.delete(f"{url}/api/v1/people/carol", headers=bearer(tokens["root"])).status_code == 404

    # The withdrawal page: enrolled again, then deleted after typing the id.
    httpx.post(f"{url}/api/v1/people/carol/faces", headers=bearer(tokens["root"]),
               files=[("files", ("me.jpg", carol, "image/jpeg"))])
    client = httpx.Client(base_url=url)
    csrf = _login(client, "carol", world["passwords"]["carol"])
    assert client.post("/me/withdraw", data={"csrf": csrf, "confirm": "bob"}).status_code == 400
    r = client.post("/me/withdraw", data={"csrf": csrf, "confirm": "carol"})
    assert r.status_code == 200 and "1 vector(s) removed" in r.text
    assert httpx.get(f"{url}/api/v1/people/carol", headers=bearer(tokens["root"])).status_code == 404


def test_invitation_link_works_once(world):
    url = world["server"].url
    r = httpx.post(f"{url}/api/v1/invites", headers=bearer(world["tokens"]["root"]),
                   json={"role": "actor", "person": "dana", "hours": 1})
    assert r.status_code == 201
    link = r.json()["url"]
    client = httpx.Client()
    page = client.get(link)
    assert page.status_code == 200 and "dana" in page.text
    nonce = re.search(r'name="login_csrf" value="([^"]+)"', page.text).group(1)
    r = client.post(link, data={"user": "dana", "password": "a long enough password", "login_csrf": nonce})
    assert r.status_code == 200 and re.search(r"la_[\w-]{20,}", r.text)
    assert client.get(url + "/me").status_code == 200  # logged in by the registration
    assert httpx.get(link).status_code == 404
    assert httpx.post(f"{url}/api/v1/invites", headers=bearer(world["tokens"]["aud1"]),
                      json={"role": "admin"}).status_code == 403


def test_login_rate_limit(world):
    client = httpx.Client(base_url=world["server"].url)
    statuses = []
    for _ in range(7):
        nonce = re.search(r'name="login_csrf" value="([^"]+)"', client.get("/login").text).group(1)
        statuses.append(client.post("/login", data={"user": "aud2", "password": "wrong-password",
                                                    "login_csrf": nonce}).status_code)
    assert statuses[:5] == [401] * 5 and statuses[5:] == [429, 429]
    nonce = re.search(r'name="login_csrf" value="([^"]+)"', client.get("/login").text).group(1)
    r = client.post("/login", data={"user": "aud2", "password": world["passwords"]["aud2"], "login_csrf": nonce})
    assert r.status_code == 429  # even the right password waits out the window


def test_logout_ends_the_session_on_the_server(world):
    client = httpx.Client(base_url=world["server"].url)
    csrf = _login(client, "root", world["passwords"]["root"])
    cookie = client.cookies.get("la_session")
    assert client.post("/logout", data={"csrf": csrf}).status_code == 303
    replay = httpx.get(world["server"].url + "/admin", cookies={"la_session": cookie})
    assert replay.status_code == 401


# Uploads are hostile input.
def test_upload_limits(world):
    url, token = world["server"].url, world["tokens"]["aud1"]
    before = len(list((world["home"] / "jobs").iterdir()))
    big = [("files", ("big.jpg", b"\xff\xd8\xff" + b"\0" * (4 << 20), "image/jpeg"))]
    r = httpx.post(f"{url}/api/v1/scans", headers=bearer(token), files=big)
    assert r.status_code == 413  # over --max-upload-mb 3, refused from Content-Length
    one = [("files", ("big.jpg", b"\xff\xd8\xff" + b"\0" * (1 << 20) + b"x", "image/jpeg"))]
    r = httpx.post(f"{url}/api/v1/scans", headers=bearer(token), files=one)
    assert r.status_code == 413 and "file too large" in r.text  # over --max-file-mb 1
    many = [("files", (f"{i}.jpg", b"x", "image/jpeg")) for i in range(5)]
    r = httpx.post(f"{url}/api/v1/scans", headers=bearer(token), files=many)
    assert r.status_code == 413 and "too many files" in r.text
    assert len(list((world["home"] / "jobs").iterdir())) == before  # nothing left behind
    assert not any(p.name.endswith(".part") for p in (world["home"] / "jobs").rglob("*"))

    def chunks():  # no Content-Length: counted as it streams
        yield (b'--x\r\nContent-Disposition: form-data; name="files"; filename="a.jpg"\r\n'
               b"Content-Type: image/jpeg\r\n\r\n")
        for _ in range(5):
            yield b"\0" * (1 << 20)

    r = httpx.post(f"{url}/api/v1/scans", headers={**bearer(token), "content-type": "multipart/form-data; boundary=x"},
                   content=chunks())
    assert r.status_code == 413


def test_uploads_typed_by_content_never_by_client_name(world, photos):
    url, token = world["server"].url, world["tokens"]["aud1"]
    png = _png_of(photos["yaoming"])
    files = [("files", ("../../../../tmp/escape.txt", png, "text/plain")),  # a PNG named .txt, with a path
             ("files", ("fake.jpg", b"GIF89a? not really", "image/jpeg")),  # GIF header: typed .gif, broken
             ("files", ("notes.xyz", b"plain words", "text/plain"))]
    r = httpx.post(f"{url}/api/v1/scans", headers=bearer(token), files=files)
    assert r.status_code == 202
    jid = r.json()["id"]
    status = wait_scan(url, token, jid)
    assert [i["file"] for i in status["inputs"]] == ["001.png", "002.gif", "003.xyz"]
    assert [i["name"] for i in status["inputs"]] == ["escape.txt", "fake.jpg", "notes.xyz"]
    rows = httpx.get(f"{url}/api/v1/scans/{jid}/findings", headers=bearer(token)).json()
    by_file = {}
    for row in rows:
        by_file.setdefault(row["path"], []).append(row)
    # evidence names each file as uploaded (cleaned of its path), not by the server's name for it
    assert by_file["escape.txt"][0]["person"] == "alice"
    assert by_file["fake.jpg"][0]["kind"] == "error" and by_file["notes.xyz"][0]["kind"] == "error"
    assert "unsupported file type '.xyz'" in by_file["notes.xyz"][0]["error"]  # its own type, not a made-up one
    assert not (world["home"] / "jobs" / jid / "input").exists()  # uploads deleted once scanned
    import stat

    assert stat.S_IMODE((world["home"] / "jobs" / jid).stat().st_mode) == 0o700
    assert not list((world["home"] / "tmp").iterdir())  # enrolment uploads are gone too


def _png_of(path) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", cv2.imread(str(path)))
    return buf.tobytes()


def test_scan_by_path_needs_a_scan_root(world):
    r = httpx.post(f"{world['server'].url}/api/v1/scans", headers=bearer(world["tokens"]["aud1"]),
                   json={"paths": ["/etc"]})
    assert r.status_code == 400 and "--scan-root" in r.text


def test_scan_by_path_inside_root(tmp_path, photos):
    root = tmp_path / "media"
    (root / "sub").mkdir(parents=True)
    shutil.copy(photos["yaoming"], root / "sub" / "a.jpg")
    home = tmp_path / "store"
    import audit

    with audit.open_store(home, key=None) as store:  # a scan with no one enrolled is an error, not a clean pass
        audit.enroll_faces(store, "alice", [photos["yaoming"]])
    _, token = add_account(home, "aud", "auditor")
    server = Server(home, "--scan-root", str(root)).start()
    try:
        url = server.url + "/api/v1/scans"
        for bad in (["../"], ["/etc/passwd"], ["sub/../../store"]):
            r = httpx.post(url, headers=bearer(token), json={"paths": bad})
            assert r.status_code == 400 and "outside" in r.text, bad
        (root / "link").symlink_to("/etc")
        assert httpx.post(url, headers=bearer(token), json={"paths": ["link"]}).status_code == 400
        r = httpx.post(url, headers=bearer(token), json={"paths": ["sub"], "use": "news"})
        assert r.status_code == 202
        status = wait_scan(server.url, token, r.json()["id"])
        assert status["status"] == "done" and status["summary"]["files"] == 1
    finally:
        server.stop()


def test_voice_upload_shows_voiced_seconds(world):
    from tests.helpers.cli import SHARED

    speakers = SHARED / "voices" / "librispeech-test-other"
    if not speakers.is_dir():
        pytest.skip("../shared/data/voices is not present")
    recordings = sorted(next(p for p in sorted(speakers.iterdir()) if p.is_dir()).glob("*.flac"))[:3]
    files = [("files", (f"take{i}.flac", p.read_bytes(), "audio/flac")) for i, p in enumerate(recordings)]
    files.append(("files", ("silence.wav", b"RIFF\0\0\0\0WAVEfmt ", "audio/wav")))
    r = httpx.post(f"{world['server'].url}/api/v1/people/bob/voices", headers=bearer(world["tokens"]["bob"]),
                   files=files, timeout=120)
    assert r.status_code == 200, r.text
    rows = r.json()["files"]
    assert [row["status"] for row in rows] == ["accepted"] * 3 + ["refused"]
    assert all(re.fullmatch(r"\d+\.\d s of speech", row["reason"]) for row in rows[:3])
    person = httpx.get(f"{world['server'].url}/api/v1/people/bob", headers=bearer(world["tokens"]["bob"])).json()
    assert person["samples"]["voice"] == 3
