"""What the shipped speaker encoders share (voice.py's GE2E, campplus.py's CAM++): the speech segment record, the
volume normalisation and webrtcvad silence trimming of resemblyzer's front end, and the ONNX model base class."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..config import SAMPLE_RATE
from ..errors import ModelError
from ..media.files import sha256_file
from .channel import is_band_limited

if TYPE_CHECKING:
    import onnxruntime as ort

NORM_TARGET_DBFS = -30.0
INT16_MAX = 2**15 - 1
VAD_WINDOW = 480  # 30 ms
VAD_AVERAGE_WIDTH = 8
VAD_MAX_SILENCE = 6
VAD_MODE = 3
_DIGESTS: dict[tuple[str, int, int], str] = {}  # model file (path, size, mtime) -> SHA-256, for this process


@dataclass
class Segment:
    """Embedding of a stretch of speech; times are seconds from the start of the decoded audio."""

    start: float
    end: float
    vector: np.ndarray
    voiced_s: float
    narrow: bool = False  # nothing above 4 kHz, as after a telephone line (channel.is_band_limited)


def normalize_volume(wav: np.ndarray, target_dbfs: float = NORM_TARGET_DBFS) -> np.ndarray:
    """Raise the level so the RMS reaches `target_dbfs`; never lower it (resemblyzer, increase_only=True)."""
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) if len(wav) else 0.0
    if rms == 0.0:
        return wav  # silence: resemblyzer would multiply by infinity here
    change_db = target_dbfs - 20 * math.log10(rms)
    if change_db <= 0:
        return wav
    return (wav * np.float32(10 ** (change_db / 20))).astype(np.float32, copy=False)


def _vad_flags(wav: np.ndarray) -> np.ndarray:
    """Run webrtcvad (mode 3) on consecutive 30 ms windows; the tail shorter than a window is ignored."""
    import webrtcvad  # imported here so that importing audit.voice stays cheap

    n = len(wav) // VAD_WINDOW
    # Clip first: samples beyond +-1 (possible after normalisation) would wrap around in int16.
    pcm = np.round(np.clip(wav[: n * VAD_WINDOW], -1.0, 1.0) * INT16_MAX).astype("<i2").tobytes()
    vad = webrtcvad.Vad(VAD_MODE)
    step = VAD_WINDOW * 2
    return np.fromiter(
        (vad.is_speech(pcm[i * step : (i + 1) * step], SAMPLE_RATE) for i in range(n)), dtype=bool, count=n
    )


def vad_masks(wav: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per 30 ms window: (voiced, keep), the smoothed VAD decisions and the same widened by 3 windows each side."""
    flags = _vad_flags(wav).astype(np.float64)
    width = VAD_AVERAGE_WIDTH
    padded = np.concatenate((np.zeros((width - 1) // 2), flags, np.zeros(width // 2)))
    ret = np.cumsum(padded)
    ret[width:] = ret[width:] - ret[:-width]
    voiced = np.round(ret[width - 1 :] / width).astype(bool)  # round half to even, as resemblyzer does
    # Binary dilation by 3 windows each side keeps short pauses and a little context around speech.
    half = (VAD_MAX_SILENCE + 1) // 2
    counts = np.concatenate(([0], np.cumsum(np.pad(voiced, half), dtype=np.int64)))
    keep = counts[2 * half + 1 :] - counts[: -(2 * half + 1)] > 0
    return voiced, keep


def trim_long_silences(wav: np.ndarray) -> np.ndarray:
    """Cut out long silences, keeping speech and short pauses (resemblyzer's trim_long_silences)."""
    _voiced, keep = vad_masks(wav)
    return wav[: len(keep) * VAD_WINDOW][np.repeat(keep, VAD_WINDOW)]


@dataclass
class Grid:
    """The 3 s segment grid of a file: voice activity found once, shared by every encoder (fused runs both on it).

    `cuts` holds (first 30 ms window, end window, voiced seconds) of each segment with enough speech; `keep` is the
    per-window mask of samples kept (speech plus short pauses).
    """

    wav: np.ndarray
    keep: np.ndarray
    cuts: list[tuple[int, int, float]]
    narrow: dict[int, bool] = field(default_factory=dict)  # cut -> band-limited, found once for every encoder

    def clip(self, a: int, b: int) -> np.ndarray:
        """The raw samples of windows a..b (before trimming)."""
        return self.wav[a * VAD_WINDOW : b * VAD_WINDOW]

    def kept(self, a: int, b: int) -> np.ndarray:
        """The sample mask that trims long silences from clip(a, b)."""
        return np.repeat(self.keep[a:b], VAD_WINDOW)

    def segment(self, k: int, vector: np.ndarray) -> Segment:
        """The Segment record of cut k with its vector."""
        a, b, voiced_s = self.cuts[k]
        window_s = VAD_WINDOW / SAMPLE_RATE
        if k not in self.narrow:
            self.narrow[k] = is_band_limited(self.clip(a, b))
        return Segment(round(a * window_s, 3), round(b * window_s, 3), vector, voiced_s, self.narrow[k])


def segment_grid(wav: np.ndarray, segment_s: float = 3.0, hop_s: float = 1.5, min_voiced_s: float = 1.0) -> Grid:
    """Overlapping windows of 16 kHz mono audio that hold at least `min_voiced_s` of speech, aligned to the 30 ms
    VAD grid; voice activity is found once over the whole (volume-normalised) audio."""
    wav = _as_float32(wav)
    voiced, keep = vad_masks(normalize_volume(wav))
    n_win = len(voiced)
    seg_w = max(1, round(segment_s * SAMPLE_RATE / VAD_WINDOW))
    hop_w = max(1, round(hop_s * SAMPLE_RATE / VAD_WINDOW))
    n_segments = max(1, math.ceil((n_win - seg_w) / hop_w) + 1) if n_win else 0
    window_s = VAD_WINDOW / SAMPLE_RATE
    # One cumulative sum instead of a sum per segment: long files have thousands of segments.
    counts = np.concatenate(([0], np.cumsum(voiced, dtype=np.int64)))
    cuts = []
    for k in range(n_segments):
        a, b = k * hop_w, min(k * hop_w + seg_w, n_win)
        voiced_s = round(float(counts[b] - counts[a]) * window_s, 3)
        if voiced_s >= min_voiced_s:
            cuts.append((a, b, voiced_s))
    return Grid(wav, keep, cuts)


def _as_float32(wav: np.ndarray) -> np.ndarray:
    """Check the shape and return a float32 view or copy."""
    wav = np.asarray(wav)
    if wav.ndim != 1:
        raise ValueError(f"expected mono audio as a 1-D array, got shape {wav.shape}")
    return wav.astype(np.float32, copy=False)


def _unit(v: np.ndarray) -> np.ndarray:
    """L2-normalise a vector (left as is if it is all zeros)."""
    norm = float(np.linalg.norm(v))
    return (v / norm if norm > 0 else v).astype(np.float32)


class OnnxVoiceModel:
    """What every shipped speaker encoder shares: its ONNX file, the model id, one lazily opened session."""

    dim: int
    input_name: str  # the network's one input, checked when the session opens
    kind: str  # what the file must be, for the error message
    default_model: Path

    def __init__(self, model_path: str | Path | None = None, threads: int = 1):
        """Use `model_path` (default: the model shipped in audit/models) with `threads` onnxruntime threads.

        One thread suits one worker process per core; a missing file raises ModelError at once.
        """
        self.model_path = Path(model_path) if model_path is not None else self.default_model
        if not self.model_path.is_file():
            raise ModelError(f"voice model not found: {self.model_path}")
        self.threads = max(1, int(threads))
        self._session = None
        self._model_id: str | None = None

    @property
    def model_id(self) -> str:
        """SHA-256 of the ONNX file, so stored vectors can be tied to the model that made them."""
        if self._model_id is None:
            try:
                st = self.model_path.stat()
                key = (str(self.model_path.resolve()), st.st_size, st.st_mtime_ns)
                if key not in _DIGESTS:  # once a process: a fused scan asks each part's id twice (28 MB for CAM++)
                    _DIGESTS[key] = sha256_file(self.model_path)
                self._model_id = _DIGESTS[key]
            except OSError as e:
                raise ModelError(f"cannot read voice model {self.model_path}: {e}") from e
        return self._model_id

    def _get_session(self) -> ort.InferenceSession:
        """Create the onnxruntime session once."""
        if self._session is None:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            # Spinning threads burn CPU between calls, which starves other workers on small machines.
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
            try:
                session = ort.InferenceSession(str(self.model_path), opts, providers=["CPUExecutionProvider"])
            except Exception as e:  # onnxruntime raises its own exception types for unreadable models
                raise ModelError(f"cannot load voice model {self.model_path}: {e}") from e
            out_shape = session.get_outputs()[0].shape
            if [i.name for i in session.get_inputs()] != [self.input_name] or out_shape[-1] != self.dim:
                raise ModelError(f"{self.model_path} is not a {self.dim}-d {self.kind}")
            self._session = session
        return self._session
