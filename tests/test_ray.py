"""The Ray engine gives the local engine's findings: on a local Ray, and on two Ray nodes joined on this machine."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from tests.helpers.cli import run
from tests.helpers.ray import two_nodes

pytest.importorskip("ray")
pytestmark = [pytest.mark.ray, pytest.mark.slow]


def rows(result) -> list[str]:
    return sorted(x for x in result.stdout.splitlines() if x.strip())


def cli(*args):
    """The CLI in its own process, as a user runs it: Ray keeps per-process state that outlives a scan."""
    result = subprocess.run([sys.executable, "-m", "audit", *map(str, args)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture()
def gallery(deepface, tmp_path):
    """Three people enrolled from one photo each; the scan covers every shared photo (64)."""
    folder, people = deepface
    for person in sorted(people)[:3]:
        run("enroll", "face", person, folder / sorted(people[person])[0], "--pick", "largest")
    return folder


def test_ray_engine_equals_local_on_the_shared_photos(gallery):
    local = run("scan", gallery, "--json", "--no-cache", "--workers", "2")
    ray = cli("scan", gallery, "--json", "--no-cache", "--engine", "ray")  # starts a local Ray (2 CPUs here)
    assert rows(ray) == rows(local) and len(rows(local)) >= 3
    assert {json.loads(r)["kind"] for r in rows(local)} == {"match"}
    assert "--engine ray" in run("scan", gallery, "--address", "x:1", code=2).output


def test_ray_engine_on_two_nodes(gallery, monkeypatch):
    with two_nodes(monkeypatch) as address:
        sample = sorted(gallery.glob("*.jpg"))[:24]
        local = run("scan", *sample, "--json", "--no-cache", "--workers", "2")
        ray = cli("scan", *sample, "--json", "--no-cache", "--engine", "ray", "--address", address)
        assert rows(ray) == rows(local) and rows(local)


def test_ray_notices_stay_off_the_progress_bar(deepface, tmp_path):
    """A Ray scan on a terminal: stderr holds only the progress bar and the scan's own lines, no Ray notice
    (such as its token-authentication warning at ray.init) printed over the bar."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    folder, people = deepface
    person = sorted(people)[0]
    run("enroll", "face", person, folder / sorted(people[person])[0], "--pick", "largest")
    media = sorted(folder.glob("*.jpg"))[:6]
    parent, child = pty.openpty()  # stderr a terminal of 120 columns, so the bar is drawn
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}  # Ray's defaults, as a user has them
    proc = subprocess.Popen([sys.executable, "-m", "audit", "scan", *media, "--no-cache", "--engine", "ray"],
                            stdout=subprocess.PIPE, stderr=child, env=env)
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(parent, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.communicate(timeout=600)
    os.close(parent)
    assert proc.returncode == 0
    err = b"".join(chunks).decode(errors="replace")
    pieces = [p.strip() for p in re.split(r"[\r\n]+", re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", err)) if p.strip()]
    bar = [p for p in pieces if re.fullmatch(r"scanning: [^\]]*\]", p)]  # a whole bar, nothing written into it
    ours = [p for p in pieces if p.startswith(("warning: face gallery", "scanned 6 files"))]
    assert bar and len(bar) + len(ours) == len(pieces), err
    assert "token" not in err.lower() and "ray" not in err.lower(), err
