"""The web pages read as their readers need: a running scan refreshes itself, saves are confirmed, "where I was found"
says the use, date, scan and file, errors are worded for the person who uploaded, and the JSON link works signed in."""

from __future__ import annotations

import re
from types import SimpleNamespace

import httpx
import pytest

from tests.helpers.server import Server, add_account, bearer, wait_scan, login

pytestmark = pytest.mark.service


@pytest.fixture(scope="module")
def site(tmp_path_factory, photos):
    """alice enrolled with an actor account; an auditor's finished scan of her photo (for advertising, which she
    denied) beside a CSV file."""
    import audit

    home = tmp_path_factory.mktemp("pages") / "store"
    store = audit.open_store(home, key=None)
    audit.enroll_faces(store, "alice", [photos["yaoming"]], name="Alice")
    store.consent("alice", deny=["advertising"])
    store.close()
    passwords, tokens = {}, {}
    for uid, role, person in [("alice", "actor", "alice"), ("aud", "auditor", None)]:
        passwords[uid], tokens[uid] = add_account(home, uid, role, person)
    server = Server(home).start()
    with open(photos["yaoming"], "rb") as f:
        r = httpx.post(server.url + "/api/v1/scans", headers=bearer(tokens["aud"]), data={"use": "advertising"},
                       files=[("files", ("poster.jpg", f, "image/jpeg")),
                              ("files", ("cast-list.csv", b"name,role\nalice,lead\n", "text/csv"))])
    assert r.status_code == 202, r.text
    jid = r.json()["id"]
    assert wait_scan(server.url, tokens["aud"], jid)["status"] == "done"
    yield {"url": server.url, "passwords": passwords, "tokens": tokens, "scan": jid}
    server.stop()




def test_scan_page_words_errors_and_scores_for_its_reader(site):
    client, _ = login(site["url"], "aud", site["passwords"]["aud"])
    page = client.get(f"/scans/{site['scan']}").text
    assert "error (None)" not in page and "None" not in page
    assert "could not be read" in page and "<dt>Audited</dt>" not in page  # the photo was read
    assert "not a photo, video or sound recording this tool reads (a &#39;.csv&#39; file)" in page
    assert ".bin" not in page
    sims = re.findall(r"<td>(\d+\.\d+) <span class=\"muted\">\(threshold (\d+\.\d+)\)", page)
    assert sims and all(len(s.split(".")[1]) == 2 and len(t.split(".")[1]) == 2 for s, t in sims)


def test_findings_json_link_works_signed_in(site):
    client, _ = login(site["url"], "aud", site["passwords"]["aud"])
    page = client.get(f"/scans/{site['scan']}").text
    link = re.search(r'href="([^"]+)">Findings as JSON<', page).group(1)
    r = client.get(link)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    api = httpx.get(f"{site['url']}/api/v1/scans/{site['scan']}/findings", headers=bearer(site["tokens"]["aud"]))
    assert r.json() == api.json() and any(row.get("person") == "alice" for row in r.json())
    assert httpx.get(site["url"] + link).status_code == 401  # no session, no findings


def test_only_a_running_scan_refreshes_itself(site):
    client, _ = login(site["url"], "aud", site["passwords"]["aud"])
    assert 'http-equiv="refresh"' not in client.get(f"/scans/{site['scan']}").text  # done: nothing to wait for

    from audit.service.web import TEMPLATES

    for status, refresh in (("queued", True), ("running", True), ("done", False), ("failed", False)):
        job = SimpleNamespace(id="j1", status=status, done_files=0, total_files=2, use=None, created=0, owner="aud",
                              finished=None, error=None, summary=None)
        html = TEMPLATES.get_template("scan.html").render(job=job, rows=None, names={}, me=None, csrf="")
        assert ('<meta http-equiv="refresh"' in html) is refresh, status


def test_a_scan_that_read_no_file_says_nothing_was_audited():
    from audit.service.web import TEMPLATES

    summary = {"files": 2, "faces": 0, "voices": 0, "findings": 0, "errors": 2, "unread": 2}
    job = SimpleNamespace(id="j1", status="done", done_files=2, total_files=2, use=None, created=0, owner="aud",
                          finished=None, error=None, summary=summary)
    html = TEMPLATES.get_template("scan.html").render(job=job, rows=[], names={}, me=None, csrf="", reviews={})
    assert "<dt>Audited</dt><dd><strong>Nothing: none of the 2 files could be read.</strong>" in html


def test_consent_save_is_confirmed(site):
    client, csrf = login(site["url"], "alice", site["passwords"]["alice"])
    assert 'id="consent-saved"' not in client.get("/me").text
    r = client.post("/me/consent", data={"csrf": csrf, "scope": "research", "decision": "allow"},
                    follow_redirects=True)
    assert r.status_code == 200 and 'id="consent-saved"' in r.text and "saved" in r.text
    assert "research" in r.text


def test_where_i_was_found_says_use_date_scan_and_file(site):
    client, _ = login(site["url"], "alice", site["passwords"]["alice"])
    page = client.get("/me/found").text
    card = re.search(r'<article class="card finding[^"]*"[^>]*>(.*?)</article>', page, re.S).group(1)
    assert "advertising (you denied this use)" in card
    assert "Use declared" not in card and "<dd>denied</dd>" not in card
    assert re.search(r"<dt>Date</dt><dd>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</dd>", card)
    assert f"<code>{site['scan']}</code>" in card
    assert "<dt>File</dt><dd>poster.jpg</dd>" in card  # the name it was uploaded with, not the server's 001.jpg
    assert re.search(r"<dt>Similarity</dt><dd>\d\.\d\d \(threshold \d\.\d\d\)</dd>", card)
    assert "1 finding in audited media names you" in page


def test_use_words():
    from audit.service.words import file_error, use_words

    assert use_words("advertising", "allowed") == "advertising (you allowed this use)"
    assert use_words(None, None) == "no use stated by the auditor"
    assert use_words("ads", "expired") == "ads (your permission for this use had expired)"
    assert file_error(None) == "it could not be read (no reason was recorded)"
    assert "a file without an extension" in file_error("unsupported file type '(none)'")
    assert file_error("empty file") == "empty file"


def test_a_file_of_another_kind_is_refused_in_words(site):
    client, csrf = login(site["url"], "alice", site["passwords"]["alice"])
    page = client.post("/me/faces", data={"csrf": csrf}, files=[("files", ("cast-list.csv", b"a,b\n", "text/csv"))])
    row = re.search(r"<tr[^>]*>\s*<td>cast-list\.csv</td>(.*?)</tr>", page.text, re.S)
    assert row, page.text[-2000:]
    assert "refused" in row[1] and ".bin" not in page.text and "None" not in row[1], row[1]
    assert "not a photo, video or sound recording this tool reads (a &#39;.csv&#39; file)" in row[1]
