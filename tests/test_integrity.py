"""Crash safety (SIGKILL at every write point and at random moments), concurrent writers and readers, audit log."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from tests.helpers.store_worker import MODELS, SAMPLES, plan, reference, run_op, vectors

from audit.store.log.auditlog import details_hash, entry_hash
from tests.helpers.cli import run
from audit.errors import UnknownPerson
from audit.store import Store

WORKER = Path(__file__).parent / "helpers" / "store_worker.py"
BASE_OPS = [("enroll", "base"), ("enroll", "keep"), ("consent", "base")]
KILLED_OPS = [("enroll", "new"), ("remove", "keep"), ("consent", "keep")]


def start(home: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), str(home), *args], env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_worker(home: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = start(home, *args, env=env)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A store with two people and a consent record: what must survive every crash."""
    home = tmp_path_factory.mktemp("template") / "store"
    store = Store(home, key=None)
    for op, name in BASE_OPS:
        run_op(store, op, name)
    store.close()
    return home


def person_vectors(store: Store, name: str) -> dict[str, np.ndarray]:
    out = {}
    for model in MODELS:
        ids, vecs, people = store.vectors("face", model)
        out[model] = vecs[[p == name for p in people]] if len(ids) else np.zeros((0, MODELS[model]))
    return out


def assert_intact(store: Store, name: str, search: bool = True) -> None:
    """All of a completed enrolment is in the registry, byte for byte, and (search) findable in the index."""
    got = person_vectors(store, name)
    for model in MODELS:
        np.testing.assert_array_equal(got[model], vectors(name, model))
        if search:
            hit = store.search("face", model, vectors(name, model)[:1], top_k=1)[0][0]
            assert hit.person == name and hit.similarity > 0.999
    assert store.reference(name) == reference(name)


def presence(store: Store, name: str, search: bool = True) -> bool:
    """Whether a person is there; either wholly or not at all (never half)."""
    try:
        store.person(name)
    except UnknownPerson:
        counts = [len(v) for v in person_vectors(store, name).values()]
        assert counts == [0, 0] and store.reference(name) is None, f"{name} half removed"
        return False
    assert_intact(store, name, search)
    return True


def applied(store: Store, op: str, search: bool) -> bool:
    """Whether the killed operation of KILLED_OPS took effect (wholly; presence() asserts it is not half done)."""
    if op == "enroll":
        return presence(store, "new", search)
    if op == "remove":
        return not presence(store, "keep", search)
    return "research" in store.person("keep").consent


def apply(people: set[str], op: str, name: str) -> None:
    if op == "enroll":
        people.add(name)
    elif op == "remove":
        people.discard(name)


def vector_bytes_in(home: Path, vec: np.ndarray) -> list[str]:
    needle = np.asarray(vec, np.float32).tobytes()
    return [p.name for p in home.iterdir() if p.is_file() and needle in p.read_bytes()]


def trace_points(template: Path, tmp: Path, op: str, name: str) -> list[str]:
    home = tmp / f"trace-{op}"
    shutil.copytree(template, home)
    trace = tmp / f"trace-{op}.txt"
    done = run_worker(home, "op", op, name, env={"AUDIT_TEST_KILL_TRACE": str(trace)})
    assert done.returncode == 0, done.stderr
    return trace.read_text().split()


