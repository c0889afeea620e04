"""Notifications in the store's map of personal data: `verify` checks notify.sqlite and watch.sqlite, a person's
export lists the deliveries naming them, and an encrypted store keeps webhook secrets and payloads sealed."""

from __future__ import annotations

import os

import pytest

from audit import notify
from audit.notify import deliver
from audit.store.watchstate import WatchState
from tests.helpers.cli import run


@pytest.fixture(autouse=True)
def loopback_receivers(monkeypatch):
    monkeypatch.setattr(deliver.Dispatcher, "allow_private", True)  # the receivers are on loopback
    yield
    notify.stop_all()


def test_verify_names_a_damaged_notify_or_watch_database(photos, audit_home, tmp_path):
    run("enroll", "face", "yao", photos["yaoming"])
    hooks = notify.Hooks(audit_home)
    hooks.register("aud", "auditor", "http://127.0.0.1:9/hook")
    hooks.close()
    state = WatchState(audit_home, "cli")
    state.mark(tmp_path / "a.jpg", os.stat(photos["yaoming"]), "ab" * 32)
    state.close()
    assert "ok" in run("verify").stdout
    good = (audit_home / "notify.sqlite").read_bytes()
    (audit_home / "notify.sqlite").write_bytes(good[:100] + b"\0garbage" * 200)
    out = run("verify", code=2)
    assert "notify.sqlite is damaged" in out.stdout + out.stderr
    (audit_home / "notify.sqlite").write_bytes(good)
    assert "ok" in run("verify").stdout
    (audit_home / "watch.sqlite").unlink()
    import sqlite3

    sqlite3.connect(audit_home / "watch.sqlite").execute("CREATE TABLE other (x)").connection.commit()
    out = run("verify", code=2)
    assert "watch.sqlite lacks its table(s) files" in out.stdout + out.stderr


MATCH = {"kind": "match", "modality": "face", "person": "alice", "path": "/srv/media/ad/spot-secret.jpg",
         "similarity": 0.71, "threshold": 0.4, "sha256": "cd" * 32, "consent": "unknown"}
COMPOSITE = {"kind": "composite", "modality": "face", "person": None, "path": "/srv/blend.png", "similarity": 0.6,
             "threshold": 0.5, "contributors": [{"person": "alice", "similarity": 0.55},
                                                {"person": "bob", "similarity": 0.52}]}


def stored(home) -> bytes:
    return b"".join(p.read_bytes() for p in home.glob("notify.sqlite*"))


def test_an_export_lists_the_deliveries_naming_the_person(tmp_path):
    hooks = notify.Hooks(tmp_path)
    hooks.register("aud", "auditor", "http://127.0.0.1:9/a")
    hooks.register("al", "actor", "http://127.0.0.1:9/b", person="alice")
    hooks.close()
    assert notify.findings_found(tmp_path, [MATCH, COMPOSITE], source="scan", scan="j1", owner="aud",
                                 deliver=False) == 4
    mine = notify.about(tmp_path, "alice")
    assert len(mine) == 4 and {d["to"] for d in mine} == {"your webhook", "an auditor's webhook"}
    assert all(d["status"] == "pending" and d["summary"]["scan"] == "j1" for d in mine)
    text = str(mine)
    assert "bob" not in text and "/srv/" not in text and "127.0.0.1" not in text and "whsec_" not in text
    assert sorted(d["summary"]["people"] for d in mine if "people" in d["summary"]) == [
        ["alice"], ["alice", "another registered person"]]
    assert len(notify.about(tmp_path, "bob")) == 1  # bob has no hook: only the auditor's summary names him
    assert notify.about(tmp_path, "carol") == []


def test_an_encrypted_store_seals_webhook_secrets_and_payloads(tmp_path):
    from audit.errors import KeyProblem
    from audit.store.crypto import Cipher
    from tests.helpers.receiver import Receiver

    cipher, receiver = Cipher(os.urandom(32)), Receiver()
    try:
        hooks = notify.Hooks(tmp_path, cipher)
        hook = hooks.register("aud", "auditor", receiver.url)
        hooks.close()
        assert notify.findings_found(tmp_path, [MATCH], source="scan", scan="j1", owner="aud", cipher=cipher) == 1
        ((headers, body),) = receiver.wait(1)  # the secret opened in memory signs the body
        assert notify.verify(hook.secret, body, headers["x-likeness-signature"])
        notify.stop_all()
        raw = stored(tmp_path)
        assert hook.secret.encode() not in raw and b"spot-secret" not in raw and b"cd" * 32 not in raw
        plain = notify.Hooks(tmp_path)  # no key: nothing read, nothing plaintext written
        with pytest.raises(KeyProblem):
            plain.hook("aud")
        with pytest.raises(KeyProblem):
            plain.register("aud2", "auditor", receiver.url)
        plain.close()
        with pytest.raises(KeyProblem):
            notify.Hooks(tmp_path, Cipher(os.urandom(32)))  # another key
        assert notify.about(tmp_path, "alice", cipher)[0]["summary"]["file"] == "spot-secret.jpg"
    finally:
        receiver.close()


def test_encrypt_seals_the_webhook_rows_already_there(photos, audit_home, tmp_path):
    from audit.store.crypto import Cipher, parse_key

    run("enroll", "face", "yao", photos["yaoming"])
    hooks = notify.Hooks(audit_home)
    hook = hooks.register("aud", "auditor", "http://127.0.0.1:9/hook")
    hooks.close()
    notify.findings_found(audit_home, [MATCH], source="scan", owner="aud", deliver=False)
    assert hook.secret.encode() in stored(audit_home) and b"spot-secret" in stored(audit_home)
    key = tmp_path / "store.key"
    run("keygen", "--out", key)
    run("--key-file", key, "encrypt")
    raw = stored(audit_home)
    assert hook.secret.encode() not in raw and b"spot-secret" not in raw
    hooks = notify.Hooks(audit_home, Cipher(parse_key(key.read_text())))
    assert hooks.hook("aud").secret == hook.secret and hooks.log("aud")[0].payload["file"].endswith("spot-secret.jpg")
    hooks.close()
    assert "ok" in run("--key-file", key, "verify").stdout
