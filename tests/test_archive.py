"""Scanning whole archives: content typing, globs, file lists, duplicates, the cache, resume, shards, Ctrl-C."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from tests.helpers.cli import run

import audit
from audit.scan import analyze


def lines(result):
    return [json.loads(x) for x in result.stdout.splitlines() if x.strip()]


@pytest.fixture()
def yao(photos):
    """A store with one person enrolled from the one-face photo."""
    run("enroll", "face", "yao", photos["yaoming"])
    return photos["yaoming"]


def test_content_typing_finds_jpegs_whatever_their_name(tmp_path, yao):
    d = tmp_path / "archive"
    d.mkdir()
    for name in ("b.jfif", "no_extension", "UPPER.JPG", "photo.jpeg"):
        shutil.copy(yao, d / name)
    (d / "notes.txt").write_text("not media\n")
    (d / "thumbs.db").write_bytes(b"\x00\x01binary junk" * 20)
    (d / "clip.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    result = run("scan", d, "--json")
    found = sorted(os.path.basename(r["path"]) for r in lines(result) if r["kind"] == "match")
    assert found == ["UPPER.JPG", "b.jfif", "no_extension", "photo.jpeg"]
    assert "skipped 3 files: 2 not media (by content), 1 unsupported format (heif)" in result.stderr
    assert "3 duplicates" in result.stderr


def test_content_beats_the_extension(tmp_path, yao):
    d = tmp_path / "d"
    d.mkdir()
    shutil.copy(yao, d / "really_a_jpeg.mp3")
    (d / "text.png").write_text("not a png")  # named as media: its error row says why it failed
    rows = lines(run("scan", d, "--json"))
    assert [(os.path.basename(r["path"]), r["kind"]) for r in rows] == [("really_a_jpeg.mp3", "match"),
                                                                         ("text.png", "error")]


def test_include_exclude_and_file_lists(tmp_path, yao):
    d = tmp_path / "d"
    (d / "drafts").mkdir(parents=True)
    for name in ("a.jpg", "b.png", "drafts/c.jpg"):
        shutil.copy(yao, d / name)
    def picked(*args):
        return sorted(os.path.basename(r["path"]) for r in lines(run("scan", *args, "--json")))

    assert picked(d, "--include", "*.jpg") == ["a.jpg", "c.jpg"]
    assert picked(d, "--exclude", "*/drafts/*") == ["a.jpg", "b.png"]
    result = run("scan", d, "--include", "*.jpg", "--exclude", "*/drafts/*", "--json")
    assert "not matched by --include" in result.stderr and "excluded by --exclude" in result.stderr
    listing = tmp_path / "list.txt"
    listing.write_text(f"{d / 'a.jpg'}\n\n{d / 'drafts'}\n")
    assert picked("--from-file", listing) == ["a.jpg", "c.jpg"]
    rows = lines(run("scan", "--from-file", "-", "--json", input=f"{d / 'b.png'}\n"))
    assert [os.path.basename(r["path"]) for r in rows] == ["b.png"]
    assert "give paths" in run("scan", code=2).output


def test_identical_files_are_analysed_once(tmp_path, photos, monkeypatch):
    store = audit.open_store(tmp_path / "s")
    audit.enroll_faces(store, "yao", [photos["yaoming"]])
    d = tmp_path / "d"
    d.mkdir()
    for i in range(4):
        shutil.copy(photos["yaoming"], d / f"copy{i}.jpg")
    shutil.copy(photos["gdp"], d / "other.jpg")
    calls = []
    real = analyze.Analyzer.__call__
    monkeypatch.setattr(analyze.Analyzer, "__call__", lambda self, *a: calls.append(a[0].name) or real(self, *a))
    scan = audit.scan(store, d, workers=1, cache=False)
    found = sorted(Path(f.path).name for f in scan if f.person == "yao")
    assert found == [f"copy{i}.jpg" for i in range(4)]
    assert sorted(calls) == ["copy0.jpg", "other.jpg"]
    assert scan.summary.duplicates == 3 and scan.summary.files == 5


def test_cache_skips_embedding_and_is_sealed_and_private(tmp_path, photos, monkeypatch):
    from audit.store.crypto import new_key, parse_key

    store = audit.open_store(tmp_path / "s", key=parse_key(new_key()))
    audit.enroll_faces(store, "yao", [photos["yaoming"]])
    first = [f.to_dict() for f in audit.scan(store, list(photos.values()), workers=1)]
    monkeypatch.setattr(analyze.Analyzer, "__call__", lambda *a: pytest.fail("analysed again"))
    again = audit.scan(store, list(photos.values()), workers=1)
    assert [f.to_dict() for f in again] == first and again.summary.cached == 3
    cache = tmp_path / "s" / "scan-cache.sqlite"
    assert cache.stat().st_mode & 0o777 == 0o600
    blobs = [b for (b,) in sqlite3.connect(cache).execute("SELECT blob FROM analysis")]
    assert len(blobs) == 3 and all(b[:4] == b"LAE1" for b in blobs)
    monkeypatch.undo()
    assert audit.scan(store, [photos["gdp"]], workers=1, cache=False).summary.cached == 0


def test_resume_skips_the_files_done(tmp_path, photos):
    store = audit.open_store(tmp_path / "s")
    audit.enroll_faces(store, "yao", [photos["yaoming"]])
    d = tmp_path / "d"
    d.mkdir()
    for i, p in enumerate(sorted(photos.values()) * 2):
        shutil.copy(p, d / f"{i}.jpg")
        (d / f"{i}.jpg").write_bytes((d / f"{i}.jpg").read_bytes() + bytes([i]))  # distinct contents
    full = sorted(json.dumps(f.to_dict()) for f in audit.scan(store, d, workers=1, cache=False))
    stopped = audit.scan(store, d, workers=1)
    seen = []
    for f in stopped:
        seen.append(f)
        if stopped.summary.files >= 3:
            break
    stopped.close()
    assert not stopped.summary.complete and stopped.summary.files == 3
    resumed = audit.scan(store, d, workers=1, resume=True)
    rows = sorted(json.dumps(f.to_dict()) for f in resumed)
    assert rows == full
    assert resumed.summary.resumed == 3 and resumed.summary.cached == 3 and resumed.summary.complete
    assert not any("nothing to resume" in w for w in resumed.summary.warnings)
    nothing = audit.scan(store, d, workers=1, resume=True)
    list(nothing)
    assert any("nothing to resume" in w for w in nothing.summary.warnings)


def test_shards_split_the_input_and_report_merges_them(tmp_path, photos, yao):
    d = tmp_path / "d"
    d.mkdir()
    from audit.scan.run import in_shard

    # At least 12 files and every shard given one: the split hashes paths, and tmp_path is random.
    n = 0
    while n < 12 or not all(any(in_shard(f, (k, 3)) for f in d.iterdir()) for k in (1, 2, 3)):
        (d / f"{n}.jpg").write_bytes(yao.read_bytes() + bytes([n % 256]))
        n += 1
    full = lines(run("scan", d, "--json"))
    parts = []
    for i in (1, 2, 3):
        out = tmp_path / f"part{i}.parquet"
        run("scan", d, "--shard", f"{i}/3", "--out", out, "--quiet")
        parts.append(audit.read_findings(out))
    paths = [sorted(r["path"] for r in p) for p in parts]
    assert all(paths) and sorted(sum(paths, [])) == sorted(r["path"] for r in full)
    merged = tmp_path / "all.json"
    result = run("report", *(tmp_path / f"part{i}.parquet" for i in (1, 2, 3)), "--out", merged)
    assert f"{n} findings" in result.output
    assert sorted(r["path"] for r in audit.read_findings(merged)) == sorted(r["path"] for r in full)
    assert "I/N" in run("scan", d, "--shard", "4/3", code=2).output


def test_progress_only_on_a_terminal(tmp_path, yao):
    import fcntl
    import pty
    import struct
    import termios

    d = tmp_path / "d"
    d.mkdir()
    for i in range(3):
        (d / f"{i}.jpg").write_bytes(yao.read_bytes() + bytes([i]))
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "audit", "scan", str(d)]
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a terminal 120 columns wide
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=slave, env=env, timeout=120)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    assert proc.returncode == 0
    assert b"scanning" in shown and b"3/3" in shown and b"findings" in shown
    piped = subprocess.run(cmd, capture_output=True, env=env, timeout=120)
    assert b"scanning" not in piped.stderr and b"scanned 3 files" in piped.stderr
    quiet = subprocess.run(cmd + ["--quiet"], capture_output=True, env=env, timeout=120)
    # no progress and no summary; the scan's warnings stay (here the FPIR implied at this gallery's size)
    assert [line for line in quiet.stderr.splitlines() if not line.startswith(b"warning: ")] == []


@pytest.mark.slow
def test_ctrl_c_writes_what_was_found_and_exits_130(tmp_path, yao):
    d = tmp_path / "d"
    d.mkdir()
    for i in range(60):
        (d / f"{i:03}.jpg").write_bytes(yao.read_bytes() + i.to_bytes(2, "big"))
    out = tmp_path / "found.parquet"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # A job started in the background (`.ci/run &`) inherits SIGINT ignored, and Python then never raises
    # KeyboardInterrupt: give the scan the default disposition that a terminal's Ctrl-C meets.
    proc = subprocess.Popen([sys.executable, "-m", "audit", "scan", str(d), "--out", str(out), "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout.readline().startswith(b"kind\t")  # the header line of the tab-separated output
    got = [proc.stdout.readline() for _ in range(3)]  # three findings printed: the scan is under way
    assert all(b"match" in g for g in got)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr.decode()
    assert b"interrupted" in stderr and b"Traceback" not in stderr
    rows = audit.read_findings(out)
    assert 3 <= len(rows) < 60 and all(r["person"] == "yao" for r in rows)
    import pyarrow.parquet as pq

    meta = json.loads(pq.read_schema(out).metadata[b"likeness-audit"])
    assert meta["complete"] is False and meta["files_total"] == 60
    result = run("scan", d, "--resume", "--out", tmp_path / "all.parquet", "--workers", "1")
    assert len(audit.read_findings(tmp_path / "all.parquet")) == 60
    assert "nothing to resume" not in result.stderr and "from cache" in result.stderr


def test_run_metadata_beside_json_and_in_parquet(tmp_path, yao):
    import pyarrow.parquet as pq

    run("scan", yao, "--out", tmp_path / "f.jsonl", "--quiet")
    side = json.loads((tmp_path / "f.jsonl.meta.json").read_text())
    assert side["complete"] is True and side["files_scanned"] == 1 and side["gallery"]
    run("scan", yao, "--out", tmp_path / "f.parquet", "--quiet")
    meta = json.loads(pq.read_schema(tmp_path / "f.parquet").metadata[b"likeness-audit"])
    assert meta["files_scanned"] == 1 and meta["version"] and not (tmp_path / "f.parquet.meta.json").exists()
