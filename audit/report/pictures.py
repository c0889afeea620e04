"""Pictures on the evidence page: the data: URIs that embed them (they are cut at scan time, audit/media/pictures.py),
and their captions."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from .filters import timecode, to_float

__all__ = ["References", "data_uri", "figure", "picture", "reference_caption", "scene_caption"]


def data_uri(data: Any) -> str | None:
    """A data: URI for JPEG or PNG bytes; None for anything else."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        return None
    b = bytes(data)
    if b[:3] == b"\xff\xd8\xff":
        mime = "image/jpeg"
    elif b[:8] == b"\x89PNG\r\n\x1a\n":
        mime = "image/png"
    else:
        return None
    return f"data:{mime};base64,{base64.b64encode(b).decode('ascii')}"


def picture(fn: Callable[[Any], Any] | None, arg: Any) -> tuple[str | None, str | None]:
    """Run an image callback: (data URI or None, problem text or None); a failing callback does not stop the report."""
    if fn is None:
        return None, None
    try:
        data = fn(arg)
    except Exception as exc:  # noqa: BLE001 - one bad crop must not lose the whole report
        return None, f"could not be produced ({type(exc).__name__})"
    if data is None:
        return None, None
    uri = data_uri(data)
    return (uri, None) if uri else (None, "not a JPEG or PNG image")


class References:
    """Memoised reference-crop lookups (one callback call per person)."""

    def __init__(self, fn: Callable[[str], bytes | None] | None) -> None:
        """Wrap the references callback."""
        self.fn = fn
        self.cache: dict[str, tuple[str | None, str | None]] = {}

    def get(self, key: str | None) -> tuple[str | None, str | None]:
        """(data URI, problem) for a person id (as text); nothing for a missing id."""
        if not key or self.fn is None:
            return None, None
        if key not in self.cache:
            self.cache[key] = picture(self.fn, key)
        return self.cache[key]


def figure(uri: str | None, caption: str, reason: str | None, problem: str | None, wave: bool = False,
            scene: bool = False) -> dict:
    """A picture, or the reason there is none."""
    return {"uri": uri, "caption": caption, "why": "; ".join(x for x in (reason, problem) if x), "wave": wave,
            "scene": scene}


def reference_caption(sample: dict[str, Any] | None, voice: bool = False) -> str:
    """Say which enrolled sample the reference crop was cut from: the store keeps one crop per person."""
    if voice or sample is None:
        return "enrolled reference photo" if voice else "enrolled reference"
    if sample["reference"] == sample["id"]:
        return "enrolled reference, cut from the sample that matched"
    if sample["reference"] is not None:
        return f"enrolled reference, cut from another of their samples (#{sample['reference']})"
    return "enrolled reference (which sample it was cut from is not recorded)"


def scene_caption(f: dict[str, Any]) -> str:
    """'the whole picture, face boxed' / 'the frame at 0:01:02.0, face boxed'."""
    extra = f.get("extra") if isinstance(f.get("extra"), dict) else {}
    at = to_float(extra.get("best_time"))
    at = at if at is not None else to_float(f.get("start"))
    return f"the frame at {timecode(at)}, face boxed" if at is not None else "the whole picture, face boxed"
