"""What a scan hands to the embedding archive (store/archive.py): every face and voice segment it analysed, with
the people its findings attributed each one to, so that people who enrol later can be searched against it."""

from __future__ import annotations

import json
import secrets
from datetime import datetime

from ..findings import Finding
from ..store import Store
from ..store.archive import Archive, PartWriter, quality_json, retention_days
from .analyze import AnalyzedFile


def new_scan_id(started: datetime) -> str:
    """A scan's id in the archive: its start time and a random part (unique across machines)."""
    return f"{started:%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"


class ScanArchive:
    """One scan's archive writers (one per modality and model); rows are written in partitions as they fill."""

    def __init__(self, store: Store, started: datetime, face_model: str, face_index: str | None,
                 voice_model: str | None, scan: str | None = None, erasures: object = None):
        self.archive = Archive(store.home, store.cipher)
        self.scan = scan or new_scan_id(started)
        self.started = started
        self.faces = PartWriter(self.archive, "face", face_model, self.scan, started, face_index)
        self.faces.keep = self._nobody_removed
        self.voice_model = voice_model
        self.voices: PartWriter | None = None
        self.store = store
        # removals so far, read before the scan loaded its gallery (erasures=): one during this scan moves it
        self.erasures = store.removals() if erasures is None else erasures
        self.on = retention_days() > 0  # 0 days: the archive is off
        self.pruned = self.archive.prune() if self.on else []

    def add(self, result: AnalyzedFile, findings: list[Finding]) -> None:
        """Archive every face and voice segment of one analysed file (its first path, when several share it)."""
        if not self.on:
            return
        base = {"sha256": result.sha256, "path": result.path, "media": result.kind}
        provenance = json.dumps(result.provenance) if result.provenance else None
        for i, face in enumerate(result.faces):
            self.faces.add({**base, "time": face.time, "box": [int(v) for v in face.bbox], "score": float(face.score),
                            "quality": quality_json(face.quality), "crop": face.crop,
                            "people": _people_of_face(face, findings, result.kind == "video"),
                            "provenance": provenance if i == 0 else None}, face.embedding)
        if result.voices and self.voice_model:
            if self.voices is None:
                self.voices = PartWriter(self.archive, "voice", self.voice_model, self.scan, self.started, None)
                self.voices.keep = self._nobody_removed
            for i, seg in enumerate(result.voices):
                first = i == 0 and result.envelope is not None
                self.voices.add({**base, "start": seg.start, "end": seg.end,
                                 "people": _people_of_span(seg.start, seg.end, findings),
                                 "envelope": result.envelope.astype("<f4").tobytes() if first else None,
                                 "duration": result.duration if first else None,
                                 "provenance": provenance if i == 0 else None}, seg.embedding)

    def _nobody_removed(self, rows: list[list[str]]) -> list[bool]:
        """Which rows (their people) may be written. A row attributed to someone removed while this scan ran is
        dropped (the removal's erasure of the archive came before this write, so it cannot reach it); and no row at
        all once someone was removed while this scan ran: the scan may have stopped naming them (unattributed
        rows), and their templates, which erasure matches faces and voices against, are gone, so nothing could
        tell their rows from the others' afterwards. The store is asked once a write, not once a row."""
        if self.store.removals() != self.erasures:
            return [False] * len(rows)
        known = set(self.store.names())
        return [not people or set(people) <= known for people in rows]

    def close(self) -> list[str]:
        """Write what is pending; returns every partition this scan wrote."""
        if not self.on:
            return []
        self.faces.flush()
        if self.voices is not None:
            self.voices.flush()
        return self.faces.written + (self.voices.written if self.voices else [])


def _people_of_face(face, findings: list[Finding], video: bool) -> list[str]:
    """Who the scan's face findings name for this face: the same box in an image; in a video, an appearance
    whose span holds the frame (erring towards attribution: erasure then reaches more, never less)."""
    out = []
    for f in findings:
        if f.modality != "face" or f.kind == "error":
            continue
        if video:
            hit = f.start is not None and face.time is not None and f.start <= face.time <= (f.end or f.start)
        else:
            hit = f.bbox is not None and [int(v) for v in f.bbox] == [int(v) for v in face.bbox]
        if hit:
            out += _named(f)
    return sorted(set(out))


def _people_of_span(start: float, end: float, findings: list[Finding]) -> list[str]:
    """Who the scan's voice findings name for a segment that overlaps their span."""
    out = []
    for f in findings:
        if f.modality == "voice" and f.kind != "error" and f.start is not None and f.start < end \
                and start < (f.end or f.start):
            out += _named(f)
    return sorted(set(out))


def _named(f: Finding) -> list[str]:
    names = [f.person] if f.person else []
    return names + [c["person"] for c in f.contributors or [] if c.get("person")]
