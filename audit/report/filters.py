"""Jinja filters for the evidence page: printable text, numbers, time codes, false-match rates in words."""

from __future__ import annotations

import html
import json
import math
import re
from typing import Any

import numpy as np
from markupsafe import Markup

# C0/C1 controls and bidi/format characters that can hide or reorder text (e.g. "exe.gpj" tricks in file names).
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
_INVISIBLE_ML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_RED_CONSENT = {"denied", "expired"}


def _surrogate_repl(m: re.Match[str]) -> str:
    """Show a lone surrogate as the byte it stands for (\\xNN) or as \\uNNNN."""
    cp = ord(m.group())
    return f"\\x{cp - 0xDC00:02x}" if 0xDC80 <= cp <= 0xDCFF else f"\\u{cp:04x}"


def _control_repl(m: re.Match[str]) -> str:
    """Show an invisible/control character as a visible escape."""
    cp = ord(m.group())
    return f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}"


def text(value: Any, *, multiline: bool = False) -> str:
    """Any value as printable, UTF-8-encodable text (undecodable bytes and hidden characters made visible)."""
    s = value if isinstance(value, str) else str(value)
    s = _SURROGATE.sub(_surrogate_repl, s)
    return (_INVISIBLE_ML if multiline else _INVISIBLE).sub(_control_repl, s)


def finalize(value: Any) -> Any:
    """Every {{ value }} passes here: made printable and HTML-escaped (quotes too) unless already markup."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(text(value), quote=True))


def multiline(value: Any) -> Markup:
    """Escaped text that keeps its line breaks and tabs (error messages)."""
    return Markup(html.escape(text(value, multiline=True), quote=True))


def to_float(value: Any) -> float | None:
    """A finite float, or None for anything else (damaged JSON must not break the report)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def num(value: Any, digits: int = 2) -> str:
    """A score, threshold or weight as the report and the web pages print every one: two decimals; a dash when
    missing."""
    f = to_float(value)
    return "—" if f is None else f"{f:.{digits}f}"


def signed(value: Any) -> str:
    """A margin with an explicit sign."""
    f = to_float(value)
    if f is None:
        return "—"
    return ("+" if f >= 0 else "−") + num(abs(f))


def percent(value: float) -> str:
    """A 0..1 fraction, clamped, as a CSS percentage number."""
    return f"{min(max(value, 0.0), 1.0) * 100:.1f}"


def bar_top(thr: float | None) -> float:
    """The right end of a score bar: 1 (a perfect cosine match), or twice a threshold of 1 and over (AS-normalised
    voice scores have no ceiling)."""
    return 2 * thr if thr is not None and thr >= 1 else 1.0


def bar_scale(sim: float, thr: float | None) -> str:
    """How full a score bar is, as a CSS percentage: the way from the threshold (left end, marked) to bar_top, so a
    finding just at its threshold shows an almost empty bar; without a threshold, the share of 0..1."""
    if thr is None:
        return percent(sim)
    top = bar_top(thr)
    return percent((sim - thr) / (top - thr)) if top > thr else percent(1.0 if sim >= thr else 0.0)


def timecode(value: Any) -> str:
    """Seconds as h:mm:ss.s."""
    f = to_float(value)
    if f is None or f < 0:
        return "—"
    tenths = round(f * 10)
    h, rem = divmod(tenths, 36000)
    m, rem = divmod(rem, 600)
    return f"{h}:{m:02d}:{rem / 10:04.1f}"


def fmr_words(fmr: Any) -> str | None:
    """A false-match rate in words: 1e-4 -> '1 in 10,000'."""
    f = to_float(fmr)
    if f is None or f <= 0 or f > 1:
        return None
    inv = 1.0 / f
    n = round(inv)
    if n < 2:
        return f"{f:.0%}"
    approx = abs(inv - n) / inv > 0.005
    return ("about " if approx else "") + f"1 in {n:,}"


def consent_colour(value: Any) -> str:
    """Badge colour for a consent state: denied/expired red, allowed green, anything else grey."""
    low = text(value).strip().lower()
    return "red" if low in _RED_CONSENT else "green" if low == "allowed" else "grey"


def box(raw: Any) -> tuple[int, int, int, int] | None:
    """A well-formed bbox as rounded (x1, y1, x2, y2); None for anything else."""
    if isinstance(raw, (list, tuple)) and len(raw) == 4:
        v = [to_float(x) for x in raw]
        if all(x is not None for x in v):
            return tuple(round(x) for x in v)  # type: ignore[return-value,arg-type]
    return None


def extra_items(extra: Any) -> list[tuple[str, str]]:
    """The finding's extra dict as sorted (key, value text) pairs, long values cut."""
    if not isinstance(extra, dict):
        return []
    items = []
    for k in sorted(extra, key=text):
        v = extra[k]
        try:
            vs = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str, sort_keys=True)
        except (TypeError, ValueError):
            vs = repr(v)
        items.append((k, vs[:400] + "…" if len(vs) > 400 else vs))
    return items


FILTERS = {
    "multiline": multiline,
    "num": num,
    "signed": signed,
    "percent": percent,
    "bar_scale": bar_scale,
    "bar_top": bar_top,
    "timecode": timecode,
    "fmr_words": fmr_words,
    "consent_colour": consent_colour,
    "box": box,
    "extra_items": extra_items,
}
