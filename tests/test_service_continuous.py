"""Continuous audit through the web service: folders the admin has watched, webhooks per account (signed, at a
receiver on loopback; an endpoint down retried and logged without holding up a scan), the portal's "new" badge,
erasure of the delivery log, and a restart that does not scan a watched folder's files again."""

from __future__ import annotations

import re
import time

import httpx
import pytest

import audit
from audit import notify
from tests.helpers.receiver import Receiver
from tests.helpers.server import Server, add_account, bearer, wait_scan, login

pytestmark = [pytest.mark.service, pytest.mark.slow]
PID = "yao-ming-7"
WAIT_S = 120
ENV = {"AUDIT_WEBHOOK_BACKOFF_S": "0.2", "AUDIT_WEBHOOK_ATTEMPTS": "3"}


def until(test, what: str, server: Server):
    deadline = time.monotonic() + WAIT_S
    while not (got := test()):
        assert time.monotonic() < deadline, f"waited {WAIT_S} s for {what}: {server.log()}"
        time.sleep(0.2)
    return got




def test_watched_folders_webhooks_and_the_new_badge(photos, tmp_path):
    root, home = tmp_path / "deliveries", tmp_path / "store"
    (root / "studio").mkdir(parents=True)
    (root / "other").mkdir()
    with audit.open_store(home, key=None) as store:
        audit.enroll_faces(store, PID, [photos["yaoming"]], name="Yao")
    pw, tok = {}, {}
    for uid, role, person in [("root", "admin", None), ("aud", "auditor", None), ("al", "actor", PID)]:
        pw[uid], tok[uid] = add_account(home, uid, role, person)
    server = Server(home, "--scan-root", str(root), "--webhook-allow-private", env=ENV).start()
    auditor_rx, actor_rx = Receiver(), Receiver()
    try:
        api = httpx.Client(base_url=server.url, timeout=60)
        # Webhooks: the auditor's through the API, the actor's through her page; the admin's points nowhere.
        aud_secret = api.put("/api/v1/webhook", headers=bearer(tok["aud"]), json={"url": auditor_rx.url}).json()[
            "secret"]
        actor, csrf = login(server.url, "al", pw["al"])
        page = actor.post("/account/webhook", data={"url": actor_rx.url, "csrf": csrf})
        al_secret = re.search(r'id="webhook-secret">[^<]*<code>([^<]+)</code>', page.text).group(1)
        assert api.put("/api/v1/webhook", headers=bearer(tok["root"]),
                       json={"url": "http://127.0.0.1:9/down"}).status_code == 200
        assert api.put("/api/v1/webhook", headers=bearer(tok["aud"]), json={"url": "file:///etc/passwd"}
                       ).status_code == 400
        assert "secret" not in api.get("/api/v1/webhook", headers=bearer(tok["aud"])).json()

        # The admin watches two folders for the auditor; an auditor may not.
        for folder in ("studio", "other"):
            r = api.post("/api/v1/watches", headers=bearer(tok["root"]), json={"path": folder, "owner": "aud"})
            assert r.status_code == 201, r.text
        assert api.post("/api/v1/watches", headers=bearer(tok["aud"]), json={"path": "studio"}).status_code == 403
        assert api.post("/api/v1/watches", headers=bearer(tok["root"]), json={"path": "../"}).status_code == 400
        watches = {w["folder"]: w for w in api.get("/api/v1/watches", headers=bearer(tok["root"])).json()}
        assert set(watches) == {"studio", "other"} and str(root) not in str(watches)

        # A file copied in slowly appears as a scan in the auditor's list, once whole.
        data = photos["yaoming"].read_bytes()
        with open(root / "studio" / "spot.jpg", "wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
            time.sleep(2)
            f.write(data[len(data) // 2:])
        scans = until(lambda: api.get("/api/v1/scans", headers=bearer(tok["aud"])).json(), "the watch's scan", server)
        assert len(scans) == 1 and wait_scan(server.url, tok["aud"], scans[0]["id"])["status"] == "done"
        assert scans[0]["watch"] == watches["studio"]["id"] and scans[0]["owner"] == "aud"
        assert "watched: studio/spot.jpg" in login(server.url, "aud", pw["aud"])[0].get("/scans").text
        rows = api.get(f"/api/v1/scans/{scans[0]['id']}/findings", headers=bearer(tok["aud"])).json()
        assert [(r["kind"], r["person"], r["path"]) for r in rows] == [("match", PID, "studio/spot.jpg")]

        # Each account's webhook hears of it, signed with its own secret.
        headers, body = auditor_rx.wait(1, WAIT_S)[0]
        assert notify.verify(aud_secret, body, headers["x-likeness-signature"])
        import json

        sent = json.loads(body)
        assert (sent["person"], sent["scan"], sent["file"], sent["source"]) == (PID, scans[0]["id"],
                                                                                 "studio/spot.jpg", "watch")
        assert sent["score"] > sent["threshold"] and sent["time"]
        headers, body = actor_rx.wait(1, WAIT_S)[0]
        assert notify.verify(al_secret, body, headers["x-likeness-signature"])
        assert json.loads(body)["file"] == "spot.jpg"

        # A watched folder removed: said on its row; the other is still watched.
        (root / "other").rmdir()
        until(lambda: any(w["error"] for w in api.get("/api/v1/watches", headers=bearer(tok["root"])).json()),
              "the removed folder's error", server)
        (root / "studio" / "second.jpg").write_bytes(data + b"\0")
        until(lambda: len(api.get("/api/v1/scans", headers=bearer(tok["aud"])).json()) == 2, "a second scan",
              server)

        # The admin's endpoint is down: its deliveries are retried and logged, and its scan finished regardless.
        jid = api.post("/api/v1/scans", headers=bearer(tok["root"]), files=[
            ("files", ("mine.jpg", data, "image/jpeg"))]).json()["id"]
        assert wait_scan(server.url, tok["root"], jid)["status"] == "done"
        log = until(lambda: [d for d in api.get("/api/v1/webhook", headers=bearer(tok["root"])).json()["deliveries"]
                             if d["status"] == "failed"], "the admin's failed delivery", server)
        assert log[0]["attempts"] == 3 and "Connection refused" in log[0]["last_error"]
        assert "failed" in login(server.url, "root", pw["root"])[0].get("/account/webhook").text

        # The portal: the three findings new on the first visit (two watched files, the admin's upload), none on
        # the next.
        assert 'id="me-new">3 new' in actor.get("/me").text
        page = actor.get("/me/found").text
        assert page.count('class="badge new"') == 3 and 'id="found-new">3 new' in page
        assert 'class="badge new"' not in actor.get("/me/found").text
        assert 'id="me-new"' not in actor.get("/me").text

        # Only the admin deletes a watch; an account deletes its own webhook.
        wid = watches["other"]["id"]
        assert api.delete(f"/api/v1/watches/{wid}", headers=bearer(tok["aud"])).status_code == 403
        assert api.delete(f"/api/v1/watches/{wid}", headers=bearer(tok["root"])).status_code == 200
        root_page, root_csrf = login(server.url, "root", pw["root"])
        assert root_page.post(f"/admin/watches/{wid}/delete", data={"csrf": root_csrf}).status_code == 303
        assert actor.post("/account/webhook/delete", data={"csrf": "wrong"}).status_code == 403
        assert api.delete("/api/v1/webhook", headers=bearer(tok["root"])).status_code == 200
        assert api.delete("/api/v1/webhook", headers=bearer(tok["root"])).status_code == 404
        assert "webhook.set" in server.log_text() and "webhook.deleted" in server.log_text()
    finally:
        server.stop()

    # Restarted: the watched folder's files are not scanned again; a new one is.
    server = Server(home, "--scan-root", str(root), "--webhook-allow-private", env=ENV).start()
    try:
        (root / "studio" / "third.jpg").write_bytes(data + b"\0\0")
        until(lambda: len(api.get(server.url + "/api/v1/scans", headers=bearer(tok["aud"])).json()) == 3,
              "the third file's scan", server)
        time.sleep(3)
        names = [i["name"] for s in api.get(server.url + "/api/v1/scans", headers=bearer(tok["aud"])).json()
                 for i in s["inputs"]]
        assert sorted(names) == ["studio/second.jpg", "studio/spot.jpg", "studio/third.jpg"]
        # Her export lists the deliveries that named her, never a hook's URL or secret.
        mine = api.get(f"{server.url}/api/v1/people/{PID}/export", headers=bearer(tok["al"])).json()
        sent = mine["webhook_deliveries"]
        assert {d["to"] for d in sent} == {"your webhook", "an auditor's webhook"}, sent
        assert all(d["summary"]["person"] == PID for d in sent) and "whsec_" not in str(mine)
        assert "127.0.0.1" not in str(sent)
        # Withdrawal erases every delivery naming the person, and her webhook.
        assert api.delete(f"{server.url}/api/v1/people/{PID}", headers=bearer(tok["al"])).status_code == 200
    finally:
        server.stop()
        auditor_rx.close()
        actor_rx.close()
    held = [p.name for p in home.glob("notify.sqlite*") if PID.encode() in p.read_bytes()]
    assert held == []

    # Started without that scan root: its watched folder is not watched, and the page says why.
    server = Server(home, "--webhook-allow-private", env=ENV).start()
    try:
        watches = httpx.get(server.url + "/api/v1/watches", headers=bearer(tok["root"])).json()
        assert [w["error"] for w in watches] == ["not inside the server's scan roots now (--scan-root): not watched"]
    finally:
        server.stop()
