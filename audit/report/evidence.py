"""Pictures for the HTML report: face crops and waveforms re-read from the scanned files, reference crops."""

from __future__ import annotations

from pathlib import Path

from .pictures import crop_jpeg, waveform_png

from .. import media
from ..config import SAMPLE_RATE
from ..errors import AuditError
from ..store.store import Store


class Evidence:
    """Looks up the pictures a report needs; a file that changed since the scan gives no picture."""

    def __init__(self, store: Store | None, findings: list[dict]):
        self.store = store
        self._frames: dict[str, dict[float, object]] = {}
        self._wanted: dict[str, set[float]] = {}
        for f in findings:
            if f.get("modality") == "face" and f.get("start") is not None:
                t = (f.get("extra") or {}).get("best_time", f["start"])
                self._wanted.setdefault(f["path"], set()).add(t)

    def reference(self, person: str) -> bytes | None:
        """The enrolled person's stored reference crop."""
        if self.store is None:
            return None
        try:
            return self.store.reference(person)
        except AuditError:
            return None

    def sample(self, vid: int) -> dict | None:
        """Where an enrolled sample came from, and which sample its person's reference crop shows."""
        if self.store is None:
            return None
        info = self.store.sample_info([vid]).get(vid)
        return None if info is None else info.to_dict()

    def crop(self, f: dict) -> bytes | None:
        """The flagged face, cut from the scanned image or video frame."""
        if not f.get("bbox"):
            return None
        path = _source(f)
        if path is None:
            return None
        try:
            if f.get("start") is None:
                image = media.load_image(path)
            else:
                image = self._frame(f["path"], path, (f.get("extra") or {}).get("best_time", f["start"]), f)
            return None if image is None else crop_jpeg(image, f["bbox"])
        except AuditError:
            return None

    def waveform(self, f: dict) -> bytes | None:
        """The recording's waveform with the flagged span shaded."""
        from ..media import audio

        path = _source(f)
        if path is None:
            return None
        try:
            wav = audio.load_audio(path)
        except AuditError:
            return None
        return waveform_png(wav, SAMPLE_RATE, f.get("start") or 0.0, f.get("end") or 0.0)

    def _frame(self, key: str, path: Path, t: float, f: dict):
        """The sampled frame at time t; one decode per file collects every time wanted from it."""
        from ..media import video

        if key not in self._frames:
            wanted = sorted(self._wanted.get(key, {t}))
            fps = (f.get("extra") or {}).get("fps", 1.0)
            got: dict[float, object] = {}
            try:
                for frame in video.iter_frames(path, fps=fps, keyframes=bool((f.get("extra") or {}).get("keyframes")),
                                               max_side=1920):
                    for w in wanted:
                        if abs(round(frame.time, 3) - w) < 1e-3:
                            got[w] = (frame.image, frame.scale)
                    if frame.time > wanted[-1] + 1:
                        break
            except AuditError:
                pass
            self._frames[key] = got
        hit = self._frames[key].get(t)
        if hit is None:
            return None
        image, scale = hit
        if scale != 1.0:
            import cv2

            image = cv2.resize(image, None, fx=1 / scale, fy=1 / scale)
        return image


def _source(f: dict) -> Path | None:
    """The scanned file, if it is still there with the same SHA-256."""
    # Non-UTF-8 names were written with \\x escapes and are not found again: no picture for those.
    path = Path(f["path"]) if f.get("path") else None
    if path is None or not path.is_file() or not f.get("sha256"):
        return None
    try:
        return path if media.sha256_file(path) == f["sha256"] else None
    except OSError:
        return None
