"""Background scans: a queue in the accounts database, one worker process per running scan.

Scans run in their own process so the server stays responsive and a crashing decoder takes down only its scan.
A job is 'running' from the moment it is claimed; a server that stops (or dies) leaves it so, and the next start
puts it back in the queue once (then marks it failed), so an interrupted scan is resumed or failed, never lost.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

from .. import notify
from ..store import faults
from . import forget, roots
from .accounts import CROPS, FINDINGS, INPUT, REPORT, Accounts
from .logs import event

MAX_ATTEMPTS = 2


class JobRunner:
    """Claims queued jobs and runs each in a worker process (`python -m audit.service.jobs`)."""

    def __init__(self, accounts, home: Path, models: str | None, threads: int, workers: int = 1,
                 on_finish=None):
        self.accounts, self.home, self.models, self.threads = accounts, Path(home), models, threads
        self.workers = max(1, workers)
        self.on_finish = on_finish  # called with each job that ended (done or failed) while this server ran
        self._wake = threading.Condition()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._procs: dict[str, subprocess.Popen] = {}

    def recover(self) -> list[str]:
        """Jobs a previous server left running: queued again, or failed after MAX_ATTEMPTS; returns their ids."""
        seen = []
        for job in self.accounts.jobs(status=("running",)):
            if job.attempts < MAX_ATTEMPTS:
                self.accounts.requeue_job(job.id, f"interrupted by a server restart (attempt {job.attempts}); resumed")
                event("scan.queued", job=job.id, account=job.owner, resumed=True)
            else:
                self.accounts.fail_job(job.id, f"interrupted by a server restart {job.attempts} times; not retried")
                _drop_inputs(self.accounts.job_dir(job.id))
                event("scan.finished", level=logging.WARNING, job=job.id, account=job.owner, status="failed",
                      reason="interrupted by server restarts")
            seen.append(job.id)
        return seen

    def start(self) -> None:
        """Recover, then start the worker threads."""
        self.recover()
        for i in range(self.workers):
            t = threading.Thread(target=self._loop, name=f"scan-runner-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def wake(self) -> None:
        """A job was queued."""
        with self._wake:
            self._wake.notify_all()

    def stop(self) -> None:
        """Stop taking jobs and stop running scans; they stay 'running' and are resumed by the next start."""
        self._stopping = True
        self.wake()
        for proc in list(self._procs.values()):
            proc.terminate()
        for t in self._threads:
            t.join(timeout=10)

    def ready(self) -> bool:
        """Whether every worker thread is running and taking jobs."""
        return bool(self._threads) and not self._stopping and all(t.is_alive() for t in self._threads)

    def _loop(self) -> None:
        while not self._stopping:
            job = self.accounts.claim_job()
            if job is None:
                with self._wake:
                    self._wake.wait(timeout=1.0)
                continue
            self._run(job.id)

    def _run(self, jid: str) -> None:
        cmd = [sys.executable, "-m", "audit.service.jobs", str(self.home), jid, "--threads", str(self.threads)]
        if self.models:
            cmd += ["--models", str(self.models)]
        job = self.accounts.job(jid)
        if job is not None:
            event("scan.started", job=jid, account=job.owner, attempt=job.attempts)
        # The scan's audit-log entries name the web account that submitted it (how state.web_actor words it).
        env = {**os.environ, "AUDIT_ACTOR": f"web:{job.owner}" if job else "web"}
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        self._procs[jid] = proc
        _, err = proc.communicate()
        self._procs.pop(jid, None)
        if self._stopping:
            return
        job = self.accounts.job(jid)
        if job is not None and job.status == "running":  # the worker died without saying why
            tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
            self.accounts.fail_job(jid, f"scan worker stopped (exit code {proc.returncode}) {tail[0]}".strip())
            _drop_inputs(self.accounts.job_dir(jid))
        job = self.accounts.job(jid)
        if job is not None and job.status in ("done", "failed"):
            summary = job.summary or {}
            event("scan.finished", level=logging.INFO if job.status == "done" else logging.WARNING, job=jid,
                  account=job.owner, status=job.status, files=summary.get("files"),
                  findings=summary.get("findings"), errors=summary.get("errors"),
                  ms=round((job.finished - job.started) * 1000) if job.finished and job.started else None)
            if self.on_finish:
                self.on_finish(job)


def _drop_inputs(folder: Path) -> None:
    """Uploaded media is kept only while its scan may still run."""
    shutil.rmtree(folder / INPUT, ignore_errors=True)


def _watch_parent(parent: int) -> None:
    """Exit when the server that started this worker is gone: its restart will resume the job."""
    while True:
        if os.getppid() != parent:
            os._exit(3)
        time.sleep(0.5)


def work(home: Path, jid: str, models: str | None, threads: int) -> int:
    """Run one claimed job: scan, write findings, report and evidence crops, record the people found."""
    import audit

    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    store = audit.open_store(home, models=models, threads=threads, create=False)
    accounts = Accounts(store.home)
    job = accounts.job(jid)
    if job is None or job.status != "running":
        return 0
    folder = accounts.job_dir(jid)
    uploaded = (folder / INPUT).is_dir()
    try:
        if uploaded:
            os.chdir(folder / INPUT)  # uploads are scanned by their server-given names: 001.jpg, ...
        faults.point("jobs.worker:scanning")
        # Evidence names each file as its uploader did (or relative to its scan root), never by a server path.
        if uploaded:
            paths, shown = [i["path"] for i in job.inputs], {i["path"]: i["name"] for i in job.inputs if i.get("name")}
            confined = roots.Confined()
        else:  # path mode: every file checked against its root here, links out of it refused
            confined = roots.confine(job.inputs)
            paths, shown = confined.files, confined.shown
            if not paths:
                raise NothingSafe(f"nothing to scan: {len(confined.refused)} file(s) refused, "
                                  f"{sum(confined.skipped.values())} not media")
        run = audit.scan(store, paths, use=job.use, workers=1, shown=shown)
        done = threading.Event()
        threading.Thread(target=_progress, args=(accounts, jid, run, done), daemon=True).start()
        try:
            for _ in run:
                pass
        finally:
            done.set()
        # The report leaves out enrolled reference crops: an auditor sees faces from their own media only.
        record = run.record(references=False)
        record.run.update(scan=jid, submitted_by=job.owner)
        _add_refused(record, run.summary, confined)
        # Someone withdrawn while this scan ran is not named by it (the withdrawal already redacted older scans).
        forget.redact(record, _named(record) - set(store.names()))
        if not uploaded:  # the paths as given, relative to their roots, not every file walked
            record.run["paths"] = [i["name"] for i in job.inputs]
        audit.write_record(record, folder / FINDINGS, store.cipher)
        audit.write_record(record, folder / REPORT)
        found = save_crops(record, folder / CROPS)
        accounts.finish_job(jid, asdict(run.summary), found)
        # Webhooks: queued here, sent by the server's dispatcher (this process ends now).
        source = "watch" if any(i.get("watch") for i in job.inputs) else "scan"
        notify.findings_found(home, record.findings, source=source, scan=jid, owner=job.owner, deliver=False,
                             cipher=store.cipher)
    except Exception as exc:  # anything at all: the job says failed, with why
        accounts.fail_job(jid, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        _drop_inputs(folder)
    return 0


def _named(record) -> set[str]:
    """Everyone a record's findings name."""
    people = {r.get("person") for r in record.findings}
    people |= {c.get("person") for r in record.findings for c in r.get("contributors") or [] if isinstance(c, dict)}
    return people - {None}


