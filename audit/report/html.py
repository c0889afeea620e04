"""Self-contained offline HTML report of a scan's findings (inline CSS, images as data: URIs, strict CSP)."""

from __future__ import annotations

import base64
import html
import json
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

import cv2
import numpy as np

__all__ = ["CSP", "crop_jpeg", "render_html", "waveform_png"]

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_KIND_RANK = {"match": 0, "composite": 1}
_RED_CONSENT = {"denied", "expired"}
# C0/C1 controls and bidi/format characters that can hide or reorder text (e.g. "exe.gpj" tricks in file names).
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
_INVISIBLE_ML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


# ---------------------------------------------------------------- text helpers


def _surrogate_repl(m: re.Match[str]) -> str:
    """Show a lone surrogate as the byte it stands for (\\xNN) or as \\uNNNN."""
    cp = ord(m.group())
    return f"\\x{cp - 0xDC00:02x}" if 0xDC80 <= cp <= 0xDCFF else f"\\u{cp:04x}"


def _control_repl(m: re.Match[str]) -> str:
    """Show an invisible/control character as a visible escape."""
    cp = ord(m.group())
    return f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}"


def _text(value: Any, *, multiline: bool = False) -> str:
    """Any value as printable, UTF-8-encodable text (undecodable bytes and hidden characters made visible)."""
    s = value if isinstance(value, str) else str(value)
    s = _SURROGATE.sub(_surrogate_repl, s)
    return (_INVISIBLE_ML if multiline else _INVISIBLE).sub(_control_repl, s)


def _e(value: Any, *, multiline: bool = False) -> str:
    """Escape a value for HTML text or a double-quoted attribute."""
    return html.escape(_text(value, multiline=multiline), quote=True)


