"""How to scan: every option the CLI has, as one dataclass the library, the CLI and the engines share."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import AuditError


@dataclass
class ScanOptions:
    """How to scan."""

    threshold: float | None = None  # face; None: calibrated or default
    voice_threshold: float | None = None
    top_k: int = 1
    use: str | None = None  # the use (consent scope) the media is for
    workers: int = 0  # 0: one per core when there is enough work
    models: str | None = None  # face model pack folder (from the store when scanning through audit.scan)
    threads: int = 1  # onnxruntime threads per process
    fps: float = 1.0  # video frames sampled per second
    keyframes: bool = False  # sample keyframes only (fast)
    min_frames: int = 1  # appearances seen in fewer sampled frames are dropped
    voice: bool = True  # scan audio (only done when voices are enrolled)
    include: tuple[str, ...] = ()  # globs on the file name or path: only files matching one are scanned
    exclude: tuple[str, ...] = ()  # globs: files matching one are skipped
    shard: tuple[int, int] | None = None  # (i, n): scan only the i-th of n parts, split by path hash (1 <= i <= n)
    cache: bool = True  # reuse and keep analyses in the store's scan cache (by file SHA-256 + model + settings)
    resume: bool = False  # continue the stopped scan of the same paths and options
    engine: str = "local"  # "local" (process pool) or "ray"
    address: str | None = None  # Ray cluster address (else $RAY_ADDRESS, else a local Ray)
    voice_model: str = "ge2e"  # voice encoder: ge2e or campplus (audit/models/voice.py)

    def check(self) -> None:
        """Raise AuditError for values no scan can use (the CLI checks the same ranges)."""
        if self.threshold is not None and not -1.0 <= self.threshold <= 1.0:
            raise AuditError(f"threshold must be within [-1, 1] (cosine similarity), not {self.threshold}")
        if self.voice_threshold is not None and not math.isfinite(self.voice_threshold):
            raise AuditError(f"voice_threshold must be a number (an AS-normalised score), not {self.voice_threshold}")
        from ..models.voice import VOICE_MODELS

        if self.voice_model not in VOICE_MODELS:
            raise AuditError(f"unknown voice model '{self.voice_model}'; choose one of: {', '.join(VOICE_MODELS)}")
        if self.top_k < 1:
            raise AuditError(f"top_k must be at least 1, not {self.top_k}")
        if not self.fps > 0:
            raise AuditError(f"fps must be above 0, not {self.fps}")
        if self.shard is not None and not (len(self.shard) == 2 and 1 <= self.shard[0] <= self.shard[1]):
            raise AuditError(f"shard must be (i, n) with 1 <= i <= n, not {self.shard}")
        if self.engine not in ("local", "ray"):
            raise AuditError(f"engine must be 'local' or 'ray', not {self.engine!r}")
        if self.min_frames < 1 or self.workers < 0 or self.threads < 1:
            raise AuditError("min_frames and threads must be at least 1, workers at least 0")
