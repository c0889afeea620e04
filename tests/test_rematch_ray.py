"""rematch --engine ray gives the local search's findings: on a local Ray, and on two Ray nodes on this machine."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from tests.helpers.cli import run
from tests.test_ray import _free_port, _wait_for_nodes

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
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # two nodes on localhost, as tests/test_ray.py
    ray_cli = str(Path(sys.executable).parent / "ray")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    common = ["--num-cpus", "1", "--object-store-memory", str(100 * 2**20), "--block", "--disable-usage-stats"]
    nodes = [subprocess.Popen([ray_cli, "start", "--head", "--port", str(port), "--temp-dir", temp,
                               "--include-dashboard", "false", *common],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        _wait_for_nodes(address, 1)
        nodes.append(subprocess.Popen([ray_cli, "start", "--address", address, *common],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _wait_for_nodes(address, 2)
        local = run("rematch", "--json", "--person", archived[2], "--person", archived[3])
        ray = cli("rematch", "--json", "--person", archived[2], "--person", archived[3], "--engine", "ray",
                  "--address", address)
        assert found(ray) == found(local) and found(local)
    finally:
        for node in reversed(nodes):
            node.terminate()
        for node in nodes:
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                node.kill()
