"""Accounts, passwords, tokens, invitations, sessions and the rate limiter, without a server; `users` commands."""

from __future__ import annotations

import stat
import time

import pytest
from click.testing import CliRunner

from audit.cli import cli
from audit.errors import AuditError, StoreError
from audit.service import auth
from audit.service.accounts import Accounts


@pytest.fixture
def accounts(tmp_path):
    a = Accounts(tmp_path)
    yield a
    a.close()


pytestmark = pytest.mark.service


def test_passwords_are_argon2_and_tokens_only_hashed(accounts, tmp_path):
    user, password, token = auth.add_account(accounts, "root", "admin", None)
    assert user.password.startswith("$argon2id$") and password not in user.password
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("service.sqlite*"))  # the database and its WAL
    assert password.encode() not in raw and token.encode() not in raw
    assert auth.digest(token).encode() in raw
    assert stat.S_IMODE((tmp_path / "service.sqlite").stat().st_mode) == 0o600
    assert auth.login(accounts, "root", password).id == "root"
    assert auth.login(accounts, "root", password + "x") is None
    assert auth.login(accounts, "nobody", password) is None
    assert auth.bearer(accounts, f"Bearer {token}").id == "root"
    assert auth.bearer(accounts, f"Bearer {token}x") is None
    assert auth.bearer(accounts, token) is None


def test_account_rules(accounts):
    with pytest.raises(AuditError, match="needs --person"):
        auth.add_account(accounts, "a", "actor", None)
    with pytest.raises(AuditError, match="only an actor"):
        auth.add_account(accounts, "a", "auditor", "alice")
    with pytest.raises(AuditError, match="bad account id"):
        auth.add_account(accounts, "../x", "auditor", None)
    with pytest.raises(AuditError, match="unknown role"):
        auth.add_account(accounts, "a", "root", None)
    auth.add_account(accounts, "a", "auditor", None)
    with pytest.raises(StoreError, match="already exists"):
        auth.add_account(accounts, "a", "auditor", None)


def test_invitations_are_single_use_and_expire(accounts):
    admin, _, _ = auth.add_account(accounts, "root", "admin", None)
    code = auth.new_invite(accounts, admin, "actor", "alice", hours=1)
    assert accounts.invite(auth.digest(code)).person == "alice"
    with pytest.raises(AuditError, match="at least 10"):
        auth.redeem(accounts, code, "alice", "short")
    user, token = auth.redeem(accounts, code, "alice", "a long enough password")
    assert (user.role, user.person) == ("actor", "alice") and auth.bearer(accounts, f"Bearer {token}").id == "alice"
    with pytest.raises(StoreError, match="unknown, used or expired"):
        auth.redeem(accounts, code, "alice2", "a long enough password")
    old = auth.new_invite(accounts, admin, "auditor", None, hours=0.0001)
    time.sleep(0.5)
    assert accounts.invite(auth.digest(old)) is None
    with pytest.raises(StoreError, match="unknown, used or expired"):
        auth.redeem(accounts, old, "late", "a long enough password")


def test_sessions_are_signed_server_side_and_expire(accounts):
    user, _, _ = auth.add_account(accounts, "root", "admin", None)
    sessions = auth.Sessions(accounts, hours=1)
    cookie = sessions.start(user)
    s = sessions.read(cookie)
    assert s.user.id == "root" and auth.csrf_ok(s, s.csrf) and not auth.csrf_ok(s, s.csrf + "x")
    assert sessions.read(cookie[:-2] + "xx") is None  # tampered signature
    assert sessions.read(sessions.signer.dumps("made-up-session-id")) is None  # signed but never issued
    sessions.end(s)
    assert sessions.read(cookie) is None
    short = auth.Sessions(accounts, hours=1 / 3600)  # one second
    cookie = short.start(user)
    time.sleep(2.1)
    assert short.read(cookie) is None


def test_rate_limit_window():
    limit = auth.RateLimit(limit=2, window=0.5)
    limit.fail("a")
    assert not limit.blocked("a")
    limit.fail("a")
    assert limit.blocked("a") and not limit.blocked("b")
    time.sleep(0.6)
    assert not limit.blocked("a")


def test_roles():
    from audit.service.accounts import User

    admin, aud, act = (User("x", r, "p" if r == "actor" else None, "", 0) for r in ("admin", "auditor", "actor"))
    assert auth.allowed(admin, "person.read", person="anyone") and auth.allowed(admin, "scan.read", owner="other")
    assert auth.allowed(aud, "scan.read", owner="x") and not auth.allowed(aud, "scan.read", owner="y")
    assert not auth.allowed(aud, "person.read", person="p") and not auth.allowed(aud, "admin")
    assert auth.allowed(act, "person.remove", person="p") and not auth.allowed(act, "person.remove", person="q")
    assert not auth.allowed(act, "scan.create") and not auth.allowed(None, "people.list")


def test_users_add_prints_password_and_token(tmp_path):
    home = tmp_path / "store"
    out = CliRunner().invoke(cli, ["--home", str(home), "users", "add", "pat", "--role", "actor", "--person", "pat",
                                   "--name", "Pat P."])
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert [line.split(": ")[0] for line in lines] == ["password", "token"]
    out = CliRunner().invoke(cli, ["--home", str(home), "people"])
    assert "pat\tPat P.\tno samples" in out.stdout  # the person is registered, with nothing enrolled yet
    out = CliRunner().invoke(cli, ["--home", str(home), "users", "list"])
    assert out.stdout == "pat\tactor\tpat\n"
    out = CliRunner().invoke(cli, ["--home", str(home), "users", "add", "pat", "--role", "auditor"])
    assert out.exit_code == 2 and "Error: account 'pat' already exists" in out.output
    out = CliRunner().invoke(cli, ["--home", str(home), "users", "add", "x", "--role", "actor"])
    assert out.exit_code == 2 and "needs --person" in out.output


def test_upload_typing():
    from audit.service.uploads import shown_name, sniff

    assert sniff(b"\xff\xd8\xff\xe0") == ".jpg" and sniff(b"\x89PNG\r\n\x1a\n") == ".png"
    assert sniff(b"RIFF\0\0\0\0WEBPVP8 ") == ".webp" and sniff(b"RIFF\0\0\0\0WAVEfmt ") == ".wav"
    assert sniff(b"\0\0\0\x18ftypmp42") == ".mp4" and sniff(b"\0\0\0\x18ftypM4A ") == ".m4a"
    assert sniff(b"\x1a\x45\xdf\xa3\x01webm") == ".webm" and sniff(b"fLaC") == ".flac"
    assert sniff(b"#!/bin/sh") is None
    assert shown_name("../../etc/passwd") == "passwd" and shown_name("C:\\x\\y.jpg") == "y.jpg"
    assert shown_name("") == "upload" and len(shown_name("a" * 1000)) == 200