@pytest.mark.slow
def test_sigkill_at_every_write_point_recovers(template, tmp_path):
    tried, seen_problems = [], set()
    for op, name in KILLED_OPS:
        points = trace_points(template, tmp_path, op, name)
        assert points, f"{op} passes no crash point"
        # A write now touches four indexes (samples and centroids of two models), each passing the same file-write
        # points; the first two of those stand for the rest (the segment and manifest writes are all kept).
        points = [p for p in points if not p.startswith("index.write:") or int(p.split("#")[1]) <= 2]
        for point in points:
            home = tmp_path / f"{op}-{point.replace('#', '-').replace(':', '-')}"
            shutil.copytree(template, home)
            killed = run_worker(home, "op", op, name, env={"AUDIT_TEST_KILL_AT": point})
            assert killed.returncode == -signal.SIGKILL, (point, killed.stderr)
            tried.append(f"{op}@{point}")
            # Recovery two ways: `verify --repair`, and simply the next write.
            for how in ("repair", "next-write"):
                copy = home.with_name(home.name + "-" + how)
                shutil.copytree(home, copy)
                store = Store(copy, key=None)
                seen_problems.update(re.sub(r"[\w.-]+\.(faiss|tmp)", "FILE", p).split(" (")[0] for p in store.verify().problems)
                assert presence(store, "base", search=False)
                done = applied(store, op, search=False)
                if op != "remove":
                    assert presence(store, "keep", search=False)
                if how == "repair":
                    store.verify(repair=True)
                else:
                    run_op(store, "consent", "base")
                assert store.verify().problems == [], (op, point, how)
                assert not list(copy.glob("*.tmp")) and not list(copy.glob("*.redact"))
                assert presence(store, "base") and applied(store, op, search=True) == done
                # One audit entry per committed change, none for a change that was rolled back.
                named = {store.sealer.pseudonym(n): n for n in ("base", "keep", "new")}  # removal leaves pseudonyms
                events = [(e["event"], named.get(e["details"].get("person"), e["details"].get("person")))
                          for e in store.log.entries()]
                want = BASE_OPS + ([(op, name)] if done else []) + ([("consent", "base")] if how != "repair" else [])
                assert events == want, (point, how)
                if op == "remove" and done:
                    assert vector_bytes_in(copy, vectors("keep", "m1")[0]) == []
                    assert b'"keep"' not in (copy / "audit.log").read_bytes(), (point, how)
                store.close()
    print(f"\nkill points tried: {len(tried)} ({', '.join(tried)}); problems seen before recovery: {seen_problems}")
    assert len(tried) >= 25


# FLAT_MAX, DELTA_MAX[, PQFS_MAX]: a fast-scan PQ (or IVF) base from 5 vectors on, and a compaction at every write
SMALL = {"pqfs": "4,2", "ivf": "4,2,4"}
COMPACT_BASE = [("enroll", "base"), ("enroll", "keep"), ("enroll", "more"), ("consent", "base")]
COMPACT_OPS = [("enroll", "new"), ("compact", "-"), ("remove", "keep")]


@pytest.fixture(scope="module", params=sorted(SMALL))
def compact_template(request, tmp_path_factory) -> tuple[Path, dict]:
    """A store whose indexes already have PQ (or IVF) bases (shrunk policy), a delta to compact, and its policy."""
    home = tmp_path_factory.mktemp(f"compact-{request.param}") / "store"
    env = {"AUDIT_TEST_SEGMENTS": SMALL[request.param]}
    for op, name in COMPACT_BASE:
        done = run_worker(home, "op", op, name, env=env)
        assert done.returncode == 0, done.stderr
    assert json.loads((home / "face-m1.json").read_text())["kind"] == request.param
    return home, env


