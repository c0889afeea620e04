"""rematch --engine ray gives the local search's findings: on a local Ray, and on two Ray nodes on this machine."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tests.helpers.cli import run
from tests.helpers.ray import two_nodes

pytest.importorskip("ray")
pytestmark = [pytest.mark.ray, pytest.mark.slow]


def cli(*args):
    """The CLI in its own process: Ray keeps per-process state that outlives a search."""
    result = subprocess.run([sys.executable, "-m", "audit", *map(str, args)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def found(result) -> list[tuple]:
    rows = [json.loads(x) for x in result.stdout.splitlines() if x.strip()]
    return sorted((r["path"], r["person"], tuple(r["bbox"]), r["similarity"], r["extra"]["found"]) for r in rows)


@pytest.fixture()
def archived(deepface):
    """Two people enrolled; every shared photo scanned (several partitions: one per scan); two more people
    enrolled after the scans."""
    folder, people = deepface
    names = sorted(people)
    for person in names[:2]:
        run("enroll", "face", person, folder / sorted(people[person])[0], "--pick", "largest")
    photos = sorted(folder.glob("*.jpg"))
    for i in range(0, len(photos), 16):  # four scans: four partitions for the Ray job to spread
        run("scan", *photos[i:i + 16], "--workers", "1", "--no-cache")
    for person in names[2:4]:
        run("enroll", "face", person, folder / sorted(people[person])[0], "--pick", "largest")
    return names


def test_ray_rematch_equals_local_on_a_local_ray(archived, deepface, audit_home):
    folder, people = deepface
    before = set((audit_home / "archive").rglob("part-*.parquet"))
    cli("scan", folder / sorted(people[archived[3]])[1], "--engine", "ray", "--no-cache")  # a Ray scan archives too
    assert len(set((audit_home / "archive").rglob("part-*.parquet")) - before) == 1
    local = run("rematch", "--json")
    ray = cli("rematch", "--json", "--engine", "ray")  # starts a local Ray
    assert found(ray) == found(local) and {r[-1] for r in found(local)} == {"at scan", "before enrolment"}
    assert "--engine ray" in run("rematch", "--address", "x:1", code=2).output


def test_ray_rematch_on_two_nodes(archived, monkeypatch):
    with two_nodes(monkeypatch) as address:
        local = run("rematch", "--json", "--person", archived[2], "--person", archived[3])
        ray = cli("rematch", "--json", "--person", archived[2], "--person", archived[3], "--engine", "ray",
                  "--address", address)
        assert found(ray) == found(local) and found(local)
