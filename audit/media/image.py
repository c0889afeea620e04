"""Decode still images (OpenCV) with guards against decompression bombs and truncation."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import config
from ..errors import MediaError
from .files import read_bytes


def decode_image(data: bytes, max_pixels: int = config.MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode image bytes to a BGR uint8 array (EXIF rotation applied), guarding against decompression bombs."""
    import io

    import cv2
    from PIL import Image, UnidentifiedImageError

    # Pillow reads only the header here: a cheap size check before OpenCV allocates the pixels.
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
    except UnidentifiedImageError as exc:
        raise MediaError("not a readable image (unknown format, or the header is corrupt)") from exc
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise MediaError(f"not a readable image: {exc}") from exc
    if w <= 0 or h <= 0:
        raise MediaError(f"image has no pixels ({w}x{h})")
    if w * h > max_pixels:
        raise MediaError(f"image too large ({w}x{h} = {w * h} pixels; limit {max_pixels})")
    truncated = _truncation(data)
    if truncated:
        raise MediaError(truncated)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise MediaError("image data is corrupt or truncated (OpenCV could not decode it)")
    return image


def load_image(path: Path) -> np.ndarray:
    """Read and decode an image file (works for any file name, since bytes go through imdecode)."""
    return decode_image(read_bytes(path))


def _truncation(data: bytes) -> str | None:
    """Say so when a JPEG or PNG lacks its end marker: OpenCV would return a grey-filled partial image."""
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-4096:]:
        return "truncated JPEG (no end-of-image marker)"
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-64:]:
        return "truncated PNG (no IEND chunk)"
    return None
