"""Degraded and stylised copies of a face photo, as generated media shows faces (not a feature of the tool).

Every function takes a BGR image and the face's box and landmarks (from the clean photo) and returns a new BGR
image. Used by benchmarks/face_robustness.py and the tests; the conditions:

- crops: `tight` (the face box, squared, as face datasets and avatar generators crop, resized to 150 px),
  `tighter` (60 % of the box: forehead and chin cut), `aligned` (ArcFace's 112 px 5-point aligned crop);
- quality: `grey`, `lowres48`/`lowres64` (the whole photo shrunk until the face is 48/64 px), `jpeg20`,
  `blur` (Gaussian, sigma 2 % of the face), `heavy_blur` (sigma 5 %), `mixed` (a seeded random mix of those);
- styles: `posterize` (3 levels per channel), `stylization` and `edge_preserving` (OpenCV's non-photorealistic
  filters), `cartoon` (bilateral colour flattening with dark edges), `hue60`/`hue120` (hue rotated).
"""

from __future__ import annotations

import numpy as np

CROPS = ("tight", "tighter", "aligned")
QUALITY = ("grey", "lowres64", "lowres48", "jpeg20", "blur", "heavy_blur", "mixed")
STYLES = ("posterize", "stylization", "edge_preserving", "cartoon", "hue60", "hue120")
CONDITIONS = ("clean",) + CROPS + QUALITY + STYLES


def face_side(box: np.ndarray) -> float:
    """Shorter side of a face box."""
    return float(min(box[2] - box[0], box[3] - box[1]))


def square_crop(image: np.ndarray, box: np.ndarray, scale: float = 1.0, out: int = 150) -> np.ndarray:
    """A square crop round the box centre, `scale` times its longer side, resized to out x out."""
    import cv2

    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = max(box[2] - box[0], box[3] - box[1]) * scale / 2
    h, w = image.shape[:2]
    x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
    x1, y1 = int(min(w, cx + half)), int(min(h, cy + half))
    return cv2.resize(image[y0:y1, x0:x1], (out, out), interpolation=cv2.INTER_AREA)


def aligned(image: np.ndarray, kps: np.ndarray) -> np.ndarray:
    """ArcFace's 112 px aligned crop."""
    from insightface.utils import face_align

    return face_align.norm_crop(image, kps, 112)


def grey(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


def shrink_to_face(image: np.ndarray, box: np.ndarray, px: float) -> np.ndarray:
    """The whole photo scaled so that the face's shorter side is `px` pixels."""
    import cv2

    f = min(1.0, px / max(face_side(box), 1.0))
    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)


def jpeg(image: np.ndarray, quality: int = 20) -> np.ndarray:
    import cv2

    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def blur(image: np.ndarray, box: np.ndarray, share: float) -> np.ndarray:
    """Gaussian blur with sigma `share` of the face's size."""
    import cv2

    return cv2.GaussianBlur(image, (0, 0), max(0.5, share * face_side(box)))


def posterize(image: np.ndarray, levels: int = 3) -> np.ndarray:
    step = 256 / levels
    return (np.floor(image / step) * step + step / 2).clip(0, 255).astype(np.uint8)


def cartoon(image: np.ndarray) -> np.ndarray:
    """Flat colours (repeated bilateral filtering, quantised) with dark edges, as cartoon avatar filters do."""
    import cv2

    small = image
    for _ in range(5):
        small = cv2.bilateralFilter(small, 9, 40, 7)
    flat = posterize(small, 6)
    g = cv2.medianBlur(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), 5)
    edges = cv2.adaptiveThreshold(g, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 9, 4)
    return cv2.bitwise_and(flat, flat, mask=edges)


def hue(image: np.ndarray, degrees: int) -> np.ndarray:
    import cv2

    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    hsv[..., 0] = (hsv[..., 0].astype(int) + degrees // 2) % 180  # OpenCV hue is 0..179
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def mixed(image: np.ndarray, box: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random mix of low-quality steps (each taken with some chance, at least one)."""
    steps = []
    while not steps:
        steps = [s for s in ("grey", "lowres", "blur", "jpeg") if rng.random() < 0.5]
    out, b = image, np.asarray(box, np.float32)
    if "grey" in steps:
        out = grey(out)
    if "lowres" in steps:
        px = float(rng.uniform(48, 64))
        f = min(1.0, px / max(face_side(b), 1.0))
        out, b = shrink_to_face(out, b, px), b * f
    if "blur" in steps:
        out = blur(out, b, float(rng.uniform(0.01, 0.03)))
    if "jpeg" in steps:
        out = jpeg(out, int(rng.integers(15, 35)))
    return out


def apply(condition: str, image: np.ndarray, box: np.ndarray, kps: np.ndarray,
          rng: np.random.Generator | None = None) -> np.ndarray:
    """The photo under one condition (see the module docstring)."""
    import cv2

    rng = rng or np.random.default_rng(0)
    if condition == "clean":
        return image
    if condition == "tight":
        return square_crop(image, box, 1.0)
    if condition == "tighter":
        return square_crop(image, box, 0.6)
    if condition == "aligned":
        return aligned(image, kps)
    if condition == "grey":
        return grey(image)
    if condition in ("lowres64", "lowres48"):
        return shrink_to_face(image, box, int(condition[-2:]))
    if condition == "jpeg20":
        return jpeg(image, 20)
    if condition == "blur":
        return blur(image, box, 0.02)
    if condition == "heavy_blur":
        return blur(image, box, 0.05)
    if condition == "mixed":
        return mixed(image, box, rng)
    if condition == "posterize":
        return posterize(image, 3)
    if condition == "stylization":
        return cv2.stylization(image, sigma_s=60, sigma_r=0.45)
    if condition == "edge_preserving":
        return cv2.edgePreservingFilter(image, flags=cv2.RECURS_FILTER, sigma_s=60, sigma_r=0.4)
    if condition == "cartoon":
        return cartoon(image)
    if condition in ("hue60", "hue120"):
        return hue(image, int(condition[3:]))
    raise ValueError(f"unknown condition {condition!r}; known: {', '.join(CONDITIONS)}")
