"""Findings -> one self-contained HTML page (inline CSS, images as data URIs, no script, no fetch)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from html import escape
from typing import Any

import numpy as np

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
SEVERITY = {"match": 0, "composite": 1}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;color:#1d1d1f}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta,.small{color:#555;font-size:12px}.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;
word-break:break-all}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;
vertical-align:top}th{background:#f4f4f6}
.card{border:1px solid #ccc;border-radius:8px;padding:12px;margin:12px 0;display:flex;gap:16px}
.card.composite{border-color:#b36b00}.pics{display:flex;gap:8px;flex:none}
.pics figure{margin:0;text-align:center;font-size:11px;color:#555}.pics img{width:160px;height:160px;
object-fit:cover;border-radius:4px;background:#eee;display:block}.pics img.wave{width:360px;height:80px}
.none{width:160px;height:160px;background:#f0f0f0;display:flex;align-items:center;justify-content:center;
color:#888;border-radius:4px;font-size:12px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;color:#fff}
.allowed{background:#2e7d32}.denied,.expired{background:#c62828}.unknown,.none-asked{background:#757575}
.score{font-size:18px;font-weight:600}dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:6px 0}
dt{color:#555}dd{margin:0}
"""


def data_uri(data: bytes | None, mime: str = "image/jpeg") -> str | None:
    """A data: URI for image bytes."""
    return f"data:{mime};base64,{base64.b64encode(data).decode()}" if data else None


def crop_jpeg(image: np.ndarray, bbox: list[int], margin: float = 0.25, size: int = 160) -> bytes:
    """A square JPEG crop around a box, with a margin, clamped to the image."""
    import cv2

    x1, y1, x2, y2 = bbox
    side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    h, w = image.shape[:2]
    a, b = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    c, d = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
    crop = image[b:d, a:c]
    if crop.size == 0:
        crop = image
    crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()


def waveform_png(samples: np.ndarray, sr: int, start: float, end: float, width: int = 360, height: int = 80) -> bytes:
    """A waveform picture of the whole recording with the flagged span shaded."""
    import cv2

    img = np.full((height, width, 3), 255, np.uint8)
    n = len(samples)
    if n:
        dur = n / sr
        a, b = int(start / dur * width), int(end / dur * width)
        img[:, max(0, a):min(width, max(b, a + 1))] = (200, 225, 255)
        cols = np.array_split(np.abs(samples), width)
        peak = max(float(np.abs(samples).max()), 1e-9)
        for x, col in enumerate(cols):
            v = float(col.max()) / peak if len(col) else 0.0
            h = int(v * (height / 2 - 2))
            cv2.line(img, (x, height // 2 - h), (x, height // 2 + h), (60, 60, 60), 1)
    return cv2.imencode(".png", img)[1].tobytes()


def fmt_time(t: float | None) -> str:
    """Seconds as h:mm:ss.s."""
    if t is None:
        return ""
    h, rest = divmod(float(t), 3600)
    m, s = divmod(rest, 60)
    return f"{int(h)}:{int(m):02d}:{s:04.1f}"


def fmr_words(fmr: float | None) -> str:
    """'1 in 556' style wording for a false-match rate."""
    if not fmr:
        return "no stated rate (threshold set by hand)"
    return f"about 1 in {round(1 / fmr):,} per comparison"


def _img(uri: str | None, caption: str, cls: str = "") -> str:
    pic = f'<img class="{cls}" src="{uri}" alt="">' if uri else '<div class="none">no picture</div>'
    return f"<figure>{pic}<figcaption>{escape(caption)}</figcaption></figure>"


def _t(value: Any) -> str:
    return escape("" if value is None else str(value))


def _severity(f: dict) -> tuple:
    margin = (f.get("similarity") or 0) - (f.get("threshold") or 0)
    return (SEVERITY.get(f.get("kind"), 2), -margin)


def render_html(
    findings: list[dict],
    *,
    crops: Callable[[dict], bytes | None] | None = None,
    references: Callable[[str], bytes | None] | None = None,
    waveforms: Callable[[dict], bytes | None] | None = None,
    meta: dict | None = None,
) -> str:
    """The report page for findings (dicts as Finding.to_dict() gives, or as loaded back from JSON)."""
    meta = meta or {}
    crops = crops or (lambda f: None)
    references = references or (lambda p: None)
    waveforms = waveforms or (lambda f: None)
    hits = sorted((f for f in findings if f.get("kind") != "error"), key=_severity)
    errors = [f for f in findings if f.get("kind") == "error"]
    out = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        "<title>likeness-audit report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>likeness-audit report</h1>",
        f'<div class="meta">{_t(meta.get("created"))} · likeness-audit {_t(meta.get("version"))}'
        f'{" · use: " + _t(meta["use"]) if meta.get("use") else ""}</div>',
        _summary(hits, errors, meta),
    ]
    if hits:
        out.append("<h2>Findings, most severe first</h2>")
        out += [_card(f, crops, references, waveforms) for f in hits]
    if errors:
        out.append(f"<h2>Files that could not be read ({len(errors)})</h2><table><tr><th>file</th><th>error</th></tr>")
        out += [f'<tr><td class="mono">{_t(e.get("path"))}</td><td>{_t(e.get("error"))}</td></tr>' for e in errors]
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out)


