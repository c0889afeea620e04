"""Webhooks through the library: signed POSTs to a receiver on loopback, retries logged, the caller never waits."""

from __future__ import annotations

import json
import time

import pytest

from audit import notify
from audit.errors import InputError
from audit.notify import deliver
from tests.helpers.receiver import Receiver

MATCH = {"kind": "match", "modality": "face", "person": "alice", "path": "/srv/media/ad/spot.jpg",
         "similarity": 0.71, "threshold": 0.4, "sha256": "ab" * 32, "consent": "unknown"}
COMPOSITE = {"kind": "composite", "modality": "face", "person": None, "path": "blend.png", "similarity": 0.6,
             "threshold": 0.5, "contributors": [{"person": "alice", "similarity": 0.55},
                                                {"person": "bob", "similarity": 0.52}]}


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(deliver, "BACKOFF_S", 0.05)
    monkeypatch.setattr(deliver, "ATTEMPTS", 3)
    monkeypatch.setattr(deliver.Dispatcher, "allow_private", True)  # the receivers are on loopback
    yield
    notify.stop_all()


def test_signed_summaries_reach_the_accounts_they_concern(tmp_path):
    auditor, actor, other = Receiver(), Receiver(), Receiver()
    hooks = notify.Hooks(tmp_path)
    aud = hooks.register("aud1", "auditor", auditor.url)
    act = hooks.register("al", "actor", actor.url, person="alice")
    hooks.register("aud2", "auditor", other.url)
    hooks.close()
    assert notify.findings_found(tmp_path, [MATCH, COMPOSITE, {"kind": "error", "path": "x"}], source="scan",
                                 scan="j1", owner="aud1") == 4
    (h1, b1), (h2, b2) = sorted(auditor.wait(2), key=lambda x: json.loads(x[1])["kind"])
    for headers, body in ((h1, b1), (h2, b2)):
        assert notify.verify(aud.secret, body, headers["x-likeness-signature"])
        assert headers["x-likeness-signature"].startswith("sha256=")
        assert int(headers["x-likeness-timestamp"]) == json.loads(body)["sent_at"]
    assert not notify.verify(act.secret, b1, h1["x-likeness-signature"])
    composite, match = json.loads(b1), json.loads(b2)
    assert match["person"] == "alice" and match["scan"] == "j1" and match["file"] == "/srv/media/ad/spot.jpg"
    assert match["score"] == 0.71 and match["threshold"] == 0.4 and match["time"]
    assert composite["people"] == ["alice", "bob"]
    # The actor hears of both findings naming alice, as she may see them: the file by its name, bob unnamed.
    seen = sorted((json.loads(b) for _, b in actor.wait(2)), key=lambda p: p["kind"])
    assert [p["person"] for p in seen] == ["alice", "alice"] and seen[1]["file"] == "spot.jpg"
    assert seen[0]["score"] == 0.55 and "bob" not in json.dumps(seen)
    assert all(notify.verify(act.secret, b, h["x-likeness-signature"]) for h, b in actor.got)
    time.sleep(0.3)
    assert other.got == []  # aud2's hook hears nothing of aud1's scan
    hooks = notify.Hooks(tmp_path)
    assert [d.status for d in hooks.log("aud1")] == ["delivered", "delivered"]
    hooks.close()
    for r in (auditor, actor, other):
        r.close()


def test_endpoint_down_is_retried_logged_and_never_blocks(tmp_path):
    slow = Receiver(block=True)  # answers only once the test lets it
    hooks = notify.Hooks(tmp_path)
    hooks.register("aud", "auditor", "http://127.0.0.1:9/nothing-listens")
    hooks.register("al", "actor", slow.url, person="alice")
    queued = notify.findings_found(tmp_path, [MATCH], source="rematch", owner="aud")
    assert queued == 2 and slow.got == []  # returned while the receiver still holds the request
    deadline = time.monotonic() + 30
    while hooks.log("aud")[0].status == "pending" and time.monotonic() < deadline:
        time.sleep(0.05)
    failed = hooks.log("aud")[0]
    assert failed.status == "failed" and failed.attempts == 3
    assert "Connection refused" in failed.last_error and "gave up after 3 attempts" in failed.last_error
    slow.hold.set()
    body = json.loads(slow.wait(1)[0][1])
    assert body["found_before_enrolment"] is True and body["source"] == "rematch"
    hooks.close()
    slow.close()


def test_an_error_answer_is_retried_then_delivered(tmp_path):
    flaky = Receiver(status=503)
    hooks = notify.Hooks(tmp_path)
    hooks.register("aud", "auditor", flaky.url)
    notify.findings_found(tmp_path, [MATCH], source="scan", owner="aud")
    flaky.wait(1)
    flaky.status = 200
    flaky.wait(2)
    deadline = time.monotonic() + 30
    while hooks.log("aud")[0].status == "pending" and time.monotonic() < deadline:
        time.sleep(0.05)
    d = hooks.log("aud")[0]
    assert (d.status, d.attempts, d.last_status) == ("delivered", 2, 200)
    assert json.loads(flaky.got[0][1])["delivery"] == json.loads(flaky.got[1][1])["delivery"] == d.id
    hooks.close()
    flaky.close()


def test_no_hooks_no_file_and_bad_urls_refused(tmp_path):
    assert notify.findings_found(tmp_path, [MATCH], source="scan", owner="x") == 0
    assert not (tmp_path / notify.NOTIFY_FILE).exists()
    hooks = notify.Hooks(tmp_path)
    for bad in ("file:///etc/passwd", "ftp://host/x", "http://", "not a url"):
        with pytest.raises(InputError, match="http"):
            hooks.register("a", "auditor", bad)
    hooks.close()


def test_erasure_deletes_the_persons_deliveries(tmp_path):
    hooks = notify.Hooks(tmp_path)
    hooks.register("aud", "auditor", "http://127.0.0.1:9/x")
    hooks.register("al", "actor", "http://127.0.0.1:9/y", person="alice")
    hooks.queue([("aud", ["alice"], {"person": "alice"}), ("aud", ["bob"], {"person": "bob"})])
    hooks.close()
    notify.erase(tmp_path, "alice")
    hooks = notify.Hooks(tmp_path)
    assert [d.payload["person"] for d in hooks.log("aud")] == ["bob"] and hooks.hook("al") is None
    hooks.close()
    assert not any(b"alice" in p.read_bytes() for p in tmp_path.iterdir() if p.is_file())


def test_the_log_keeps_each_accounts_latest_deliveries(tmp_path, monkeypatch):
    from audit.store import webhooks

    monkeypatch.setattr(webhooks, "LOG_KEEP", 2)
    hooks = notify.Hooks(tmp_path)
    hooks.register("aud", "auditor", "http://127.0.0.1:9/x")
    first = hooks.queue([("aud", ["a"], {"n": 1}), ("aud", ["a"], {"n": 2})])
    for did in first:
        hooks.finish(did, "delivered", 200, None)
    time.sleep(0.01)
    hooks.queue([("aud", ["a"], {"n": 3})])
    kept = [d.payload["n"] for d in hooks.log("aud")]
    assert len(kept) == 2 and kept[0] == 3  # the newest, and one of the two before it
    hooks.close()