@pytest.mark.slow
def test_sigkill_during_enrol_and_compaction_recovers(compact_template, tmp_path):
    """Kill at every crash point of an enrolment that compacts, an explicit compaction, and a removal (which must
    purge the base); after the next write or a repair, verify is clean and nothing committed is lost."""
    tried = []
    compact_template, env = compact_template
    for op, name in COMPACT_OPS:
        home = tmp_path / f"trace-{op}"
        shutil.copytree(compact_template, home)
        trace = tmp_path / f"trace-{op}.txt"
        done = run_worker(home, "op", op, name, env={**env, "AUDIT_TEST_KILL_TRACE": str(trace)})
        assert done.returncode == 0, done.stderr
        points = trace.read_text().split()
        assert any(p.startswith("segments.compact") for p in points), points
        # Every compaction point, and the first time each other point is reached (the rest repeat it per index).
        seen: set[str] = set()
        points = [p for p in points if p.startswith("segments.compact") or not (p.split("#")[0] in seen
                                                                               or seen.add(p.split("#")[0]))]
        for k, point in enumerate(points):
            home = tmp_path / f"{op}-{k}"
            shutil.copytree(compact_template, home)
            killed = run_worker(home, "op", op, name, env={**env, "AUDIT_TEST_KILL_AT": point})
            assert killed.returncode == -signal.SIGKILL, (point, killed.stderr)
            tried.append(f"{op}@{point}")
            how = ("repair", "next-write")[k % 2]
            fixed = run_worker(home, "op", "consent", "base", env=env) if how == "next-write" else None
            assert fixed is None or fixed.returncode == 0, fixed.stderr
            store = Store(home, key=None)
            report = store.verify(repair=how == "repair")
            assert report.ok, (op, point, how, report.problems)
            assert not list(home.glob("*.tmp"))
            assert presence(store, "base") and presence(store, "more")
            if op == "enroll":
                presence(store, "new")  # wholly there or wholly absent
            if op == "remove" and not presence(store, "keep"):
                assert vector_bytes_in(home, vectors("keep", "m1")[0]) == []
            else:
                assert presence(store, "keep")
            store.close()
    print(f"\ncompaction kill points tried: {len(tried)}")
    assert len(tried) >= 20


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_no_completed_write(template, tmp_path):
    home = tmp_path / "store"
    shutil.copytree(template, home)
    rng = random.Random(6)
    expected: set[str] = {"base", "keep"}
    rounds, completed = 12, 0
    for r in range(rounds):
        ops = plan(f"r{r}-", 400)
        proc = start(home, "loop", f"r{r}-", "400")
        time.sleep(0.3 + rng.uniform(0, 0.3))  # about 0.3 s go to imports
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
        done = len([line for line in out.splitlines() if line.startswith("done ")])
        completed += done
        before = set(expected)  # after every write the worker reported done; the one in flight may be either
        for op, name in ops[:done]:
            apply(before, op, name)
        after = set(before)
        if done < len(ops):
            apply(after, *ops[done])
        store = Store(home, key=None)  # the store as the crash left it, before any recovery
        present = {p.id for p in store.people()}
        assert present in (before, after), (r, done, present ^ before)
        for model in MODELS:  # every sample of everyone present, and nothing of anyone else
            _, vecs, people = store.vectors("face", model)
            want = {name: vectors(name, model) for name in present}
            assert sorted(people) == sorted(name for name in present for _ in range(SAMPLES))
            for name in present:
                np.testing.assert_array_equal(vecs[[p == name for p in people]], want[name])
        expected = present
        store.close()
    store = Store(home, key=None)
    run_op(store, "consent", "base")  # the next write finishes whatever the last kill interrupted
    assert store.verify().problems == []
    for name in expected:
        assert_intact(store, name)
    assert store.log.check().first_broken is None
    print(f"\nrandom kills: {rounds}, writes completed between them: {completed}")


