"""Review over a real server: an auditor decides on their scan's findings (API and pages), the actor a finding names
answers "this is me" / "not me", the report shows it, the summary counts it, and a withdrawal erases it."""

from __future__ import annotations

import re

import httpx
import pytest

import audit
from tests.helpers.server import Server, add_account, bearer, wait_scan, login

pytestmark = pytest.mark.service




def test_review_and_answers_through_the_service(tmp_path, photos):
    home = tmp_path / "store"
    with audit.open_store(home, key=None) as store:
        audit.enroll_faces(store, "alice", [photos["yaoming"]], name="Alice")
        audit.enroll_faces(store, "bob", [photos["gdp"]], name="Bob", pick="largest")
    pw, tok = {}, {}
    for uid, role, person in [("root", "admin", None), ("aud1", "auditor", None), ("aud2", "auditor", None),
                              ("alice", "actor", "alice"), ("bob", "actor", "bob")]:
        pw[uid], tok[uid] = add_account(home, uid, role, person)
    server = Server(home).start()
    url = server.url
    try:
        with open(photos["yaoming"], "rb") as f:
            jid = httpx.post(f"{url}/api/v1/scans", headers=bearer(tok["aud1"]),
                             files=[("files", ("ad.jpg", f, "image/jpeg"))]).json()["id"]
        assert wait_scan(url, tok["aud1"], jid)["status"] == "done"
        assert httpx.get(f"{url}/api/v1/scans/{jid}/reviews", headers=bearer(tok["aud1"])).json() == {
            "0": {"state": "open", "answers": {}}}

        # The auditor decides through the API; the wrong auditor, an actor and a bad state are refused.
        put = f"{url}/api/v1/scans/{jid}/findings/0/review"
        r = httpx.put(put, headers=bearer(tok["aud1"]), json={"state": "confirmed", "note": "ad for shoes"})
        assert r.status_code == 200 and r.json()["reviewer"] == "aud1" and r.json()["people"] == ["alice"]
        assert httpx.put(put, headers=bearer(tok["aud2"]), json={"state": "dismissed"}).status_code == 404
        assert httpx.put(put, headers=bearer(tok["alice"]), json={"state": "dismissed"}).status_code == 404
        r = httpx.put(put, headers=bearer(tok["aud1"]), json={"state": "maybe"})
        assert r.status_code == 400 and "unknown state 'maybe'" in r.json()["detail"]
        assert httpx.put(f"{url}/api/v1/scans/{jid}/findings/9/review", headers=bearer(tok["aud1"]),
                         json={"state": "open"}).status_code == 404
        review = httpx.get(f"{url}/api/v1/scans/{jid}/reviews", headers=bearer(tok["aud1"])).json()["0"]
        assert (review["state"], review["reviewer"], review["note"]) == ("confirmed", "aud1", "ad for shoes")
        rows = httpx.get(f"{url}/api/v1/scans/{jid}/findings?reviews=true", headers=bearer(tok["aud1"])).json()
        assert (rows[0]["review_state"], rows[0]["reviewer"], rows[0]["review_note"]) == ("confirmed", "aud1",
                                                                                         "ad for shoes")
        assert rows[0]["finding_id"] == audit.finding_id(rows[0])
        page = httpx.get(f"{url}/api/v1/scans/{jid}/report", headers=bearer(tok["aud1"]))
        assert "confirmed</b> by aud1" in page.text and "ad for shoes" in page.text
        assert "sandbox" in page.headers["content-security-policy"]

        # ... and through its pages, with the CSRF token.
        aud, csrf = login(url, "aud1", pw["aud1"])
        form = f"/scans/{jid}/findings/0/review"
        assert aud.post(form, data={"state": "escalated"}).status_code == 403
        r = aud.post(form, data={"state": "escalated", "note": "legal", "csrf": csrf})
        assert r.status_code == 303 and r.headers["location"] == f"/scans/{jid}#f0"
        text = aud.get(f"/scans/{jid}").text
        assert "review-escalated" in text and "legal" in text

        # The actor answers from their portal: the API and the page; bob, whom it does not name, cannot.
        me = f"{url}/api/v1/me/found/{jid}/0"
        r = httpx.put(me, headers=bearer(tok["alice"]), json={"answer": "me"})
        assert r.status_code == 200 and r.json()["who"] == "alice" and r.json()["state"] == "me"
        assert httpx.put(me, headers=bearer(tok["bob"]), json={"answer": "not-me"}).status_code == 404
        assert httpx.put(me, headers=bearer(tok["aud1"]), json={"answer": "not-me"}).status_code == 403
        assert httpx.put(me, headers=bearer(tok["alice"]), json={"answer": "maybe"}).status_code == 400
        actor, acsrf = login(url, "alice", pw["alice"])
        r = actor.post(f"/me/found/{jid}/0/answer", data={"answer": "not-me", "csrf": acsrf})
        assert r.status_code == 303
        found = actor.get("/me/found").text
        assert re.search(r'<dd class="answer">not me</dd>', found) and "legal" not in found  # not the auditor's note
        answers = httpx.get(f"{url}/api/v1/scans/{jid}/reviews", headers=bearer(tok["aud1"])).json()["0"]["answers"]
        assert answers == {"alice": "not-me"}
        assert "alice says: not me" in aud.get(f"/scans/{jid}").text

        # The summary: auditors and admins, not actors.
        summary = httpx.get(f"{url}/api/v1/reviews/summary", headers=bearer(tok["root"])).json()
        assert [(s["person"], s["not_me"], s["me"]) for s in summary] == [("alice", 1, 0)]
        assert httpx.get(f"{url}/api/v1/reviews/summary", headers=bearer(tok["alice"])).status_code == 403
        assert "<td>alice</td><td>1</td>" in aud.get("/reviews").text

        # Every decision was logged, naming the web account.
        with audit.open_store(home, key=None) as store:
            events = [(e["event"], e["actor"]) for e in store.log.entries() if e["event"] in ("review", "answer")]
        assert events == [("review", "web:aud1"), ("review", "web:aud1"), ("answer", "web:alice"),
                          ("answer", "web:alice")]

        # The person's export has the decisions on findings naming them: their own answer with its note, the
        # reviewer's state without the reviewer's note.
        export = httpx.get(f"{url}/api/v1/people/alice/export", headers=bearer(tok["alice"])).json()["reviews"]
        assert sorted((r["state"], r["answered_by_you"]) for r in export) == [("escalated", False), ("not-me", True)]
        assert all(r["note"] is None for r in export) and "legal" not in str(export)

        # Withdrawal erases the decisions with everything else.
        assert httpx.delete(f"{url}/api/v1/people/alice", headers=bearer(tok["alice"])).status_code == 200
        assert httpx.get(f"{url}/api/v1/reviews/summary", headers=bearer(tok["root"])).json() == []
        assert httpx.get(f"{url}/api/v1/scans/{jid}/reviews", headers=bearer(tok["aud1"])).json() == {
            "0": {"state": "open", "answers": {}}}
        r = httpx.put(put, headers=bearer(tok["aud1"]), json={"state": "confirmed"})
        assert r.status_code == 400 and "names no registered person" in r.json()["detail"]
    finally:
        server.stop()
