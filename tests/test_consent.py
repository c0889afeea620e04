"""Consent: recorded scope by scope, shown, carried by every finding, and enforced with --fail-on unconsented."""

from __future__ import annotations

import json

import pytest
from tests.helpers.store_worker import run_op

from tests.helpers.cli import run
from audit.store import Store



@pytest.fixture
def yao(photos):
    run("enroll", "face", "yao", str(photos["yaoming"]), "--name", "Yao Ming")
    return photos["yaoming"]


def scan(path, use, code=0):
    out = run("scan", str(path), "--json", "--use", use, "--fail-on", "unconsented", "--workers", "1", code=code)
    found = [json.loads(line) for line in out.stdout.splitlines()]
    assert [f["person"] for f in found] == ["yao"]
    return found[0]["consent"]


def test_every_status_reaches_findings_and_fail_on(yao, audit_home):
    run("consent", "yao", "--allow", "research,training", "--deny", "advertising", "--note", "contract 7, clause 4")
    run("consent", "yao", "--allow", "avatar", "--until", "2020-12-31")
    assert scan(yao, "research") == "allowed"
    assert scan(yao, "advertising", code=1) == "denied"
    assert scan(yao, "avatar", code=1) == "expired"
    assert scan(yao, "film", code=1) == "unknown"
    scans = [e["details"] for e in Store(audit_home, key=None).log.entries() if e["event"] == "scan"]
    assert [(d["use"], d["matched"][0][1:]) for d in scans] == [
        ("research", ["yao", "allowed"]), ("advertising", ["yao", "denied"]), ("avatar", ["yao", "expired"]),
        ("film", ["yao", "unknown"])]
    assert all(d["files"] == 1 and d["people"] == {"yao": 1} and len(d["matched"][0][0]) == 64 for d in scans)


def test_consent_shows_and_changes(yao):
    assert run("consent", "yao").stdout == "yao: no consent recorded (every use is unknown)\n"
    run("consent", "yao", "--allow", "Research", "--allow", "training", "--until", "2999-01-01")
    run("consent", "yao", "--deny", "advertising,voice-clone", "--note", "withdrawn by letter")
    assert run("consent", "yao").stdout == (
        "scope\tstatus\tuntil\tnote\n"
        "advertising\tdenied\t-\twithdrawn by letter\n"
        "research\tallowed\t2999-01-01\t-\n"
        "training\tallowed\t2999-01-01\t-\n"
        "voice-clone\tdenied\t-\twithdrawn by letter\n"
    )
    run("consent", "yao", "--forget", "training", "--deny", "research")
    shown = json.loads(run("consent", "yao", "--json").stdout)
    assert {k: v["status"] for k, v in shown["consent"].items()} == {
        "advertising": "denied", "research": "denied", "voice-clone": "denied"}
    people = json.loads(run("people", "--json").stdout)
    assert people[0]["consent"]["research"]["allowed"] is False


def test_wildcard_denies_every_use_not_allowed_by_name(tmp_path):
    store = Store(tmp_path, key=None)
    run_op(store, "enroll", "ann")
    store.consent("ann", allow=["research"], deny=["*"])
    status = store.consent_status
    assert status("ann", "research") == "allowed"
    assert status("ann", "advertising") == "denied"
    assert status("ann", "ADVERTISING ") == "denied"
    store.consent("ann", forget=["*"])
    assert status("ann", "advertising") == "unknown"


def test_consent_changes_are_logged(tmp_path):
    store = Store(tmp_path, key=None)
    run_op(store, "enroll", "ann")
    store.consent("ann", allow=["research"], until="2030-01-01", note="contract 7")
    entry = store.log.entries()[-1]
    assert entry["event"] == "consent"
    assert entry["details"] == {"person": "ann", "allow": ["research"], "deny": [], "until": "2030-01-01",
                                "forget": [], "note": "contract 7"}


def test_unknown_scope_words_are_accepted_with_a_note(yao):
    result = run("consent", "yao", "--allow", "dubbing")
    assert "note: 'dubbing' is not a starter scope" in result.stderr
    assert "dubbing\tallowed" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--allow", "bad scope"], "Error: 'bad scope' is not a scope"),
    (["--allow", "research", "--deny", "research"], "Error: scope given twice with different meanings: research"),
    (["--deny", "ads", "--until", "2030-01-01"], "Error: until applies to allowed scopes; give at least one"),
    (["--allow", "ads", "--until", "next year"], "Error: until 'next year' is not a date (YYYY-MM-DD)"),
])
def test_bad_consent_input_is_a_usage_error(yao, args, message):
    assert message in run("consent", "yao", *args, code=2).stderr


def test_consent_for_unknown_person_fails():
    assert "Error: no person 'nobody' is registered" in run("consent", "nobody", "--allow", "research", code=2).stderr


def test_fail_on_unconsented_needs_use(yao):
    result = run("scan", str(yao), "--fail-on", "unconsented", code=2)
    assert "Error: --fail-on unconsented needs --use SCOPE" in result.stderr
