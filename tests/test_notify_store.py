"""Notifications in the store's map of personal data: `verify` checks notify.sqlite and watch.sqlite, a person's
export lists the deliveries naming them, and an encrypted store keeps webhook secrets and payloads sealed."""

from __future__ import annotations

import os

from audit import notify
from audit.store.watchstate import WatchState
from tests.helpers.cli import run


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
