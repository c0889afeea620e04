"""`likeness-audit watch` as an operator runs it: a real process, real photos, files copied in slowly, a folder
removed, Ctrl-C and SIGTERM, a restart, a signed webhook to a receiver on loopback."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from audit import notify
from tests.helpers.cli import run
from tests.helpers.receiver import Receiver

WAIT_S = 90  # generous: the machine is shared; the speed goal is measured in benchmarks/watch_latency.py


class Watch:
    """`python -m audit watch ...` in its own process, its stderr in a file."""

    def __init__(self, home: Path, *args):
        self.err = home.parent / f"watch-{time.monotonic_ns()}.err"
        self.proc = subprocess.Popen([sys.executable, "-m", "audit", "watch", *map(str, args)],
                                     env={**os.environ, "AUDIT_HOME": str(home)}, stdout=subprocess.PIPE,
                                     stderr=open(self.err, "wb"), text=True)
        self.until(lambda: "watching" in self.stderr(), "the watcher to start")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def until(self, test, what: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while not test():
            assert self.proc.poll() is None, f"watch exited {self.proc.returncode}: {self.stderr()}"
            assert time.monotonic() < deadline, f"waited {WAIT_S} s for {what}: {self.stderr()}"
            time.sleep(0.1)

    def stop(self, sig=signal.SIGINT) -> tuple[int, str]:
        self.proc.send_signal(sig)
        out, _ = self.proc.communicate(timeout=WAIT_S)
        return self.proc.returncode, out


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def scans_of(name: str) -> int:
    """How many scans the store's audit log records of a file (by name)."""
    out = run("log", "--event", "scan", "--json").stdout
    return sum(any(p.endswith("/" + name) for p in json.loads(line)["details"]["paths"]) for line in out.splitlines())


