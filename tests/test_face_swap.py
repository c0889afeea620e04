"""The classical face swap of benchmarks/face_swap.py: the swapped face carries the source person's identity."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_swap_looks_like_the_source_person_not_the_target(deepface, face_model):
    sys.path.insert(0, str(BENCHMARKS))
    from face_swap import largest_face, swap_face

    folder, people = deepface
    src, tgt = people["person01"], people["person03"]
    read = lambda name: cv2.imread(str(folder / name))  # noqa: E731
    swapped = swap_face(face_model, read(src[2]), read(tgt[0]))
    assert swapped.shape == read(tgt[0]).shape and swapped.dtype == np.uint8
    face = largest_face(face_model, swapped)
    assert face is not None
    # Against each person's *other* photos: never the photo the face came from, nor the one it went into.
    source_other = np.mean([face.embedding @ largest_face(face_model, read(x)).embedding for x in src[:2]])
    target_other = np.mean([face.embedding @ largest_face(face_model, read(x)).embedding for x in tgt[1:3]])
    assert source_other > target_other + 0.1, (source_other, target_other)
    # Outside the face the picture is still the target's.
    x0, y0, x1, y1 = (int(v) for v in face.bbox[:4])
    outside = np.ones(swapped.shape[:2], bool)
    outside[max(0, y0 - 20):y1 + 20, max(0, x0 - 20):x1 + 20] = False
    assert np.abs(swapped.astype(int) - read(tgt[0]).astype(int))[outside].mean() < 1.0


def test_scan_names_the_swapped_in_person_and_not_the_target(deepface, face_model, tmp_path):
    """The swap pipeline end to end: a swap of person01's held-out photo into person03's held-out photo, scanned
    against both (and two others) enrolled from their *other* photos, is person01's match, and nothing in the file
    names person03 (before, such swaps became composites naming the target)."""
    import json

    from tests.helpers.cli import run

    sys.path.insert(0, str(BENCHMARKS))
    from face_swap import swap_face

    folder, people = deepface
    held = {p: people[p][-1] for p in ("person01", "person03", "person02", "person10")}
    for p, last in held.items():
        run("enroll", "face", p, *[folder / f for f in people[p] if f != last], "--pick", "largest")
    read = lambda name: cv2.imread(str(folder / name))  # noqa: E731
    swap = tmp_path / "swap.png"
    cv2.imwrite(str(swap), swap_face(face_model, read(held["person01"]), read(held["person03"])))
    rows = [json.loads(x) for x in run("scan", swap, "--json").stdout.splitlines()]
    assert [(r["kind"], r["person"]) for r in rows if r["kind"] == "match"] == [("match", "person01")]
    named = {r["person"] for r in rows} | {c["person"] for r in rows for c in r.get("contributors") or []}
    assert "person03" not in named and named <= {"person01", None}
