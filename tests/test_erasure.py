"""Erasure that reaches every copy: after `remove`, no byte of any file under the store folder holds the person's
vectors, id, display name or crop, whatever ran before or during the removal; and the store's inventory of
personal data knows every file there."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

import audit
from audit.store import Store, inventory
from tests.helpers.cli import run

PID, NAME = "withdrawn-7", "Withheld Name Q"


def pieces_of(home: Path, pid: str) -> dict[str, bytes]:
    """What must not survive the person's removal: their vector (whole, head, tail), id, name and crop."""
    store = Store(home)
    _, vecs, people = store.vectors(*store.models()[0])
    vec = vecs[people.index(pid)].astype(np.float32).tobytes()
    crop = store.reference(pid)
    store.close()
    return {"vector": vec, "vector head": vec[:64], "vector tail": vec[-64:], "id": pid.encode(),
            "name": NAME.encode(), "crop": crop[len(crop) // 2: len(crop) // 2 + 64]}


def holding(home: Path, needle: bytes) -> list[str]:
    """Every file under the folder whose bytes hold needle."""
    return sorted(p.relative_to(home).as_posix() for p in home.rglob("*") if p.is_file() and needle in p.read_bytes())


def test_removal_reaches_every_copy_even_with_a_scan_racing_it(photos, audit_home, tmp_path):
    run("enroll", "face", PID, photos["yaoming"], "--name", NAME)
    run("enroll", "face", "speaker", photos["gdp"], "--pick", "largest")
    run("consent", PID, "--allow", "research", "--note", f"contract of {NAME}")
    # A scan that includes the enrolment photo: the scan cache holds the person's exact vector.
    run("scan", photos["yaoming"], photos["players"], "--out", tmp_path / "before.json")
    pieces = pieces_of(audit_home, PID)
    assert holding(audit_home, pieces["vector"]) and "scan-cache.sqlite" in holding(audit_home, pieces["vector"])

    # A scan that is running when the person is removed, and finishes (writes its cache and log entry) after.
    media = tmp_path / "media"
    media.mkdir()
    for i in range(4):
        (media / f"{i}.jpg").write_bytes(photos["yaoming"].read_bytes() + bytes([i]))  # distinct files
    with audit.open_store(audit_home) as store:
        racing = audit.scan(store, [media], workers=1)
        assert next(iter(racing)).person == PID
        run("remove", PID)
        rest = list(racing)
    assert racing.summary.complete and all(f.person == PID for f in rest)

    for what, needle in pieces.items():
        assert holding(audit_home, needle) == [], what
    assert "ok" in run("verify").stdout


def test_verify_reports_files_the_inventory_does_not_know(photos, audit_home):
    run("enroll", "face", "yao", photos["yaoming"])
    assert inventory.unknown(audit_home) == []
    (audit_home / "notes.txt").write_text("who was where")
    (audit_home / "probes").mkdir()
    shutil.copy(photos["yaoming"], audit_home / "probes" / "copy.jpg")
    result = run("verify", code=2)
    text = result.stdout + result.stderr
    assert "notes.txt is in the store folder but not in its inventory" in text
    assert "probes is in the store folder" in text and "copy.jpg" not in text


def test_every_place_says_how_it_is_erased_exported_and_verified():
    names = [p.name for p in inventory.PLACES]
    assert len(names) == len(set(names))
    for place in inventory.PLACES:
        assert place.patterns and place.holds and place.erased and place.exported and place.verified, place.name


def test_the_demo_leaves_no_media_in_the_store(tmp_path):
    home = tmp_path / "demo"
    run("--home", home, "demo")
    assert inventory.unknown(home) == []