def _summary(hits: list[dict], errors: list[dict], meta: dict) -> str:
    people: dict[str, dict] = {}
    for f in hits:
        p = people.setdefault(f.get("person") or "", {"name": f.get("name"), "n": 0, "best": 0.0, "kinds": set()})
        p["n"] += 1
        p["best"] = max(p["best"], f.get("similarity") or 0.0)
        p["kinds"].add(f"{f.get('modality')} {f.get('kind')}")
        for c in f.get("contributors") or []:
            q = people.setdefault(c["person"], {"name": None, "n": 0, "best": 0.0, "kinds": set()})
            q["kinds"].add("composite contributor")
    files = meta.get("files_scanned")
    rows = [
        f"<dl><dt>files scanned</dt><dd>{_t(files if files is not None else 'unknown')}</dd>",
        f"<dt>files with errors</dt><dd>{len(errors)}</dd><dt>findings</dt><dd>{len(hits)}</dd>",
    ]
    notes = list(meta.get("notes", []))
    if any(f.get("threshold_source") == "default" for f in hits):
        notes.append("thresholds are the documented defaults (see README, Thresholds), not calibrated on this gallery")
    for note in notes:
        rows.append(f"<dt>note</dt><dd>{_t(note)}</dd>")
    rows.append("</dl>")
    if not hits:
        rows.append("<p><b>No registered person was found in the scanned media.</b></p>")
        return "<h2>Summary</h2>" + "".join(rows)
    rows.append("<table><tr><th>person</th><th>findings</th><th>best similarity</th><th>as</th></tr>")
    order = sorted(people.items(), key=lambda kv: (-kv[1]["best"], kv[0]))
    for pid, p in order:
        rows.append(f"<tr><td>{_t(p['name'] or pid)} <span class=small>({_t(pid)})</span></td><td>{p['n']}</td>"
                    f"<td>{p['best']:.3f}</td><td>{_t(', '.join(sorted(p['kinds'])))}</td></tr>")
    rows.append("</table>")
    return "<h2>Summary</h2>" + "".join(rows)


def _card(f: dict, crops, references, waveforms) -> str:
    kind, modality = f.get("kind"), f.get("modality")
    pics = []
    if modality == "voice":
        pics.append(_img(data_uri(waveforms(f), "image/png"), "flagged span (shaded)", "wave"))
    else:
        pics.append(_img(data_uri(crops(f)), "in the scanned file"))
    if kind == "composite":
        for c in f.get("contributors") or []:
            pics.append(_img(data_uri(references(c["person"])), f"{c['person']} · weight {c.get('weight', 0):.2f}"))
    elif modality == "face":
        pics.append(_img(data_uri(references(f.get("person") or "")), "enrolled reference"))
    sim, thr = f.get("similarity"), f.get("threshold")
    margin = f" ({sim - thr:+.3f})" if sim is not None and thr is not None else ""
    consent = f.get("consent")
    badge = (f'<span class="badge {escape(consent)}">{escape(consent)}</span>' if consent
             else '<span class="badge none-asked">no use given</span>')
    title = (f"Composite of {len(f.get('contributors') or [])} registered people" if kind == "composite"
             else f"{_t(f.get('name') or f.get('person'))} <span class=small>({_t(f.get('person'))})</span>")
    rows = [
        f"<dt>similarity</dt><dd><span class=score>{_t(sim)}</span> vs threshold {_t(thr)}{margin}</dd>",
        f"<dt>false-match rate</dt><dd>{escape(fmr_words(f.get('fmr')))} · {_t(f.get('threshold_source'))}</dd>",
        f"<dt>consent</dt><dd>{badge}</dd>",
        f'<dt>file</dt><dd class="mono">{_t(f.get("path"))}</dd>',
        f'<dt>SHA-256</dt><dd class="mono">{_t(f.get("sha256"))}</dd>',
    ]
    if f.get("start") is not None:
        span = fmt_time(f["start"]) + ("" if f.get("end") in (None, f["start"]) else " – " + fmt_time(f["end"]))
        frames = f" · {f['frames']} {'segments' if modality == 'voice' else 'sampled frames'}" if f.get("frames") else ""
        rows.append(f"<dt>time</dt><dd>{escape(span)}{escape(frames)}</dd>")
    if f.get("bbox"):
        rows.append(f"<dt>face box</dt><dd>{_t(f['bbox'])}</dd>")
    for c in f.get("contributors") or []:
        rows.append(f"<dt>contributor</dt><dd>{_t(c.get('person'))}: similarity {_t(c.get('similarity'))}, "
                    f"weight {_t(c.get('weight'))}</dd>")
    rows.append(f'<dt>model · index</dt><dd class="mono">{_t(f.get("model"))} · {_t(f.get("index"))}</dd>')
    return (f'<div class="card {escape(kind or "")}"><div class="pics">{"".join(pics)}</div><div>'
            f"<div><b>{escape(modality or '')} {escape(kind or '')}</b>: {title}</div><dl>{''.join(rows)}</dl>"
            "</div></div>")
