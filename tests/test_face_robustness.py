"""Faces as generated media shows them: tight and aligned crops are found, low-quality real faces are not composites."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from audit import composite
from audit.cli import cli
from audit.models import quality as face_quality

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def degrade():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import degrade
    finally:
        sys.path.remove(str(BENCHMARKS))
    return degrade


def _copy(degrade, face_model, path: Path, condition: str, out: Path, seed: int = 0) -> Path:
    """Write `condition` of the largest face of `path` to `out`."""
    import cv2

    from audit import media

    image = media.load_image(path)
    face = max(face_model.analyze(image), key=lambda f: f.size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        copy = degrade.apply(condition, image, face.bbox, face.kps, np.random.default_rng(seed))
    cv2.imwrite(str(out), copy)
    return out


def test_tight_crops_are_found_and_frame_filling_ones_need_the_padded_retry(deepface, face_model, degrade, tmp_path):
    """A small tight crop is found by the first pass (on a canvas of its own size); the same crop enlarged to fill
    the detector's 640 px input is larger than SCRFD's anchors and is found on a padded canvas, in its own
    coordinates."""
    import cv2

    from audit import media

    folder, people = deepface
    tight = media.load_image(_copy(degrade, face_model, folder / people["person01"][0], "tight", tmp_path / "t.png"))
    faces = face_model.analyze(tight, retry=False)
    assert len(faces) == 1 and faces[0].found == "direct"
    x1, y1, x2, y2 = faces[0].box()
    assert 0 <= x1 < x2 <= 150 and 0 <= y1 < y2 <= 150 and faces[0].size > 60
    large = cv2.resize(tight, (700, 700), interpolation=cv2.INTER_CUBIC)
    assert face_model.analyze(large, retry=False) == []
    faces = face_model.analyze(large)
    assert len(faces) == 1 and faces[0].found == "padded"
    x1, y1, x2, y2 = faces[0].box()
    assert 0 <= x1 < x2 <= 700 and 0 <= y1 < y2 <= 700 and faces[0].size > 300
    q = face_quality.measure(faces[0])
    assert q.norm > 10 and q.colour > 1 and 0 < q.pose <= 1 and q.score >= face_model.det_thresh


def test_no_face_stays_no_face(face_model):
    """The retries do not invent faces in flat or noisy pictures."""
    rng = np.random.default_rng(0)
    for image in (np.full((150, 150, 3), 127, np.uint8), rng.integers(0, 255, (112, 112, 3), dtype=np.uint8),
                  rng.integers(0, 255, (1200, 1600, 3), dtype=np.uint8)):
        assert face_model.analyze(image) == []


def test_cli_finds_tight_and_aligned_crops_of_enrolled_person(deepface, face_model, degrade, tmp_path):
    """End to end: enrolled from photos, found in a 150 px tight crop and a 112 px aligned crop of another photo;
    and a person enrolled from tight crops alone is found in a full photo."""
    folder, people = deepface
    runner = CliRunner()
    held = people["person01"][-1]
    for person in ("person01", "person02", "person03"):
        files = [str(folder / f) for f in people[person] if f != held]
        result = runner.invoke(cli, ["enroll", "face", person, *files, "--pick", "largest"])
        assert result.exit_code == 0, result.output
    tight = _copy(degrade, face_model, folder / held, "tight", tmp_path / "tight.jpg")
    aligned = _copy(degrade, face_model, folder / held, "aligned", tmp_path / "aligned.png")
    result = runner.invoke(cli, ["scan", str(tight), str(aligned), "--json"])
    assert result.exit_code == 0, result.output
    rows = {Path(r["path"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    assert set(rows) == {"tight.jpg", "aligned.png"}
    for row in rows.values():
        assert row["kind"] == "match" and row["person"] == "person01", row
        q = row["extra"]["quality"]  # every face finding records its quality
        assert q["norm"] > 0 and q["size"] > 40 and q["low"] == [] and set(q) >= {"score", "sharpness", "pose"}

    crops = []
    for i, f in enumerate(people["person04"][:-1]):
        crops.append(str(_copy(degrade, face_model, folder / f, "tight", tmp_path / f"p4-{i}.jpg")))
    result = runner.invoke(cli, ["enroll", "face", "person04", *crops])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["scan", str(folder / people["person04"][-1]), "--json"])
    rows = [json.loads(x) for x in result.stdout.splitlines()]
    assert [(r["kind"], r["person"]) for r in rows] == [("match", "person04")]


def test_low_quality_needs_stronger_evidence():
    """A lopsided two-person fit is a composite on a good face but 'low_quality' on a poor one; a balanced one
    stays a composite either way."""
    rng = np.random.default_rng(1)
    cents = rng.normal(size=(3, 64))
    cents /= np.linalg.norm(cents, axis=1, keepdims=True)
    good = face_quality.Quality(0.85, 200, 500, 0.95, 25.0, 30.0)
    poor = face_quality.Quality(0.85, 200, 500, 0.95, face_quality.LOW_NORM - 2, 30.0)
    assert not good.low and poor.low

    def verdicts(a, b):
        probe = a * cents[0] + b * cents[1]
        probe /= np.linalg.norm(probe)
        cands = [composite.Candidate(f"p{i}", float(c @ probe), c) for i, c in enumerate(cents)]
        cands.sort(key=lambda c: -c.similarity)
        return composite.judge(probe, cands, quality=good).kind, composite.judge(probe, cands, quality=poor).kind

    assert verdicts(0.62, 0.2) == ("composite", "low_quality")
    assert verdicts(0.55, 0.3) == ("composite", "composite")
    assert verdicts(0.5, 0.45) == ("composite", "composite")


@pytest.mark.slow
def test_low_quality_real_faces_are_not_composites(deepface, face_model, degrade):
    """Grey, 48-64 px, JPEG q20, blurred and mixed copies of real single faces of the held-out people, judged against
    everyone else's clean photos: at most the documented 1 % are called composites."""
    from audit import media

    folder, people = deepface
    names = sorted(people)
    held_out = names[1::2]  # split B of benchmarks/face_robustness.py: not used to tune the quality gate
    clean, sources = {}, {}
    ident = {f: p for p, files in people.items() for f in files}
    for f in sorted(ident):
        image = media.load_image(folder / f)
        faces = face_model.analyze(image)
        if faces:
            face = max(faces, key=lambda x: x.size)
            clean[f], sources[f] = face.embedding, (image, face)
    rng = np.random.default_rng(0)
    judged = flagged = 0
    for f in sorted(clean):
        if ident[f] not in held_out:
            continue
        image, face = sources[f]
        for cond in ("grey", "lowres48", "jpeg20", "blur", "mixed"):
            copy = degrade.apply(cond, image, face.bbox, face.kps, rng)
            seen = face_model.analyze(copy)
            if not seen:
                continue
            seen = max(seen, key=lambda x: x.size)
            q = face_quality.measure(seen)
            for drop in (None, ident[f]):
                vecs = [(p, clean[g]) for g, p in ident.items() if g in clean and g != f and p != drop]
                gallery: dict[str, list[np.ndarray]] = {}
                for p, v in vecs:
                    gallery.setdefault(p, []).append(v)
                best = sorted(((float(np.max(np.stack(v) @ seen.embedding)), p) for p, v in gallery.items()),
                              reverse=True)[: composite.TOP_K]
                cands = [composite.Candidate(p, s, composite.centroid(np.stack(gallery[p]))) for s, p in best]
                judged += 1
                flagged += composite.judge(seen.embedding, cands, quality=q).kind == "composite"
    assert judged >= 150
    assert flagged <= 0.01 * judged, f"{flagged} of {judged} real low-quality faces called composites"
