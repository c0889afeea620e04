"""Media in: find files, type them, hash them, decode images, video frames and audio."""

from .container import av_reason, open_container
from .files import content_kind, display_path, hash_file, kind_by_content, kind_of, read_bytes, sha256_file, walk
from .image import decode_image, decode_image_scaled, load_image

__all__ = ["av_reason", "content_kind", "decode_image", "decode_image_scaled", "display_path", "hash_file",
           "kind_by_content", "kind_of", "load_image", "open_container", "read_bytes", "sha256_file", "walk"]