class NothingSafe(Exception):
    """A path-mode scan where no file passed the root check."""


def _add_refused(record, summary, confined) -> None:
    """The files a path-mode scan refused, as error rows, and what its own walk skipped."""
    for row in confined.refused:
        record.findings.append(row.to_dict())
        record.pictures.append(None)
    # a refused file is a file of the scan with its error row, as an unreadable one is: counted in both (and as
    # unread), so that "no file could be read" (nothing audited) can be told from a scan that read some
    n = len(confined.refused)
    summary.errors += n
    summary.unread += n
    summary.files += n
    summary.total = summary.total + n if summary.total is not None else None
    for key in ("errors", "unread", "files_scanned", "files_total"):
        if key in ("errors", "unread") or isinstance(record.run.get(key), int):
            record.run[key] = record.run.get(key, 0) + n
    if confined.skipped:
        summary.skipped = dict(confined.skipped)
        record.run["skipped"] = dict(confined.skipped)


def _progress(accounts, jid: str, run, done: threading.Event) -> None:
    """Files scanned so far, into the job's row twice a second."""
    last = -1
    while not done.wait(0.5):
        if run.summary.files != last:
            last = run.summary.files
            accounts.job_progress(jid, last)


def save_crops(record, folder: Path) -> list[tuple[int, str]]:
    """Save each finding's evidence picture (cut by the scan) and list who each finding names."""
    folder.mkdir(mode=0o700, exist_ok=True)
    found = []
    for n, (r, pics) in enumerate(zip(record.findings, record.pictures)):
        names = [r["person"]] if r.get("person") else []
        names += [c["person"] for c in r.get("contributors") or [] if c.get("person")]
        if r.get("kind") == "error" or not names:
            continue
        found += [(n, p) for p in dict.fromkeys(names)]
        picture = pics and (pics.crop or pics.waveform)
        if picture:
            suffix = ".jpg" if pics.crop else ".png"
            fd = os.open(folder / f"{n}{suffix}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(picture)
    return found


def crop_path(folder: Path, n: int) -> Path | None:
    """The saved evidence picture of finding n, if any."""
    for suffix in (".jpg", ".png"):
        p = folder / CROPS / f"{n}{suffix}"
        if p.is_file():
            return p
    return None


def main(argv: list[str] | None = None) -> int:
    """Worker entry point: HOME JOB [--models DIR] [--threads N]."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m audit.service.jobs")
    parser.add_argument("home")
    parser.add_argument("job")
    parser.add_argument("--models")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
    os.nice(5)  # scans are batch work: the server answering people comes first
    return work(Path(args.home).resolve(), args.job, args.models, args.threads)


if __name__ == "__main__":
    sys.exit(main())