@pytest.mark.slow
def test_watch_scans_whole_files_once_survives_restarts_and_a_removed_folder(photos, audit_home, tmp_path):
    run("enroll", "face", "yao", photos["yaoming"])
    inbox, other, out = tmp_path / "inbox", tmp_path / "other", tmp_path / "found.jsonl"
    inbox.mkdir()
    other.mkdir()
    (inbox / "crowd.jpg").write_bytes(photos["gdp"].read_bytes())  # there before the watch: caught up
    w = Watch(audit_home, inbox, other, "--out", out, "--settle", "0.5")

    # A copy that pauses half way, file held open, for longer than the settle interval: never scanned half.
    data = photos["yaoming"].read_bytes()
    with open(inbox / "slow.jpg", "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
        time.sleep(2.5)
        assert not any(r["path"].endswith("slow.jpg") for r in rows(out))
        f.write(data[len(data) // 2:])
    w.until(lambda: any(r["path"].endswith("slow.jpg") for r in rows(out)), "slow.jpg's finding")
    found = [r for r in rows(out) if r["path"].endswith("slow.jpg")]
    assert [(r["kind"], r["person"]) for r in found] == [("match", "yao")]
    assert found[0]["sha256"] == hashlib.sha256(data).hexdigest()  # the whole file
    assert scans_of("slow.jpg") == 1 and scans_of("crowd.jpg") == 1

    # A watched folder removed: a clear error, and the other folder is still watched.
    other.rmdir()
    w.until(lambda: "cannot watch" in w.stderr(), "the removed folder's error")
    assert f"error: cannot watch {other}: no such folder" in w.stderr()
    (inbox / "after.jpg").write_bytes(data + b"\0")  # other bytes, the same face
    w.until(lambda: any(r["path"].endswith("after.jpg") for r in rows(out)), "after.jpg's finding")
    other.mkdir()  # back: watched again, and what it holds caught up
    (other / "back.jpg").write_bytes(data + b"\0\0\0")
    w.until(lambda: any(r["path"].endswith("back.jpg") for r in rows(out)), "back.jpg's finding")
    assert f"watching {other} again" in w.stderr()
    code, stdout = w.stop(signal.SIGINT)
    assert code == 0, w.stderr()
    assert "stopped: 4 files scanned, 3 findings" in w.stderr()
    assert "match\tface\t" in stdout and "slow.jpg\tyao" in stdout

    # Restarted, with a webhook: nothing scanned before is scanned again (one touched, not changed: neither);
    # a file that came while it was stopped is.
    os.utime(inbox / "slow.jpg")
    (inbox / "while-down.jpg").write_bytes(data + b"\0\0")
    receiver = Receiver()
    secret = tmp_path / "secret.txt"
    secret.write_text("a-shared-secret-of-some-length\n")
    w = Watch(audit_home, inbox, "--out", out, "--settle", "0.5", "--webhook", receiver.url,
              "--webhook-secret-file", secret)
    w.until(lambda: any(r["path"].endswith("while-down.jpg") for r in rows(out)), "while-down.jpg's finding")
    headers, body = receiver.wait(1, timeout=WAIT_S)[0]
    assert notify.verify("a-shared-secret-of-some-length", body, headers["x-likeness-signature"])
    payload = json.loads(body)
    assert payload["person"] == "yao" and payload["file"].endswith("while-down.jpg") and payload["source"] == "watch"
    code, _ = w.stop(signal.SIGTERM)
    assert code == 0 and "stopped: 1 files scanned, 1 findings" in w.stderr()
    assert [scans_of(n) for n in ("slow.jpg", "crowd.jpg", "after.jpg")] == [1, 1, 1]
    assert len([r for r in rows(out) if r["path"].endswith("slow.jpg")]) == 1
    receiver.close()
    hooks = notify.Hooks(audit_home)  # everything sent: the run's hook went with it
    assert hooks.hook(notify.CLI_ACCOUNT) is None and hooks.log(notify.CLI_ACCOUNT) == []
    hooks.close()


def test_the_cli_webhook_belongs_to_the_watch_run(photos, audit_home, tmp_path):
    """A `watch --webhook` sends what the run before it left queued (and no web account's deliveries); a watch
    without --webhook removes a hook an earlier run left."""
    run("enroll", "face", "yao", photos["yaoming"])
    mine, theirs = Receiver(), Receiver()
    hooks = notify.Hooks(audit_home)  # left by a `watch --webhook` that stopped with a delivery unsent
    hooks.register(notify.CLI_ACCOUNT, "auditor", "http://127.0.0.1:9/x", secret="a-shared-secret-of-some-length")
    hooks.register("aud", "auditor", theirs.url)  # a web account's: the server sends its deliveries
    hooks.queue([(notify.CLI_ACCOUNT, ["yao"], {"person": "yao", "n": 1}), ("aud", ["yao"], {"person": "yao"})])
    hooks.close()
    (tmp_path / "inbox").mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("a-shared-secret-of-some-length\n")
    w = Watch(audit_home, tmp_path / "inbox", "--webhook", mine.url, "--webhook-secret-file", secret)
    headers, body = mine.wait(1, timeout=WAIT_S)[0]
    assert json.loads(body)["n"] == 1 and notify.verify("a-shared-secret-of-some-length", body,
                                                        headers["x-likeness-signature"])
    assert w.stop()[0] == 0 and theirs.got == []
    hooks = notify.Hooks(audit_home)
    assert hooks.hook(notify.CLI_ACCOUNT) is None and hooks.pending("aud") == 1
    hooks.register(notify.CLI_ACCOUNT, "auditor", "http://127.0.0.1:9/x", secret="a-shared-secret-of-some-length")
    hooks.queue([(notify.CLI_ACCOUNT, ["yao"], {"person": "yao"})])
    hooks.close()
    mine.close()
    theirs.close()
    w = Watch(audit_home, tmp_path / "inbox", "--settle", "0.5")
    code, _ = w.stop(signal.SIGINT)
    assert code == 0 and "removed the webhook of an earlier `watch --webhook` (1 deliveries unsent)" in w.stderr()
    hooks = notify.Hooks(audit_home)
    assert hooks.hook(notify.CLI_ACCOUNT) is None and hooks.pending(notify.CLI_ACCOUNT) == 0
    hooks.close()


def test_watch_refuses_bad_input(photos, audit_home, tmp_path):
    result = run("watch", tmp_path / "nowhere", code=2)
    assert "no such folder" in result.output
    run("watch", tmp_path, "--out", tmp_path / "found.csv", code=2)
    run("watch", tmp_path, "--webhook", "http://127.0.0.1:9/x", code=2)
    assert "no store at" in run("watch", tmp_path, code=2).output
    run("users", "add", "root", "--role", "admin")  # a store, with no one enrolled: a watch could find no one
    assert "no one is enrolled" in run("watch", tmp_path, code=2).output


def test_a_file_held_open_for_writing_never_settles(tmp_path):
    from audit.watch import Settler, open_for_writing

    settler, path = Settler(settle=0.05), tmp_path / "copying.jpg"
    with open(path, "wb") as f:
        f.write(b"half")
        f.flush()
        settler.changed(path)
        assert open_for_writing(path)
        for _ in range(5):  # well past the settle interval: still open, so never ready
            assert settler.ready() == []
            time.sleep(0.05)
    assert not open_for_writing(path)
    ready = []
    for _ in range(100):
        ready += settler.ready()
        if ready:
            break
        time.sleep(0.05)
    assert [p for p, _ in ready] == [path] and len(settler) == 0
    settler.changed(tmp_path / "gone.jpg")  # deleted before it settled: dropped
    assert settler.ready() == [] and len(settler) == 0
