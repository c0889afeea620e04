"""Case files: `bundle` packs a saved scan with a signed manifest; `verify-bundle` names every kind of damage."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import stat
import zipfile
from pathlib import Path

import pytest

import audit
from audit.casefile import make_bundle, verify_bundle
from tests.helpers.cli import run


@pytest.fixture(scope="module")
def case(tmp_path_factory, photos) -> dict[str, Path]:
    """A real scan (yao enrolled, players.jpg scanned to Parquet), a signing pair, and a signed case file."""
    root = tmp_path_factory.mktemp("case")
    env = {"AUDIT_HOME": str(root / "store")}
    run("keygen", "--signing", "--out", root / "union.key", env=env)
    run("enroll", "face", "yao", photos["yaoming"], env=env)
    findings = root / "findings.parquet"
    run("scan", photos["players"], "--out", findings, "--quiet", env=env)
    run("bundle", findings, "--out", root / "case.zip", "--sign", root / "union.key", env=env)
    return {"root": root, "findings": findings, "zip": root / "case.zip", "key": root / "union.key",
            "pub": root / "union.key.pub"}


def rewrite(src: Path, dst: Path, change=None, comment: bytes | None = None, order=None) -> None:
    """Copy a case file member by member (same names, compression and comment), letting change(name, data) edit a
    member (return None to drop it) and order reorder them; extra (name, data) pairs come from change('', None)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        infos = zin.infolist() if order is None else order(zin.infolist())
        for info in infos:
            data = zin.read(info)
            if change:
                data = change(info.filename, data)
            if data is not None:
                zout.writestr(info, data)
        for name, data in (change("", None) or []) if change else []:
            zout.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data)
        zout.comment = zin.comment if comment is None else comment


def verify(path: Path, key: Path | None, code: int):
    """verify-bundle through the CLI; its output."""
    return run("verify-bundle", path, *(["--key", key] if key else []), code=code).output


def test_round_trip_through_the_cli(case, photos):
    out = verify(case["zip"], case["pub"], 0)
    assert "intact" in out and "signature valid (ed25519:" in out and "complete: 1 of 1 files scanned" in out
    assert stat.S_IMODE(os.stat(case["key"]).st_mode) == 0o600
    saved = audit.read_record(case["findings"])
    with zipfile.ZipFile(case["zip"]) as zf:
        names = zf.namelist()
        manifest = json.loads(zf.read("manifest.json"))
        assert names[-2:] == ["manifest.json", "manifest.sig"]
        assert [m["name"] for m in manifest["members"]] == names[:-2]
        for m in manifest["members"]:
            data = zf.read(m["name"])
            assert (len(data), hashlib.sha256(data).hexdigest()) == (m["size"], m["sha256"])
        rows = json.loads(zf.read("findings.json"))
        assert [r["person"] for r in rows] == [r["person"] for r in saved.findings] == ["yao"]
        assert zf.read(rows[0]["evidence_files"]["crop"]) == saved.pictures[0].crop
        assert zf.read(rows[0]["evidence_files"]["scene"]) == saved.pictures[0].scene  # the whole picture, boxed
        refs = json.loads(zf.read("references.json"))
        assert zf.read(refs["yao"]["file"]) == saved.references["yao"].crop
        files = json.loads(zf.read("files.json"))
        assert files == [{"path": rows[0]["path"], "sha256": hashlib.sha256(photos["players"].read_bytes()).hexdigest()}]
        run_meta, versions = json.loads(zf.read("run.json")), json.loads(zf.read("versions.json"))
        assert run_meta["started"] == saved.run["started"] and run_meta["complete"] is True
        assert versions["models"] == saved.run["models"] and versions["indexes"] == saved.run["indexes"]
        page = zf.read("report.html").decode()
        assert "data:image/jpeg;base64," in page and "1 of 1 files scanned" in page
        assert not re.search(r"(src|href)=\"(?!data:|#)", page)  # self-contained: nothing fetched
    assert manifest["signing_key"] == audit.casefile.fingerprint(audit.casefile.load_public_key(case["pub"]))


def test_same_record_packs_to_the_same_members(case, tmp_path):
    evidence = audit.read_record(case["findings"])
    a, b = make_bundle(evidence, tmp_path / "a.zip"), make_bundle(evidence, tmp_path / "b.zip")
    assert a["members"] == b["members"] and a["signing_key"] is None
    assert verify_bundle(tmp_path / "a.zip").intact


def test_needs_neither_the_store_nor_the_media(case, tmp_path, monkeypatch):
    copy = tmp_path / "elsewhere" / "case.zip"
    copy.parent.mkdir()
    shutil.copy(case["zip"], copy)
    monkeypatch.chdir(copy.parent)
    monkeypatch.setenv("AUDIT_HOME", str(tmp_path / "no-store"))
    verify(Path("case.zip"), case["pub"], 0)
    assert not (tmp_path / "no-store").exists()


def first_picture(case) -> str:
    with zipfile.ZipFile(case["zip"]) as zf:
        return next(n for n in zf.namelist() if n.startswith("pictures/"))


def test_corrupt_member(case, tmp_path):
    data = bytearray(case["zip"].read_bytes())
    with zipfile.ZipFile(case["zip"]) as zf:
        info = zf.getinfo(first_picture(case))
    # a byte in the middle of a stored picture: the zip still opens, the member does not check out
    at = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size // 2
    data[at] ^= 0xFF
    bad = tmp_path / "corrupt.zip"
    bad.write_bytes(bytes(data))
    out = verify(bad, case["pub"], 1)
    assert f"member '{info.filename}' is corrupt: Bad CRC-32" in out and "NOT intact" in out


