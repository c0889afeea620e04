"""findings_found: a batch of new findings -> one queued delivery per (relevant hook, finding), at once."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from ..findings import Finding
from ..store.webhooks import NOTIFY_FILE, Hooks
from .deliver import dispatcher

log = logging.getLogger("audit.notify")
SOURCES = ("scan", "watch", "rematch")  # rematch: found in the archive, before the person enrolled


def _row(finding: Finding | dict) -> dict:
    return finding.to_dict() if isinstance(finding, Finding) else dict(finding)


def named(row: dict) -> list[str]:
    """The person ids a finding names: its match, or a composite's contributors."""
    people = [row["person"]] if isinstance(row.get("person"), str) else []
    people += [c["person"] for c in row.get("contributors") or []
               if isinstance(c, dict) and isinstance(c.get("person"), str)]
    return list(dict.fromkeys(people))


def summary(row: dict, *, source: str, scan: str | None, when: str, person: str | None = None) -> dict:
    """What a hook is sent about one finding: no media, no vectors. For an actor (person=their id) the finding as
    they may see it: their own score, others unnamed, the file by its name only."""
    score, threshold = row.get("similarity"), row.get("threshold")
    if person is not None and row.get("person") != person:  # a composite the actor contributes to
        own = [c for c in row.get("contributors") or [] if isinstance(c, dict) and c.get("person") == person]
        score = own[0].get("similarity", score) if own else score
    path = str(row.get("path") or "")
    out = {"event": "finding", "source": source, "found_before_enrolment": source == "rematch", "scan": scan,
           "kind": row.get("kind"), "modality": row.get("modality"),
           "person": person if person is not None else row.get("person"),
           "file": os.path.basename(path) if person is not None else path, "sha256": row.get("sha256"),
           "score": score, "threshold": threshold, "start": row.get("start"), "end": row.get("end"),
           "time": when}
    if person is None:
        out["people"] = named(row)
        out["consent"] = row.get("consent")
    return out


def findings_found(home: str | os.PathLike, findings: Iterable[Finding | dict], *, source: str,
                   scan: str | None = None, owner: str | None = None, deliver: bool = True,
                   when: datetime | None = None, cipher=None) -> int:
    """Queue webhook deliveries for a batch of new findings; returns how many were queued. Never blocks on the
    network and never raises: a delivery problem is the delivery log's, not the caller's.

    :param source: "scan", "watch" or "rematch" (found in the archive before the person enrolled)
    :param scan: the scan (job) id the findings belong to, when there is one
    :param owner: the account that ran the scan: its hook hears of every finding (actors' hooks hear of findings
                  naming their person whatever the owner)
    :param cipher: the store's cipher when it is encrypted (the summaries are sealed with it)
    :param deliver: False to only queue (a short-lived process: the server's or the next watcher's dispatcher
                    sends them); True also wakes this process's dispatcher
    """
    if not (Path(home) / NOTIFY_FILE).exists():  # no hook was ever registered in this store
        return 0
    try:
        hooks = Hooks(home, cipher)
        try:
            queued = _queue(hooks, findings, source, scan, owner, when or datetime.now(UTC))
        finally:
            hooks.close()
        if queued and deliver:
            dispatcher(home, cipher).wake()
        return queued
    except Exception:  # noqa: BLE001  the scan that found them must go on; the operator reads the log
        log.exception("could not queue webhook deliveries for %s", home)
        return 0


def _queue(hooks: Hooks, findings, source: str, scan: str | None, owner: str | None, when: datetime) -> int:
    every = hooks.hooks()
    if not every:
        return 0
    stamp = when.isoformat(timespec="seconds")
    rows = []
    for finding in findings:
        row = _row(finding)
        if row.get("kind") not in ("match", "composite"):
            continue
        people = named(row)
        for hook in every:
            if hook.role == "actor":
                if hook.person in people:
                    rows.append((hook.account, [hook.person], summary(row, source=source, scan=scan, when=stamp,
                                                                      person=hook.person)))
            elif owner is not None and hook.account == owner:
                rows.append((hook.account, people, summary(row, source=source, scan=scan, when=stamp)))
    return len(hooks.queue(rows)) if rows else 0


def erase(home: str | os.PathLike, pid: str, cipher=None) -> None:
    """The store's eraser for notifications: every delivery naming the person, and an actor hook for them."""
    if (Path(home) / NOTIFY_FILE).exists():
        hooks = Hooks(home)
        try:
            hooks.erase_person(pid)
        finally:
            hooks.close()


def about(home: str | os.PathLike, pid: str, cipher=None) -> list[dict]:
    """The deliveries that named a person, for their export: when, to whose kind of hook, how it went, and the
    summary as they may see it (other people unnamed, the file by its name). Never a hook's URL or secret."""
    if not (Path(home) / NOTIFY_FILE).exists():
        return []
    hooks = Hooks(home, cipher)
    try:
        roles = {h.account: h.role for h in hooks.hooks()}
        out = []
        for d in hooks.about(pid):
            sent = dict(d.payload)
            if "people" in sent:
                sent["people"] = [p if p == pid else "another registered person" for p in sent["people"]]
            sent["file"] = os.path.basename(str(sent.get("file") or ""))
            out.append({"delivery": d.id, "to": "your webhook" if roles.get(d.account) == "actor"
                        else "an auditor's webhook", "status": d.status, "attempts": d.attempts,
                        "created": d.created, "updated": d.updated, "summary": sent})
        return out
    finally:
        hooks.close()