def _float(value: Any) -> float | None:
    """A finite float, or None for anything else (damaged JSON must not break the report)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _num(value: Any, digits: int = 3) -> str:
    """A number with `digits` decimals, trailing zeros trimmed down to two; an em dash when missing."""
    f = _float(value)
    if f is None:
        return "—"
    s = f"{f:.{digits}f}"
    if "." in s:
        head, tail = s.split(".")
        tail = tail.rstrip("0").ljust(2, "0")
        s = f"{head}.{tail}"
    return s


def _signed(value: float | None) -> str:
    """A margin with an explicit sign."""
    if value is None:
        return "—"
    s = _num(abs(value))
    return ("+" if value >= 0 else "−") + s


def _timecode(value: Any) -> str:
    """Seconds as h:mm:ss.s."""
    f = _float(value)
    if f is None or f < 0:
        return "—"
    tenths = round(f * 10)
    h, rem = divmod(tenths, 36000)
    m, rem = divmod(rem, 600)
    return f"{h}:{m:02d}:{rem / 10:04.1f}"


def _fmr_words(fmr: Any) -> str | None:
    """A false-match rate in words: 1e-4 -> '1 in 10,000'."""
    f = _float(fmr)
    if f is None or f <= 0 or f > 1:
        return None
    inv = 1.0 / f
    n = round(inv)
    if n < 2:
        return f"{f:.0%}"
    approx = abs(inv - n) / inv > 0.005
    return ("about " if approx else "") + f"1 in {n:,}"


def _margin(f: dict[str, Any]) -> float | None:
    """similarity - threshold, when both are numbers."""
    s, t = _float(f.get("similarity")), _float(f.get("threshold"))
    return None if s is None or t is None else s - t


def _sort_key(f: dict[str, Any]) -> tuple[Any, ...]:
    """Most severe first: matches before composites, then by margin descending; ties broken stably."""
    m = _margin(f)
    start = _float(f.get("start"))
    return (
        _KIND_RANK.get(f.get("kind"), 2),
        m is None,
        -(m if m is not None else 0.0),
        _text(f.get("path", "")),
        start if start is not None else -1.0,
        _text(f.get("person") or ""),
    )


# ---------------------------------------------------------------- image helpers


def _data_uri(data: Any) -> str | None:
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


def _call_image(fn: Callable[[Any], Any] | None, arg: Any) -> tuple[str | None, str | None]:
    """Run an image callback: (data URI or None, problem text or None); a failing callback does not stop the report."""
    if fn is None:
        return None, None
    try:
        data = fn(arg)
    except Exception as exc:  # noqa: BLE001 - one bad crop must not lose the whole report
        return None, f"could not be produced ({type(exc).__name__})"
    if data is None:
        return None, None
    uri = _data_uri(data)
    return (uri, None) if uri else (None, "not a JPEG or PNG image")


def crop_jpeg(image_bgr: np.ndarray, bbox: Iterable[float], margin: float = 0.25, size: int = 160) -> bytes:
    """Square crop around bbox [x1,y1,x2,y2] widened by margin per side, kept inside the image, as size x size JPEG."""
    img = np.asarray(image_bgr)
    if img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {img.dtype}")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    elif img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected a BGR image, got shape {img.shape}")
    h, w = img.shape[:2]
    if h == 0 or w == 0:
        raise ValueError("empty image")
    x1, y1, x2, y2 = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or x2 <= x1 or y2 <= y1:
        raise ValueError(f"invalid bbox {[x1, y1, x2, y2]}")
    if x2 <= 0 or y2 <= 0 or x1 >= w or y1 >= h:
        raise ValueError(f"bbox {[x1, y1, x2, y2]} lies outside the {w}x{h} image")
    side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * max(margin, 0.0))
    side = round(min(max(side, 1.0), w, h))
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    # Shift the square back inside the image rather than padding it with pixels that were never there.
    left = round(min(max(cx - side / 2.0, 0.0), w - side))
    top = round(min(max(cy - side / 2.0, 0.0), h - side))
    crop = img[top : top + side, left : left + side]
    interp = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    crop = cv2.resize(crop, (size, size), interpolation=interp)
    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def waveform_png(
    samples: np.ndarray, sr: int, start: float, end: float, width: int = 360, height: int = 80
) -> bytes:
    """PNG of the waveform (min/max envelope per column) with [start, end] seconds from the first sample shaded."""
    if sr <= 0:
        raise ValueError("sample rate must be positive")
    if width < 2 or height < 8:
        raise ValueError("picture too small")
    x = np.asarray(samples)
    if x.ndim == 2:  # (n, channels) -> mono
        x = x.mean(axis=1) if x.shape[1] <= x.shape[0] else x.mean(axis=0)
    x = np.nan_to_num(x.astype(np.float64).ravel(), nan=0.0, posinf=0.0, neginf=0.0)
    n = x.size
    img = np.full((height, width, 3), 255, np.uint8)
    ink = np.tile(np.array([110, 80, 50], np.uint8), (width, 1))  # slate blue (BGR) outside the span
    a = b = 0
    duration = n / sr if n else max(float(end), 0.0)
    if duration > 0:
        a = round(min(max(float(start) / duration, 0.0), 1.0) * width)
        b = round(min(max(float(end) / duration, 0.0), 1.0) * width)
        if b > a:
            img[:, a:b] = (210, 218, 255)  # light red background
            ink[a:b] = (30, 30, 170)  # dark red waveform inside the span
    mid = (height - 1) / 2.0
    img[int(mid), :] = (190, 190, 190)
    if n:
        if n >= width:
            idx = np.linspace(0, n, width + 1).astype(np.int64)[:-1]
            lo, hi = np.minimum.reduceat(x, idx), np.maximum.reduceat(x, idx)
        else:
            idx = np.arange(width) * n // width
            lo = hi = x[idx]
        peak = float(max(np.abs(lo).max(), np.abs(hi).max()))
        scale = (mid - 3) / peak if peak > 0 else 0.0
        top = np.clip(np.round(mid - hi * scale), 0, height - 1).astype(np.int64)
        bot = np.clip(np.round(mid - lo * scale), 0, height - 1).astype(np.int64)
        for col in range(width):
            img[min(top[col], bot[col]) : max(top[col], bot[col]) + 1, col] = ink[col]
    if b > a:  # span edges drawn last so they stay visible over a loud waveform
        img[:, a] = (40, 40, 200)
        img[:, b - 1] = (40, 40, 200)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


# ---------------------------------------------------------------- rendering

_STYLE = """
:root{--red:#b3261e;--red-bg:#fdecea;--green:#1e6b34;--green-bg:#e6f4ea;--grey:#555;--grey-bg:#eceff1;
--line:#d7dbe0;--muted:#5f6368;--ink:#1f2328}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ink);
margin:0 auto;max-width:1100px;padding:24px 28px;line-height:1.45;font-size:15px;background:#fff}
h1{font-size:26px;margin:0 0 4px}
h2{font-size:19px;margin:28px 0 10px;border-bottom:1px solid var(--line);padding-bottom:4px}
.muted{color:var(--muted)}.small{font-size:13px}
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;
font-size:13px;word-break:break-all}
table{border-collapse:collapse;width:100%;margin:6px 0 10px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:13px;color:var(--muted);font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.summary{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.fact{border:1px solid var(--line);border-radius:8px;padding:6px 14px;min-width:140px}
.fact dt{font-size:13px;color:var(--muted)}.fact dd{margin:0;font-size:24px;font-weight:700}
.fact dd small{font-size:13px;font-weight:400;color:var(--muted)}
.fact.alert{border-color:#e8a29c;background:var(--red-bg)}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;font-size:14px;margin:8px 0}
.meta dt{color:var(--muted)}.meta dd{margin:0}
.note{background:#fff8e1;border:1px solid #f2d68a;border-radius:6px;padding:6px 10px;margin:6px 0;font-size:14px}
.empty{border:1px dashed var(--line);border-radius:8px;padding:18px;font-size:17px;background:#fafbfc}
.card{border:1px solid var(--line);border-radius:10px;padding:14px 16px;margin:14px 0;
break-inside:avoid;page-break-inside:avoid}
.card.composite{border-left:5px solid #8a63d2}.card.match{border-left:5px solid var(--red)}
.card h3{margin:0 0 10px;font-size:18px}
.card h3 .idx{color:var(--muted);font-weight:400;margin-right:6px}
.kind{font-size:12px;text-transform:uppercase;letter-spacing:.05em;border:1px solid var(--line);border-radius:4px;
padding:1px 6px;margin-left:8px;vertical-align:middle;color:var(--muted);font-weight:600}
.body{display:flex;gap:18px;align-items:flex-start;flex-wrap:wrap}
.pics{display:flex;gap:10px}
figure{margin:0;text-align:center;width:164px}
figure.wave{width:364px}
figure img{display:block;border:1px solid var(--line);border-radius:4px;width:160px;height:160px;object-fit:cover}
figure.wave img{width:360px;height:auto}
figcaption{font-size:12px;color:var(--muted);margin-top:3px}
.ph{width:160px;height:160px;border:1px dashed #b9bec4;border-radius:4px;display:flex;align-items:center;
justify-content:center;flex-direction:column;text-align:center;color:var(--muted);font-size:13px;padding:8px;
background:#fafbfc}
.ph small{font-size:11px;margin-top:4px;word-break:break-word}
.facts{flex:1;min-width:320px}
.facts dl{display:grid;grid-template-columns:max-content 1fr;gap:3px 12px;margin:0}
.facts dt{color:var(--muted);font-size:14px}.facts dd{margin:0}
.score{font-size:16px}.score b{font-size:18px}
.pos{color:var(--red);font-weight:600}.neg{color:var(--green);font-weight:600}
.bar{position:relative;height:8px;background:#eceff1;border-radius:4px;margin:4px 0 2px;max-width:320px}
.bar .fill{position:absolute;left:0;top:0;bottom:0;background:#8c9aa8;border-radius:4px}
.bar .fill.over{background:var(--red)}
.bar .thr{position:absolute;top:-3px;bottom:-3px;width:2px;background:#111}
.badge{display:inline-block;border-radius:10px;padding:1px 10px;font-size:13px;font-weight:600}
.badge.red{background:var(--red-bg);color:var(--red);border:1px solid #f1b5b0}
.badge.green{background:var(--green-bg);color:var(--green);border:1px solid #a8d5b5}
.badge.grey{background:var(--grey-bg);color:var(--grey);border:1px solid #cfd6db}
.contrib img,.contrib .ph{width:56px;height:56px;font-size:10px;padding:2px}
.contrib img{display:block;border:1px solid var(--line);border-radius:3px;object-fit:cover}
.contrib{margin-top:12px}
.errors td.err{white-space:pre-wrap}
footer{margin-top:30px;font-size:13px;color:var(--muted);border-top:1px solid var(--line);padding-top:8px}
a{color:#1a56a8}
@media print{body{padding:0;max-width:none}.card{box-shadow:none}}
"""


def _img(uri: str, alt: str, cls: str = "") -> str:
    """An <img> with a data: URI (the only image source the CSP allows)."""
    c = f' class="{cls}"' if cls else ""
    return f'<img{c} src="{uri}" alt="{_e(alt)}">'


def _placeholder(reason: str | None, problem: str | None) -> str:
    """The 'no picture' box, with the reason when one is known."""
    why = "; ".join(x for x in (reason, problem) if x)
    return f'<div class="ph">no picture{f"<br><small>{_e(why)}</small>" if why else ""}</div>'


def _figure(uri: str | None, caption: str, reason: str | None, problem: str | None, wave: bool = False) -> str:
    """A picture with caption, or a placeholder saying why there is none."""
    inner = _img(uri, caption) if uri else _placeholder(reason, problem)
    cls = ' class="wave"' if wave and uri else ""
    return f"<figure{cls}>{inner}<figcaption>{_e(caption)}</figcaption></figure>"


def _consent_badge(value: Any) -> str:
    """Coloured consent badge: denied/expired red, allowed green, anything else grey."""
    if value is None or value == "":
        return '<span class="badge grey">not recorded</span>'
    v = _text(value)
    low = v.strip().lower()
    colour = "red" if low in _RED_CONSENT else "green" if low == "allowed" else "grey"
    return f'<span class="badge {colour}">{_e(v)}</span>'


def _person_label(name: Any, pid: Any) -> str:
    """'Name (id)' escaped; either part may be missing."""
    if name and pid and name != pid:
        return f'{_e(name)} <span class="muted mono">({_e(pid)})</span>'
    if name or pid:
        return _e(name or pid)
    return '<span class="muted">unknown person</span>'


def _score_bar(sim: float | None, thr: float | None) -> str:
    """A small bar: similarity filled on a 0..1 scale with the threshold marked."""
    if sim is None:
        return ""
    pct = min(max(sim, 0.0), 1.0) * 100
    over = " over" if thr is not None and sim >= thr else ""
    thr_mark = ""
    if thr is not None:
        tp = min(max(thr, 0.0), 1.0) * 100
        thr_mark = f'<div class="thr" style="left:calc({tp:.1f}% - 1px)"></div>'
    return f'<div class="bar"><div class="fill{over}" style="width:{pct:.1f}%"></div>{thr_mark}</div>'


def _row(label: str, value_html: str) -> str:
    """One dt/dd pair."""
    return f"<dt>{_e(label)}</dt><dd>{value_html}</dd>"


def _bbox_text(raw: Any) -> str | None:
    """'x1,y1 – x2,y2 (w×h px)' for a well-formed bbox, the escaped raw value otherwise."""
    if raw is None:
        return None
    if isinstance(raw, (list, tuple)) and len(raw) == 4:
        v = [_float(x) for x in raw]
        if all(x is not None for x in v):
            x1, y1, x2, y2 = (round(x) for x in v)  # type: ignore[arg-type]
            return f"{x1}, {y1} – {x2}, {y2} <span class=\"muted\">({x2 - x1}×{y2 - y1} px)</span>"
    return _e(raw)


def _threshold_source(raw: Any) -> str:
    """Threshold source, flagging an uncalibrated default."""
    if raw is None or raw == "":
        return '<span class="muted">not recorded</span>'
    s = _e(raw)
    if _text(raw).strip().lower() == "default":
        s += ' <span class="muted">(not calibrated on local data)</span>'
    return s


def _extra_html(extra: Any) -> str:
    """Escaped key: value lines for the finding's extra dict."""
    if not isinstance(extra, dict) or not extra:
        return ""
    parts = []
    for k in sorted(extra, key=lambda k: _text(k)):
        v = extra[k]
        try:
            vs = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str, sort_keys=True)
        except (TypeError, ValueError):
            vs = repr(v)
        if len(vs) > 400:
            vs = vs[:400] + "…"
        parts.append(f"{_e(k)}: <span class=\"mono\">{_e(vs)}</span>")
    return "<br>".join(parts)


class _Refs:
    """Memoised reference-crop lookups (one callback call per person)."""

    def __init__(self, fn: Callable[[str], bytes | None] | None) -> None:
        """Wrap the references callback."""
        self.fn = fn
        self.cache: dict[str, tuple[str | None, str | None]] = {}

    def get(self, pid: Any) -> tuple[str | None, str | None]:
        """(data URI, problem) for a person id."""
        if pid is None or pid == "" or self.fn is None:
            return None, None
        key = pid if isinstance(pid, str) else _text(pid)
        if key not in self.cache:
            self.cache[key] = _call_image(self.fn, key)
        return self.cache[key]


def _card(
    n: int,
    f: dict[str, Any],
    crops: Callable[[dict], bytes | None] | None,
    waveforms: Callable[[dict], bytes | None] | None,
    refs: _Refs,
    names: dict[str, str],
) -> str:
    """One finding card."""
    kind = _text(f.get("kind") or "")
    modality = _text(f.get("modality") or "")
    pid, name = f.get("person"), f.get("name")
    voice = modality == "voice"

    if voice:
        uri, problem = _call_image(waveforms, f)
        flagged = _figure(uri, "flagged span (shaded)", None, problem, wave=True)
    else:
        uri, problem = _call_image(crops, f)
        flagged = _figure(uri, "found in the scanned file", None, problem)
    pics = [flagged]
    if pid or kind != "composite":
        ruri, rproblem = refs.get(pid)
        pics.append(_figure(ruri, "enrolled reference", "no reference kept", rproblem))

    sim, thr = _float(f.get("similarity")), _float(f.get("threshold"))
    margin = _margin(f)
    mcls = "pos" if margin is not None and margin >= 0 else "neg"
    score = (
        f'<div class="score">similarity <b>{_num(sim)}</b> vs threshold <b>{_num(thr)}</b>'
        f' — margin <span class="{mcls}">{_signed(margin)}</span></div>{_score_bar(sim, thr)}'
    )
    words = _fmr_words(f.get("fmr"))
    if words:
        fmr = f"threshold {_num(thr)} stands for a false-match rate of {_e(words)}"
    else:
        fmr = '<span class="muted">false-match rate not recorded</span>'

    rows = [] if kind == "composite" and not (name or pid) else [_row("Person", _person_label(name, pid))]
    rows += [
        _row("Score", score),
        _row("False-match rate", fmr),
        _row("Threshold source", _threshold_source(f.get("threshold_source"))),
        _row("Consent", _consent_badge(f.get("consent"))),
        _row("File", f'<span class="mono">{_e(f.get("path", ""))}</span>'),
        _row("SHA-256", f'<span class="mono">{_e(f.get("sha256") or "—")}</span>'),
    ]
    start, end = _float(f.get("start")), _float(f.get("end"))
    if start is not None or end is not None:
        span = f"{_timecode(start)} – {_timecode(end)}"
        if start is not None and end is not None and end >= start:
            span += f' <span class="muted">({end - start:.1f} s)</span>'
        rows.append(_row("Time span", span))
    frames = f.get("frames")
    if frames is not None:
        fr = _float(frames)
        one = fr == 1
        unit = ("voiced segment" if voice else "sampled frame") + ("" if one else "s")
        shown = f"{int(fr):,}" if fr is not None and fr.is_integer() else _e(frames)
        rows.append(_row("Matched", f"{shown} {unit}"))
    bbox = _bbox_text(f.get("bbox"))
    if bbox:
        rows.append(_row("Face box", bbox))
    rows.append(_row("Model", f'<span class="mono">{_e(f.get("model") or "—")}</span>'))
    rows.append(_row("Index version", f'<span class="mono">{_e(f.get("index") or "—")}</span>'))
    extra = _extra_html(f.get("extra"))
    if extra:
        rows.append(_row("Details", extra))

    contrib_html = ""
    contributors = f.get("contributors")
    if kind == "composite" or contributors:
        items = [c for c in (contributors or []) if isinstance(c, dict)]
        if items:
            trs = []
            for c in items:
                cp = c.get("person")
                curi, _ = refs.get(cp)
                thumb = _img(curi, "reference") if curi else _placeholder(None, None)
                cname = c.get("name") or (names.get(cp) if isinstance(cp, str) else None)
                trs.append(
                    f"<tr><td>{thumb}</td><td>{_person_label(cname, cp)}</td>"
                    f'<td class="num">{_num(c.get("similarity"))}</td><td class="num">{_num(c.get("weight"))}</td></tr>'
                )
            contrib_html = (
                '<div class="contrib"><b>Contributors</b><table><tr><th>reference</th><th>person</th>'
                '<th class="num">similarity</th><th class="num">weight</th></tr>' + "".join(trs) + "</table></div>"
            )
        else:
            contrib_html = '<div class="contrib muted">No contributors recorded.</div>'

    if kind == "composite" and not (name or pid):
        n_contrib = sum(1 for c in contributors or [] if isinstance(c, dict))
        title_name = f"Composite of {n_contrib} registered {'person' if n_contrib == 1 else 'people'}"
    else:
        title_name = _e(name or pid or "unknown person")
    what = "voice" if voice else "face" if modality == "face" else _e(modality or "unknown modality")
    return (
        f'<section class="card {_e(kind)}" id="f{n}"><h3><span class="idx">#{n}</span>{title_name}'
        f' <span class="muted small">{what}</span><span class="kind">{_e(kind or "?")}</span></h3>'
        f'<div class="body"><div class="pics">{"".join(pics)}</div>'
        f'<div class="facts"><dl>{"".join(rows)}</dl>{contrib_html}</div></div></section>'
    )


# meta keys, with the aliases the CLI uses: (label, keys tried in order)
_META_FIELDS = [
    ("Tool version", ("tool_version", "version")),
    ("Scan time", ("scan_time", "created")),
    ("Scope (--use)", ("scope", "use")),
    ("Models", ("models", "model")),
    ("Index versions", ("indexes", "index_versions", "index")),
]
_META_SUMMARY = {"files_scanned", "errors", "threshold_notes", "notes", "title"}


def _meta_value(v: Any) -> str:
    """Escaped meta value: dicts as key: value lines, lists comma-joined."""
    if isinstance(v, dict):
        return "<br>".join(f'{_e(k)}: <span class="mono">{_e(x)}</span>' for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return _e(", ".join(_text(x) for x in v))
    return _e(v)


def _meta_html(meta: dict[str, Any]) -> str:
    """Scan details from meta: known keys first, then any others."""
    rows, used = [], set(_META_SUMMARY)
    for label, keys in _META_FIELDS:
        used.update(keys)
        for key in keys:
            if meta.get(key) not in (None, "", {}, []):
                rows.append(_row(label, _meta_value(meta[key])))
                break
    for key, v in meta.items():
        if key in used or v in (None, "", {}, []):
            continue
        rows.append(_row(_text(key).replace("_", " "), _meta_value(v)))
    return f'<dl class="meta">{"".join(rows)}</dl>' if rows else ""


def _notes(meta: dict[str, Any], hits: list[dict[str, Any]]) -> list[str]:
    """Threshold notes from meta, plus one when any finding used an uncalibrated default threshold."""
    notes: list[str] = []
    for key in ("threshold_notes", "notes"):
        v = meta.get(key)
        if isinstance(v, str):
            notes.append(v)
        elif isinstance(v, dict):
            notes += [f"{_text(k)}: {_text(x)}" for k, x in v.items()]
        elif isinstance(v, (list, tuple)):
            notes += [_text(x) for x in v if x]
    if any(_text(f.get("threshold_source") or "").strip().lower() == "default" for f in hits):
        notes.append(
            "Some thresholds are the documented defaults, not calibrated on this gallery: "
            "the stated false-match rates were measured on the project's reference data (README, Thresholds), "
            "not on this gallery."
        )
    return notes


def _count(value: Any) -> int | None:
    """A count from meta: an int, or the length of a list."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (list, tuple, set, dict)):
        return len(value)
    return None


def _people(hits: list[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """Per person (in order of their most severe finding): name, count, best similarity/margin, first card, consent;
    and how many composites each person contributes to."""
    people: dict[str, dict[str, Any]] = {}
    for n, f in enumerate(hits, 1):
        pid = f.get("person")
        if pid is None or pid == "":
            continue
        key = pid if isinstance(pid, str) else _text(pid)
        p = people.setdefault(
            key, {"name": f.get("name"), "count": 0, "best": None, "margin": None, "first": n, "consent": None}
        )
        p["count"] += 1
        s, m = _float(f.get("similarity")), _margin(f)
        if s is not None and (p["best"] is None or s > p["best"]):
            p["best"] = s
        if m is not None and (p["margin"] is None or m > p["margin"]):
            p["margin"] = m
        if p["consent"] is None and f.get("consent"):
            p["consent"] = f.get("consent")
        if not p["name"] and f.get("name"):
            p["name"] = f.get("name")
    composite_of: dict[str, int] = {}
    for f in hits:
        if f.get("kind") == "composite":
            for c in f.get("contributors") or []:
                if isinstance(c, dict) and c.get("person"):
                    k = _text(c["person"])
                    composite_of[k] = composite_of.get(k, 0) + 1
    return people, composite_of


def render_html(
    findings: list[dict],
    *,
    crops: Callable[[dict], bytes | None] | None = None,
    references: Callable[[str], bytes | None] | None = None,
    waveforms: Callable[[dict], bytes | None] | None = None,
    meta: dict | None = None,
) -> str:
    """One self-contained HTML page (no script, no external fetch) reporting findings, most severe first."""
    meta = meta if isinstance(meta, dict) else {}
    rows = [f for f in (findings or []) if isinstance(f, dict)]
    errors = [f for f in rows if f.get("kind") == "error"]
    hits = sorted((f for f in rows if f.get("kind") != "error"), key=_sort_key)
    refs = _Refs(references)
    names = {}
    for f in hits:
        pid, name = f.get("person"), f.get("name")
        if isinstance(pid, str) and name and pid not in names:
            names[pid] = name
    people, composite_of = _people(hits)

    scanned_raw = meta.get("files_scanned")
    scanned = _count(scanned_raw)
    scanned_html = f"{scanned:,}" if scanned is not None else _e(scanned_raw) if scanned_raw else "not recorded"
    error_files = _count(meta.get("errors"))
    if error_files is None:
        error_files = len({_text(f.get("path", "")) for f in errors})
    flagged_files = len({_text(f.get("path", "")) for f in hits})
    n_match = sum(1 for f in hits if f.get("kind") == "match")
    n_comp = sum(1 for f in hits if f.get("kind") == "composite")
    n_other = len(hits) - n_match - n_comp
    split = f"{n_match} match{'es' if n_match != 1 else ''}, {n_comp} composite{'s' if n_comp != 1 else ''}"
    if n_other:
        split += f", {n_other} other"

    def fact(label: str, value: str, alert: bool = False) -> str:
        """One summary figure."""
        return f'<div class="fact{" alert" if alert else ""}"><dt>{_e(label)}</dt><dd>{value}</dd></div>'

    summary = "".join(
        [
            fact("files scanned", scanned_html),
            fact("files with errors", str(error_files), bool(error_files)),
            fact("findings", f'{len(hits)}{f" <small>({split})</small>" if hits else ""}', bool(hits)),
            fact("files flagged", str(flagged_files), bool(flagged_files)),
            fact("people found", str(len(people)), bool(people)),
        ]
    )

    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>likeness-audit report</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>likeness-audit report</h1>",
        '<div class="muted">Faces and voices of registered people found in scanned media.</div>',
        _meta_html(meta),
        "<h2>Summary</h2>",
        f'<dl class="summary">{summary}</dl>',
    ]
    out += [f'<div class="note">{_e(x)}</div>' for x in _notes(meta, hits)]

    if not hits:
        out.append(
            '<div class="empty"><b>Nothing was found.</b> No registered person was found in the scanned media: '
            "no enrolled face or voice matched above its threshold."
            f"{' Some files could not be read; see the table below.' if errors else ''}</div>"
        )
    else:
        trs = []
        for pid, p in people.items():
            trs.append(
                f'<tr><td><a href="#f{p["first"]}">{_person_label(p["name"], pid)}</a></td>'
                f'<td class="num">{p["count"]}</td><td class="num">{composite_of.get(pid, 0)}</td>'
                f'<td class="num">{_num(p["best"])}</td><td class="num">{_signed(p["margin"])}</td>'
                f"<td>{_consent_badge(p['consent'])}</td></tr>"
            )
        for pid, comp in composite_of.items():
            if pid not in people:
                trs.append(
                    f'<tr><td>{_person_label(names.get(pid), pid)}</td><td class="num">0</td>'
                    f'<td class="num">{comp}</td><td class="num">—</td><td class="num">—</td>'
                    f"<td>{_consent_badge(None)}</td></tr>"
                )
        if trs:
            out.append(
                '<table class="people"><tr><th>person</th><th class="num">appearances</th>'
                '<th class="num">in composites</th><th class="num">best similarity</th>'
                '<th class="num">best margin</th><th>consent</th></tr>' + "".join(trs) + "</table>"
            )
        out.append(f"<h2>Findings ({len(hits)})</h2>")
        out.append(
            '<div class="muted small">Most severe first: matches before composites, then by how far the similarity '
            "clears the threshold.</div>"
        )
        out += [_card(n, f, crops, waveforms, refs, names) for n, f in enumerate(hits, 1)]

    if errors:
        out.append(f"<h2>Files that could not be read ({len(errors)})</h2>")
        trs = "".join(
            f'<tr><td class="mono">{_e(f.get("path", ""))}</td>'
            f'<td class="err">{_e(f.get("error") or "unknown error", multiline=True)}</td></tr>'
            for f in sorted(errors, key=lambda f: _text(f.get("path", "")))
        )
        out.append(f'<table class="errors"><tr><th>file</th><th>error</th></tr>{trs}</table>')

    out.append(
        "<footer>Similarity is the cosine similarity between the embedding of the face or voice found and the "
        "registered person's. A finding means the score cleared the threshold; the false-match rate says how often "
        "two different people clear it by chance. Each finding is a lead for human review, not proof of identity. "
        "SHA-256 hashes identify the exact files scanned.</footer>"
    )
    out.append("</body></html>")
    return "\n".join(out)