def test_truncated(case, tmp_path):
    bad = tmp_path / "truncated.zip"
    bad.write_bytes(case["zip"].read_bytes()[: case["zip"].stat().st_size // 2])
    assert "not a readable zip archive (corrupt or truncated)" in verify(bad, case["pub"], 1)


def test_rezipped(case, tmp_path):
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(case["zip"]) as zf:
        zf.extractall(unpacked)
    shutil.make_archive(str(tmp_path / "rezipped"), "zip", unpacked)
    out = verify(tmp_path / "rezipped.zip", case["pub"], 1)
    assert "the archive was re-zipped or rewritten: its comment does not name this manifest" in out


def test_appended_bytes(case, tmp_path):
    bad = tmp_path / "appended.zip"
    bad.write_bytes(case["zip"].read_bytes() + b"junk")
    assert "re-zipped or rewritten" in verify(bad, case["pub"], 1)


def test_missing_member(case, tmp_path):
    name = first_picture(case)
    rewrite(case["zip"], tmp_path / "m.zip", lambda n, d: None if n == name else d)
    assert f"missing member '{name}'" in verify(tmp_path / "m.zip", case["pub"], 1)


def test_extra_member(case, tmp_path):
    rewrite(case["zip"], tmp_path / "x.zip", lambda n, d: [("notes.txt", b"hi")] if n == "" else d)
    assert "extra member 'notes.txt': not in the manifest" in verify(tmp_path / "x.zip", case["pub"], 1)


def test_replaced_member(case, tmp_path):
    rewrite(case["zip"], tmp_path / "r.zip", lambda n, d: b"[]\n" if n == "findings.json" else d)
    out = verify(tmp_path / "r.zip", case["pub"], 1)
    assert "member 'findings.json' was replaced or changed: 3 bytes" in out
    report = json.loads(run("verify-bundle", tmp_path / "r.zip", "--key", case["pub"], "--json", code=1).output)
    assert report["intact"] is False and report["signature_checked"] is True
    assert report["problems"] == [p.removeprefix("problem: ") for p in out.splitlines() if p.startswith("problem: ")]


def test_wrong_key(case, tmp_path):
    run("keygen", "--signing", "--out", tmp_path / "other.key")
    out = verify(case["zip"], tmp_path / "other.key.pub", 1)
    assert "wrong key: the bundle was signed with ed25519:" in out


def test_bad_signature(case, tmp_path):
    def edit(name, data):
        if name != "manifest.json":
            return data
        manifest = json.loads(data)
        manifest["findings"] = 0  # a changed manifest with the old signature
        return json.dumps(manifest).encode()

    rewrite(case["zip"], tmp_path / "s.zip", edit)
    out = verify(tmp_path / "s.zip", case["pub"], 1)
    assert "bad signature: manifest.sig does not sign this manifest.json" in out


def test_unsigned_bundle_when_a_key_is_given(case, tmp_path):
    run("bundle", case["findings"], "--out", tmp_path / "u.zip")
    assert "the bundle is not signed (no manifest.sig), but a key was given" in verify(tmp_path / "u.zip", case["pub"], 1)
    assert "not signed: anyone could have rebuilt it" in verify(tmp_path / "u.zip", None, 0)


def test_signature_removed(case, tmp_path):
    rewrite(case["zip"], tmp_path / "n.zip", lambda n, d: None if n == "manifest.sig" else d)
    assert "manifest.sig is missing" in verify(tmp_path / "n.zip", None, 1)


@pytest.mark.parametrize("name, why", [("../evil.txt", "a path with '..'"), ("/etc/evil", "absolute"),
                                       ("findings.json", "duplicate member 'findings.json'")])
def test_unsafe_member_names(case, tmp_path, name, why):
    bad = tmp_path / "unsafe.zip"
    shutil.copy(case["zip"], bad)
    with zipfile.ZipFile(bad, "a") as zf, pytest.warns(UserWarning) if name == "findings.json" else _nothing():
        zf.writestr(zipfile.ZipInfo(name), b"x")
    assert why in verify(bad, case["pub"], 1)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_zip_bomb_is_read_no_further_than_the_manifest_says(case, tmp_path):
    name = first_picture(case)
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(case["zip"]) as zin, zipfile.ZipFile(bomb, "w") as zout:
        for info in zin.infolist():
            if info.filename != name:
                zout.writestr(info, zin.read(info))
                continue
            info.compress_type = zipfile.ZIP_DEFLATED
            with zout.open(info, "w", force_zip64=True) as f:  # 256 MiB of zeros, a few hundred KB packed
                for _ in range(256):
                    f.write(bytes(1 << 20))
        zout.comment = zin.comment
    assert bomb.stat().st_size < 2_000_000
    report = verify_bundle(bomb, case["pub"])
    assert any(p.startswith(f"member '{name}' was replaced or changed") for p in report.problems)


def test_usage_errors(case, tmp_path):
    junk = tmp_path / "junk.pub"
    junk.write_text("not a key")
    assert "is not a PEM public key" in run("verify-bundle", case["zip"], "--key", junk, code=2).output
    assert "is a private key" in run("verify-bundle", case["zip"], "--key", case["key"], code=2).output
    run("verify-bundle", tmp_path / "absent.zip", code=2)
    assert "already exists" in run("keygen", "--signing", "--out", case["key"], code=2).output
    run("keygen", "--signing", code=2)
    assert "sign with the private key" in run("bundle", case["findings"], "--out", tmp_path / "c.zip", "--sign",
                                               case["pub"], code=2).output


def test_signature_is_base64_of_the_manifest_signature(case):
    key = audit.casefile.load_public_key(case["pub"])
    with zipfile.ZipFile(case["zip"]) as zf:
        key.verify(base64.b64decode(zf.read("manifest.sig")), zf.read("manifest.json"))