@pytest.mark.slow
def test_two_writers_and_a_reader_at_once(template, tmp_path):
    home = tmp_path / "store"
    shutil.copytree(template, home)
    procs = [start(home, "loop", "a-", "10"), start(home, "loop", "b-", "10"), start(home, "read", "8")]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (_out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    # the reader really read while the writers wrote (8 s: each read opens the store and two indexes, and the machine may be loaded)
    assert int(outs[2][0].split()[-1]) > 5
    store = Store(home, key=None)
    assert store.verify().problems == []
    want = {"base", "keep"}
    for prefix in ("a-", "b-"):
        for op, name in plan(prefix, 10):
            apply(want, op, name)
    assert {p.id for p in store.people()} == want
    for name in want:
        assert_intact(store, name)
    entries = store.log.entries()
    assert len(entries) == len(BASE_OPS) + 2 * len(plan("a-", 10)) and store.log.check().first_broken is None


def test_two_cli_enrolments_and_a_scan_at_once(photos, audit_home):
    cmd = [sys.executable, "-m", "audit"]
    env = {**os.environ, "AUDIT_HOME": str(audit_home)}
    jobs = [
        [*cmd, "enroll", "face", "yao", str(photos["yaoming"])],
        [*cmd, "enroll", "face", "gdp", str(photos["gdp"]), "--pick", "largest"],
        [*cmd, "scan", str(photos["players"]), str(photos["yaoming"]), "--json", "--workers", "1"],
    ]
    procs = [subprocess.Popen(j, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for j in jobs]
    results = [p.communicate(timeout=180) for p in procs]
    for p, (_out, err) in zip(procs[:2], results):
        assert p.returncode == 0, err
    # A scan that starts before either enrolment has committed finds no one enrolled: an error, never a pass.
    scanned = procs[2].returncode == 0
    assert scanned or (procs[2].returncode == 2 and ("no one is enrolled" in results[2][1]
                                                     or "no store at" in results[2][1])), results[2][1]
    rows = [json.loads(line)["kind"] for line in results[2][0].splitlines()[1 if not scanned else 0:]]
    assert rows in ([], ["match"], ["match", "match"])
    out = subprocess.run([*cmd, "verify"], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("ok: 2 people"), out.stderr
    events = sorted(e["event"] for e in Store(audit_home, key=None).log.entries())
    assert events == ["enroll", "enroll"] + (["scan"] if scanned else [])


# audit log


def make_logged_store(home: Path) -> Store:
    store = Store(home, key=None)
    for op, name in BASE_OPS + [("remove", "keep"), ("consent", "base")]:
        run_op(store, op, name)
    assert store.log.check().entries == 5 and store.log.verify_chain() is None
    return store


def rewrite(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def test_audit_log_entries_hold_no_biometric_data(tmp_path):
    store = make_logged_store(tmp_path / "s")
    text = store.log.path.read_bytes()
    for model in MODELS:
        for v in vectors("base", model):
            assert v.tobytes() not in text
    entry = store.log.entries()[0]
    assert set(entry) == {"seq", "time", "event", "actor", "details", "details_sha256", "prev_hash", "hash"}
    assert entry["event"] == "enroll" and "@" in entry["actor"] and entry["details"]["samples"] == 2 * SAMPLES
    assert all(len(h) == 64 for h in entry["details"]["sources_sha256"])


@pytest.mark.parametrize("tamper, broken", [
    # truncate: the cut-off removal entry vouched for entry 2's redaction, so the break shows there already
    ("edit", 3), ("edit-rehash", 4), ("drop", 2), ("truncate", 2), ("rewrite-chain", 5), ("swap", 2),
])
def test_audit_log_tampering_is_found(tmp_path, tamper, broken):
    store = make_logged_store(tmp_path / "s")
    path = store.log.path
    lines = path.read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    if tamper == "edit":
        lines[2] = lines[2].replace('"base"', '"someone-else"')
    elif tamper == "edit-rehash":
        entries[2]["actor"] = "nobody@nowhere"
        entries[2]["hash"] = entry_hash(entries[2])
        lines[2] = json.dumps(entries[2])
    elif tamper == "drop":
        del lines[1]
    elif tamper == "truncate":
        lines = lines[:3]
    elif tamper == "rewrite-chain":  # an editor who recomputes every hash still differs from the registry's head
        entries[1]["details"]["person"] = "someone-else"
        entries[1]["details_sha256"] = details_hash(entries[1]["details"])
        prev = entries[0]["hash"]
        for e in entries[1:]:
            e["prev_hash"] = prev
            e["hash"] = prev = entry_hash(e)
        lines = [json.dumps(e) for e in entries]
    elif tamper == "swap":
        lines[1], lines[2] = lines[2], lines[1]
    rewrite(path, lines)
    assert store.log.verify_chain() == broken
    result = run("--home", store.home, "verify", code=2)
    assert f"problem: audit log broken at entry {broken}" in result.stderr


def test_torn_last_entry_is_restored(tmp_path):
    store = make_logged_store(tmp_path / "s")
    data = store.log.path.read_bytes()
    store.log.path.write_bytes(data[: len(data) - 40])  # the last append was cut short
    report = store.log.check()
    assert report.first_broken is None and report.pending
    assert "interrupted write" in store.verify().problems[0]
    store.verify(repair=True)
    assert store.log.path.read_bytes() == data and store.verify().problems == []
