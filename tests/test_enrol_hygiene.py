"""Enrolment hygiene: a sample is refused only when it is more likely someone else, not merely a hard one."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

import audit
from audit import config
from audit.enroll.enroll import FACE_FLOOR, check_agreement
from audit.errors import EnrollError
from audit.store.registry import Sample
from tests.helpers.cli import run


def hard_crop(path, face_model, out):
    """The photo's face as a small, heavily compressed crop (90 px square, JPEG quality 15): a genuine low-quality
    sample such as an aligned thumbnail from the web."""
    img = cv2.imread(str(path))
    face = max(face_model.analyze(img), key=lambda f: f.size)
    x0, y0, x1, y1 = (int(v) for v in face.bbox[:4])
    cx, cy, h = (x0 + x1) // 2, (y0 + y1) // 2, int((x1 - x0) * 1.1)
    small = cv2.resize(img[max(0, cy - h):cy + h, max(0, cx - h):cx + h], (90, 90), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 15])
    out.write_bytes(buf.tobytes())
    return out


def embedding(path, face_model) -> np.ndarray:
    return max(face_model.analyze(cv2.imread(str(path))), key=lambda f: f.size).embedding


def test_genuine_hard_sample_below_the_match_threshold_enrols(deepface, face_model, tmp_path):
    folder, people = deepface
    p1, p3 = people["person01"], people["person03"]
    hard = hard_crop(folder / "img47.jpg", face_model, tmp_path / "p3-small.jpg")
    score = float(embedding(folder / p3[0], face_model) @ embedding(hard, face_model))
    assert FACE_FLOOR < score < config.DEFAULT_FACE_THRESHOLD, score  # the old rule refused it
    run("enroll", "face", "p1", *[folder / f for f in p1[:2]])
    run("enroll", "face", "p3", folder / p3[0])
    assert "1 face samples added" in run("enroll", "face", "p3", hard).stdout
    assert {p["id"]: p["samples"] for p in json.loads(run("people", "--json").stdout)}["p3"] == {"face": 2}


def test_sample_of_another_enrolled_person_is_still_refused(deepface):
    folder, people = deepface
    p1, p3 = people["person01"], people["person03"]
    run("enroll", "face", "p1", *[folder / f for f in p1[:2]])
    run("enroll", "face", "p3", folder / p3[0])
    refused = run("enroll", "face", "p3", folder / p1[2], code=2).stderr
    assert "looks more like p1" in refused and "--force" in refused
    mixed = run("enroll", "face", "p3", folder / p3[1], folder / p1[3])  # one stray in a batch: the rest is kept
    assert "1 face samples added" in mixed.stdout and "looks more like p1" in mixed.stderr


def test_sample_that_looks_like_nobody_is_refused(deepface, face_model, audit_home):
    """A sample below the floor against the person's own samples (here a vector opposite to theirs, as garbage
    detections can give) is refused with the structured error's code and scores."""
    folder, people = deepface
    with audit.open_store(audit_home, key=None) as store:
        audit.enroll_faces(store, "p3", [folder / people["person03"][0]])
        mine = store.person_vectors("p3", "face", store.face_model.model_id)[0]
        odd = Sample("face", store.face_model.model_id, "0" * 64, -mine, [0, 0, 50, 50], 0.9, 50.0, None, None)
        (why,) = check_agreement(store, "p3", [odd])
    assert isinstance(why, EnrollError) and why.code == "unlike-own-samples" and why.hint == "force"
    assert why.scores["similarity"] == pytest.approx(-1.0, abs=1e-3) and why.scores["threshold"] == FACE_FLOOR


def test_hard_genuine_voice_recordings_enrol(speakers, tmp_path):
    """A speaker's own recordings over a telephone line and in noise (hard, but theirs) are accepted beside their
    clean ones with CAM++ (raw cosine 0.67-0.87 against them, floor 0.53). GE2E cannot tell them from a stranger's
    on its raw cosine (0.58-0.67 over a telephone line, below its floor 0.69, which strangers clear 1 time in 20):
    it refuses them with the scores, and --force keeps them (docs/accuracy-generated.md)."""
    import sys
    from pathlib import Path

    from scipy.io import wavfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from voice_degrade import noise_10db, telephone

    from audit.media.audio import load_audio

    files = speakers["3005"]
    hard = []
    for fn, src in ((telephone, files[3]), (noise_10db, files[4])):
        out = tmp_path / f"{fn.__name__}.wav"
        wavfile.write(out, 16000, (np.clip(fn(load_audio(src)), -1, 1) * 32767).astype(np.int16))
        hard.append(out)
    assert "2 voice samples added" in run("enroll", "voice", "s", *files[:2], "--model", "campplus").stdout
    got = run("enroll", "voice", "s", *hard, "--model", "campplus")
    assert "2 voice samples added" in got.stdout, got.stdout + got.stderr
    run("enroll", "voice", "s", *files[:2], "--model", "ge2e")  # its own index
    refused = run("enroll", "voice", "s", hard[0], "--model", "ge2e", code=2).stderr
    assert "floor 0.690" in refused and "--force" in refused
    assert "1 voice samples added" in run("enroll", "voice", "s", hard[0], "--model", "ge2e", "--force").stdout


def test_aligned_crops_of_people_with_two_photos_enrol(deepface, face_model, tmp_path):
    """112 px aligned crops (what face datasets and generators hand out) of the people with the fewest photos: both
    crops enrol (hygiene compares them with each other)."""
    folder, people = deepface
    for person in ("person07", "person08", "person09"):
        crops = []
        for name in people[person]:
            face = max(face_model.analyze(cv2.imread(str(folder / name))), key=lambda f: f.size)
            out = tmp_path / f"{person}-{name}.png"
            cv2.imwrite(str(out), face.crop)
            crops.append(out)
        assert f"{len(crops)} face samples added" in run("enroll", "face", person, *crops).stdout
