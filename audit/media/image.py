"""Decode still images (OpenCV) with guards against decompression bombs and truncation."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import config
from ..errors import MediaError
from .files import read_bytes


def decode_image(data: bytes, max_pixels: int = config.MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode image bytes to a BGR uint8 array (EXIF rotation applied), guarding against decompression bombs.

    A JPEG above config.MAX_DECODE_PIXELS comes back reduced (see decode_image_scaled for the factor).
    """
    return decode_image_scaled(data, max_pixels)[0]


def decode_image_scaled(data: bytes, max_pixels: int = config.MAX_IMAGE_PIXELS,
                        max_decode: int = config.MAX_DECODE_PIXELS) -> tuple[np.ndarray, float]:
    """(BGR image, scale of the image to the file's own size): bounded memory whatever the header claims."""
    import io
    import warnings

    import cv2
    from PIL import Image, UnidentifiedImageError

    # Pillow reads only the header here: a cheap size check before OpenCV allocates the pixels. Our own limits
    # below decide (a JPEG up to max_pixels decodes reduced), so Pillow's bomb warning, from 89.5 MP, is silenced.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
                fmt = im.format
    except UnidentifiedImageError as exc:
        raise MediaError("not a readable image (unknown format, or the header is corrupt)") from exc
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise MediaError(f"not a readable image: {exc}") from exc
    if w <= 0 or h <= 0:
        raise MediaError(f"image has no pixels ({w}x{h})")
    if w * h > max_pixels:
        raise MediaError(f"image too large ({w}x{h} = {w * h} pixels; limit {max_pixels})")
    reduce = 1
    while w * h > max_decode * reduce * reduce and reduce < 8:
        reduce *= 2
    if w * h > max_decode * reduce * reduce or (reduce > 1 and fmt != "JPEG"):
        raise MediaError(f"image too large to decode safely ({w}x{h} = {w * h} pixels; limit {max_decode} "
                         "for formats other than JPEG)")
    truncated = _truncation(data)
    if truncated:
        raise MediaError(truncated)
    flag = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}[reduce]
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if image is None:
        raise MediaError("image data is corrupt or truncated (OpenCV could not decode it)")
    return image, 1.0 / reduce


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
