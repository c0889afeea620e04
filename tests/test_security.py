"""Template protection: deletion leaves no bytes behind, encryption at rest, no network, no pickle."""

from __future__ import annotations

import ast
import base64
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from tests.helpers.store_worker import MODELS, reference, run_op, vectors

from tests.helpers.cli import run
from audit.store.crypto import KeyProblem, new_key
from audit.errors import StoreError
from audit.store import Store

AUDIT = Path(__file__).resolve().parents[1] / "audit"



def files_holding(home: Path, needle: bytes) -> list[str]:
    """Every file in the store folder whose bytes contain needle."""
    return sorted(p.name for p in home.rglob("*") if p.is_file() and needle in p.read_bytes())


def files_holding_any(home: Path) -> bytes:
    """Every file of the store folder, concatenated."""
    return b"".join(p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file())


def test_remove_leaves_no_vector_bytes_and_no_match(photos, audit_home):
    run("enroll", "face", "yao", str(photos["yaoming"]))
    run("enroll", "face", "gdp", str(photos["gdp"]), "--pick", "largest")
    run("consent", "yao", "--allow", "research", "--note", "contract 7")
    store = Store(audit_home)
    _, vecs, people = store.vectors(*store.models()[0])
    vec = vecs[people.index("yao")].astype(np.float32).tobytes()
    crop = store.reference("yao")
    store.close()
    pieces = [vec, vec[:64], vec[-64:], crop[len(crop) // 2: len(crop) // 2 + 64]]
    assert files_holding(audit_home, vec), "positive control: the vector is in the store before removal"
    assert files_holding(audit_home, pieces[3])

    run("remove", "yao")
    for piece in pieces:
        assert files_holding(audit_home, piece) == []
    with sqlite3.connect(audit_home / "registry.sqlite") as db:
        for table in ("people", "samples", "references_", "consent"):
            column = "id" if table == "people" else "person"
            assert db.execute(f"SELECT COUNT(*) FROM {table} WHERE {column}='yao'").fetchone() == (0,)
    out = run("scan", str(photos["yaoming"]), str(photos["players"]), "--json", "--workers", "1").stdout
    assert [json.loads(line)["person"] for line in out.splitlines()] == []  # gdp is not in these photos
    assert run("verify").stdout.startswith("ok: 1 people")
    store = Store(audit_home)
    removal = [e for e in store.log.entries() if e["event"] == "remove"]
    assert removal[0]["details"]["person"] == store.sealer.pseudonym("yao") and removal[0]["details"]["vectors"] == 1
    assert b'"yao"' not in (audit_home / "audit.log").read_bytes() and b"contract 7" not in files_holding_any(audit_home)


def test_remove_killed_before_vacuum_is_wiped_by_the_next_write(tmp_path):
    from audit.store import faults

    home = tmp_path / "s"
    store = Store(home, key=None)
    for name in ("ann", "bob"):
        run_op(store, "enroll", name)
    store.close()
    worker = Path(__file__).parent / "helpers" / "store_worker.py"
    killed = subprocess.run([sys.executable, str(worker), str(home), "op", "remove", "ann"],
                            env={**os.environ, faults.KILL_ENV: "store.remove:before-vacuum"})
    assert killed.returncode == -9
    store = Store(home, key=None)
    run_op(store, "consent", "bob")
    for model in MODELS:
        assert files_holding(home, vectors("ann", model)[0].tobytes()) == []
    assert files_holding(home, reference("ann")) == []


# encryption at rest


@pytest.fixture
def key() -> bytes:
    return base64.b64decode(new_key())


def test_encrypted_store_holds_no_plaintext_and_needs_the_key(tmp_path, key):
    home = tmp_path / "s"
    store = Store(home, key=key)
    for name in ("ann", "bob"):
        run_op(store, "enroll", name)
    assert store.search("face", "m1", vectors("ann", "m1")[:1], 1)[0][0].person == "ann"
    assert store.reference("ann") == reference("ann")
    store.close()
    for name in ("ann", "bob"):
        for model in MODELS:
            for v in vectors(name, model):
                assert files_holding(home, v.tobytes()) == []
        assert files_holding(home, reference(name)[:64]) == []
    with pytest.raises(KeyProblem, match="is encrypted: give its key"):
        Store(home, key=None)
    with pytest.raises(KeyProblem, match="wrong key"):
        Store(home, key=bytes(32))
    again = Store(home, key=key)
    assert again.verify().problems == []
    assert again.search("face", "m2", vectors("bob", "m2")[:1], 1)[0][0].person == "bob"


def test_key_from_environment_and_clear_cli_errors(photos, audit_home, tmp_path, monkeypatch):
    keytext = new_key()
    monkeypatch.setenv("AUDIT_KEY", keytext)
    run("enroll", "face", "yao", str(photos["yaoming"]))
    assert run("scan", str(photos["yaoming"]), "--json").stdout.count('"person": "yao"') == 1
    monkeypatch.delenv("AUDIT_KEY")
    result = run("scan", str(photos["yaoming"]), code=2)
    assert "is encrypted: give its key with $AUDIT_KEY, $AUDIT_KEY_FILE or --key-file" in result.stderr
    monkeypatch.setenv("AUDIT_KEY", new_key())
    assert "wrong key for the encrypted store" in run("people", code=2).stderr
    monkeypatch.delenv("AUDIT_KEY")
    keyfile = tmp_path / "audit.key"
    keyfile.write_text(keytext + "\n")
    keyfile.chmod(0o600)
    assert run("--key-file", str(keyfile), "people").stdout.splitlines()[1].startswith("yao\t")
    inside = audit_home / "audit.key"
    inside.write_text(keytext)
    inside.chmod(0o600)
    assert "is inside the store folder" in run("--key-file", str(inside), "people", code=2).stderr
    monkeypatch.setenv("AUDIT_KEY", "not-a-key")
    assert "the key must be 32 random bytes" in run("people", code=2).stderr


def test_moved_ciphertext_does_not_decrypt(tmp_path, key):
    home = tmp_path / "s"
    store = Store(home, key=key)
    for name in ("ann", "bob"):
        run_op(store, "enroll", name)
    store.close()
    with sqlite3.connect(home / "registry.sqlite") as db:  # give ann's first vector to bob
        blob = db.execute("SELECT vector FROM samples WHERE person='ann' AND model='m1' LIMIT 1").fetchone()[0]
        db.execute("UPDATE samples SET vector=? WHERE id=(SELECT MIN(id) FROM samples WHERE person='bob' AND "
                   "model='m1')", (blob,))
    with pytest.raises(StoreError, match="cannot decrypt sample"):
        Store(home, key=key).vectors("face", "m1")


def test_plaintext_store_is_encrypted_in_place(tmp_path, key):
    home = tmp_path / "s"
    store = Store(home, key=None)
    run_op(store, "enroll", "ann")
    store.close()
    with pytest.raises(KeyProblem, match="written unencrypted"):
        Store(home, key=key)
    assert Store(home, key=None).encrypt(key) == 2 * 3
    assert files_holding(home, vectors("ann", "m1")[0].tobytes()) == []
    assert files_holding(home, reference("ann")[:64]) == []
    store = Store(home, key=key)
    assert store.verify().problems == [] and store.search("face", "m1", vectors("ann", "m1")[:1], 1)[0][0].person == "ann"
    assert [e["event"] for e in store.log.entries()] == ["enroll", "encrypt"]


def test_keygen_writes_a_private_key_file(tmp_path):
    out = tmp_path / "k"
    run("keygen", "--out", str(out))
    assert out.stat().st_mode & 0o777 == 0o600 and len(base64.b64decode(out.read_text())) == 32
    assert len(base64.b64decode(run("keygen").stdout)) == 32


# no network, no pickle

BLOCK_SOCKETS = textwrap.dedent("""
    # Loaded by every Python process of the test (PYTHONPATH): refuse and record any connection or name look-up.
    # (Creating a socket is allowed: urllib3, imported by insightface, probes IPv6 support by binding to ::1.)
    import os, socket

    def _refuse(what):
        with open(os.environ["SOCKET_LOG"], "a") as f:
            f.write(what + "\\n")
        raise OSError(f"network use is blocked in this test ({what})")

    def _guard(name):
        original = getattr(socket.socket, name)

        def guarded(self, *args):
            if self.family in (socket.AF_INET, socket.AF_INET6):
                _refuse(f"{name} {args[0]!r}")
            return original(self, *args)

        setattr(socket.socket, name, guarded)

    for _name in ("connect", "connect_ex", "sendto"):
        _guard(_name)
    for _name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "create_connection"):
        setattr(socket, _name, lambda *a, _n=_name, **k: _refuse(f"{_n} {a[:1]!r}"))
""")


@pytest.mark.slow
def test_enroll_and_scan_use_no_network(photos, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCK_SOCKETS)
    log = tmp_path / "sockets.log"
    env = {**os.environ, "PYTHONPATH": str(site), "SOCKET_LOG": str(log), "AUDIT_HOME": str(tmp_path / "store")}
    cmd = [sys.executable, "-m", "audit"]
    probe = subprocess.run([sys.executable, "-c", "import socket; socket.create_connection(('127.0.0.1', 9))"],
                           env=env, capture_output=True, text=True)
    assert "network use is blocked" in probe.stderr  # the blocker works, in every Python process started
    log.unlink()
    for args in (["enroll", "face", "yao", str(photos["yaoming"])],
                 ["scan", *map(str, photos.values()), "--workers", "2"],  # worker processes too
                 ["verify"]):
        done = subprocess.run([*cmd, *args], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert not log.exists(), log.read_text()


PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def test_no_pickle_anywhere_in_the_package():
    for path in sorted(AUDIT.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {(node.module or "").split(".")[0]}
            else:
                names = set()
            assert not names & PICKLE_MODULES, f"{path.name}:{node.lineno} imports {names & PICKLE_MODULES}"
            if isinstance(node, ast.keyword) and node.arg == "allow_pickle":
                assert getattr(node.value, "value", None) is False, f"{path.name}:{node.lineno} allow_pickle"
            if isinstance(node, ast.Attribute) and node.attr in {"read_pickle", "to_pickle"}:
                raise AssertionError(f"{path.name}:{node.lineno} uses pandas pickle")
