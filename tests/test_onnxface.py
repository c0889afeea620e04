"""SCRFD and ArcFace on onnxruntime directly: the same boxes, landmarks and embeddings as insightface's model_zoo."""

import shutil

import numpy as np
import pytest

from audit import config, media
from audit.models.face import DET_SIZE, find_pack_files
from audit.models.onnxface import Detector, Recognizer
from tests.helpers.cli import run


def test_detector_and_recognizer_equal_insightface():
    model_zoo = pytest.importorskip("insightface.model_zoo")
    det_path, rec_path = find_pack_files(config.vectron_dir())
    theirs_det = model_zoo.get_model(str(det_path), providers=["CPUExecutionProvider"])
    theirs_det.prepare(ctx_id=-1, input_size=DET_SIZE, det_thresh=0.5)
    theirs_rec = model_zoo.get_model(str(rec_path), providers=["CPUExecutionProvider"])
    ours_det, ours_rec = Detector(det_path), Recognizer(rec_path)
    for photo in config.sample_photos():
        image = media.load_image(photo)
        boxes, kps = ours_det.detect(image, DET_SIZE)
        t_boxes, t_kps = theirs_det.detect(image, max_num=0, metric="default")
        assert len(boxes) == len(t_boxes) > 0
        np.testing.assert_allclose(boxes, t_boxes, atol=1e-3)
        np.testing.assert_allclose(kps, t_kps, atol=1e-3)
        crops = [np.ascontiguousarray(image[int(b[1]):int(b[3]), int(b[0]):int(b[2])]) for b in boxes[:4]]
        np.testing.assert_allclose(ours_rec.get_feat(crops), theirs_rec.get_feat(crops), atol=1e-4)


def test_wrong_model_files_are_a_clear_error(tmp_path, audit_home, deepface):
    folder, _ = deepface
    det_path, rec_path = find_pack_files(config.vectron_dir())
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(rec_path, models / rec_path.name)
    shutil.copy(rec_path, models / "det_500m.onnx")  # a recognizer where the detector should be
    photo = sorted(folder.glob("*.jpg"))[0]
    res = run("--models", models, "enroll", "face", "x", photo, code=2)
    assert "does not hold an SCRFD detector" in res.output


def test_strips_and_single_pixels_detect_nothing_without_error(face_model):
    """A picture whose shrunk side would round to no pixels still gets a canvas (and finds no face)."""
    for shape in ((5, 10000, 3), (10000, 5, 3), (1, 1, 3), (700, 3, 3)):
        assert face_model.analyze(np.zeros(shape, np.uint8)) == []
