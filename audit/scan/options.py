"""How to scan: every option, declared once. The CLI's options, the library's keywords and the run's description
in reports are all derived from the fields below (the web API takes a subset, checked against them by a test)."""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from ..errors import InputError


def option(default: Any, help: str, *, flag: str | None = None, range: tuple | None = None,
           choices: tuple[str, ...] | None = None, words: str | None = None, cli: bool = True,
           metavar: str | None = None, factory: Any = None) -> Any:
    """A ScanOptions field with what the doors need to know of it.

    :param flag: the CLI flag (default: --the-name); a flag of a boolean option set to True by default turns it off
    :param range: (low, high) inclusive, None for open; the CLI and check() apply the same range
    :param words: how a report states a value other than the default ("{}" is the value)
    :param cli: False for options the CLI sets in its own way (or not at all)
    """
    meta = {"help": help, "flag": flag, "range": range, "choices": choices, "words": words, "cli": cli,
            "metavar": metavar}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ScanOptions:
    """How to scan."""

    threshold: float | None = option(
        None, "Face similarity threshold (default: calibrated, else the documented default).",
        words="face threshold {}")
    voice_threshold: float | None = option(
        None, "Voice threshold on AS-normalised scores (default: calibrated, else documented).",
        words="voice threshold {}")
    voice_model: str = option("ge2e", "Voice encoder (people must be enrolled with the same one).",
                              choices=("ge2e", "campplus"), words="voice encoder {}")
    top_k: int = option(1, "Candidates per face.", range=(1, 100), words="{} candidates per face")
    fps: float = option(1.0, "Video frames sampled per second.", range=(0.01, 60), words="video sampled at {} frames/s")
    keyframes: bool = option(False, "Sample only video keyframes (much faster, coarser).",
                             words="video keyframes only")
    min_frames: int = option(1, "Drop video appearances seen in fewer sampled frames.", range=(1, None),
                             words="video appearances of at least {} sampled frames")
    voice: bool = option(True, "Do not scan audio, even when voices are enrolled.", flag="--no-voice",
                         words="audio not scanned")
    use: str | None = option(None, "The use the media is for (a consent scope, e.g. advertising).",
                             words="consent checked for the use '{}'")
    workers: int = option(0, "Worker processes (0: automatic).", range=(0, 64))
    include: tuple[str, ...] = option(
        (), "Scan only files whose name or path matches (repeatable), e.g. '*.jpg'.", metavar="GLOB",
        words="only files matching {}")
    exclude: tuple[str, ...] = option((), "Skip files whose name or path matches (repeatable).", metavar="GLOB",
                                      words="files matching {} skipped")
    resume: bool = option(False, "Continue the stopped scan of the same paths and options.",
                          words="resumed from a stopped scan")
    cache: bool = option(True, "Neither use nor fill the store's scan cache of embeddings.", flag="--no-cache",
                         words="scan cache not used")
    archive: bool = option(True, "Do not keep this scan's faces and voices in the store's embedding archive "
                                 "(retro-match of people who enrol later; docs/continuous.md).", flag="--no-archive",
                           words="embeddings not archived")
    shard: tuple[int, int] | None = option(
        None, "Scan only part I of N (split by path hash), for job arrays; merge with `report`.", metavar="I/N",
        words="shard {0[0]} of {0[1]}")
    engine: str = option("local", "Decode and embed in local processes, or on Ray "
                                  "(pip install 'likeness-audit[ray]').", choices=("local", "ray"),
                         words="engine {}")
    address: str | None = option(None, "Ray cluster address for --engine ray (else $RAY_ADDRESS, else a local Ray).")
    c2pa_trust: str | None = option(
        None, "PEM file of C2PA signer roots to trust (else $AUDIT_C2PA_TRUST): manifests signed under one read as "
        "trusted, not 'signer not on a trust list'.", metavar="PEM", words="C2PA signers trusted from {}")
    c2pa_roots: str | None = option(None, "The trust list's PEM text (read from c2pa_trust by the scan).", cli=False)
    models: str | None = option(None, "Face model pack folder (from the store).", cli=False)
    threads: int = option(1, "onnxruntime threads per process (from the store).", range=(1, None), cli=False)

    def check(self) -> None:
        """Raise InputError for values no scan can use: the ranges and choices declared above."""
        if self.threshold is not None and not -1.0 <= self.threshold <= 1.0:
            raise InputError(f"threshold must be within [-1, 1] (cosine similarity), not {self.threshold}")
        if self.voice_threshold is not None and not math.isfinite(self.voice_threshold):
            raise InputError(f"voice_threshold must be a number (an AS-normalised score), not {self.voice_threshold}")
        for f in fields(self):
            value, low, high = getattr(self, f.name), *(f.metadata["range"] or (None, None))
            choices = f.metadata["choices"]
            if choices and value not in choices:
                raise InputError(f"unknown {f.name} '{value}'; choose one of: {', '.join(choices)}")
            if (low is not None and not value >= low) or (high is not None and not value <= high):
                bounds = f"at least {low}" if high is None else f"within [{low}, {high}]"
                raise InputError(f"{f.name} must be {bounds}, not {value}")
        if self.shard is not None and not (len(self.shard) == 2 and 1 <= self.shard[0] <= self.shard[1]):
            raise InputError(f"shard must be (i, n) with 1 <= i <= n, not {self.shard}")

    def described(self) -> list[str]:
        """The options that differ from the defaults, in words, for a report's header."""
        out = []
        for f in fields(self):
            value, words = getattr(self, f.name), f.metadata["words"]
            default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
            if words is None or value == default:
                continue
            if isinstance(value, bool):
                out.append(words)
            elif isinstance(value, tuple) and f.name != "shard":
                out.append(words.format(", ".join(map(str, value))))
            else:
                out.append(words.format(value))
        return out
