"""Self-contained offline HTML report of a scan's findings, rendered from Jinja2 templates (strict CSP, no script)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from ..evidence import PICTURES, RUN, Evidence
from ..findings import finding_id
from .filters import FILTERS, finalize, fmr_words, text, to_float
from .grouping import CARDS_PER_PERSON, Section, sections
from .pictures import References, figure, picture, reference_caption, scene_caption
from .provenance import words as provenance_words
from .quality import words as quality_words
from .reviews import reviewable
from .reviews import words as review_words

__all__ = ["CSP", "render_html", "render_record"]

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_KIND_RANK = {"match": 0, "composite": 1}

# finalize makes every printed value visible text and escapes it, so no template can forget to.
_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(("html", "j2"), default=True),
    undefined=StrictUndefined,
    finalize=finalize,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=False,
)
_ENV.filters.update(FILTERS)

# meta keys, with the aliases the CLI uses: (label, keys tried in order)
_META_FIELDS = [
    ("Tool version", ("tool_version", "version")),
    ("Scan time", ("scan_time", "created")),
    ("Scope (--use)", ("scope", "use")),
    ("Models", ("models", "model")),
    ("Index versions", ("indexes", "index_versions", "index")),
]
_META_SUMMARY = {"files_scanned", "errors", "unread", "threshold_notes", "notes", "title"}
_DEFAULT_NOTE = (
    "Some thresholds are the documented defaults, not calibrated on this gallery: the stated false-match rates "
    "were measured on the project's reference data (docs/thresholds.md), not on this gallery."
)


def _key(pid: Any) -> str | None:
    """A person id as printable text; None when missing."""
    return None if pid is None or pid == "" else pid if isinstance(pid, str) else text(pid)


def _margin(f: dict[str, Any]) -> float | None:
    """similarity - threshold, when both are numbers."""
    s, t = to_float(f.get("similarity")), to_float(f.get("threshold"))
    return None if s is None or t is None else s - t


def _sort_key(f: dict[str, Any]) -> tuple[Any, ...]:
    """Most severe first: matches before composites, then by margin descending; ties broken stably."""
    m = _margin(f)
    start = to_float(f.get("start"))
    return (
        _KIND_RANK.get(f.get("kind"), 2),
        m is None,
        -(m if m is not None else 0.0),
        text(f.get("path", "")),
        start if start is not None else -1.0,
        text(f.get("person") or ""),
    )


def _matched(frames: Any, voice: bool) -> str | None:
    """'12 sampled frames' / '1 voiced segment'; a damaged count is shown as it came."""
    if frames is None:
        return None
    fr = to_float(frames)
    unit = ("voiced segment" if voice else "sampled frame") + ("" if fr == 1 else "s")
    shown = f"{int(fr):,}" if fr is not None and fr.is_integer() else text(frames)
    return f"{shown} {unit}"


SAMPLE_KEYS = ("sample", "sample_sha256", "sample_enrolled")  # shown as "Enrolled sample", not under Details


def _sample(f: dict[str, Any], samples: Callable | None) -> dict[str, Any] | None:
    """The enrolled sample that matched: id, file SHA-256, enrolment time (from the finding, else the store), and
    which sample the person's reference crop shows now; None when the finding names no sample."""
    extra = f.get("extra") if isinstance(f.get("extra"), dict) else {}
    vid = extra.get("sample")
    if isinstance(vid, bool) or not isinstance(vid, (int, np.integer)):
        return None
    info: dict[str, Any] = {}
    if samples is not None:
        try:
            info = samples(int(vid)) or {}
        except Exception:  # noqa: BLE001 - a store problem must not lose the report; the finding still names it
            info = {}
        if info.get("person") not in (None, f.get("person")):
            info = {}  # not this person's sample (ids are never reused, so a damaged finding): say nothing from it
    return {"id": int(vid), "sha256": extra.get("sample_sha256") or info.get("source_sha256"),
            "enrolled": extra.get("sample_enrolled") or info.get("enrolled"),
            "reference": info.get("reference_sample"), "known": bool(info)}


def _card(n: int, f: dict[str, Any], crops: Callable | None, waveforms: Callable | None, refs: References,
          names: dict[str, str], samples: Callable | None = None, scenes: Callable | None = None) -> dict[str, Any]:
    """What one finding card shows, ready for card.html.j2."""
    kind, modality = text(f.get("kind") or ""), text(f.get("modality") or "")
    pid, name = f.get("person"), f.get("name")
    voice = modality == "voice"
    anonymous = kind == "composite" and not (name or pid)

    if voice:
        uri, problem = picture(waveforms, f)
        pics = [figure(uri, "flagged span (shaded)", None, problem, wave=True)]
    else:
        uri, problem = picture(crops, f)
        pics = [figure(uri, "the face found", None, problem)]
        suri, sproblem = picture(scenes, f)
        if suri or sproblem:
            pics.append(figure(suri, scene_caption(f), None, sproblem, scene=True))
    sample = _sample(f, samples)
    if pid or kind != "composite":
        ruri, rproblem = refs.get(_key(pid))
        pics.append(figure(ruri, reference_caption(sample, voice) if ruri else "enrolled reference",
                            "no reference kept", rproblem))

    contributors = f.get("contributors")
    people = None
    if kind == "composite" or contributors:
        people = []
        for c in contributors or []:
            if isinstance(c, dict):
                cp = c.get("person")
                people.append({"uri": refs.get(_key(cp))[0], "person": cp,
                               "name": c.get("name") or (names.get(cp) if isinstance(cp, str) else None),
                               "similarity": c.get("similarity"), "weight": c.get("weight")})
    if anonymous:
        k = len(people or [])
        title = f"Composite of {k} registered {'person' if k == 1 else 'people'}"
    else:
        title = name or pid or "unknown person"
    source = f.get("threshold_source")
    return {
        "n": n, "kind": kind, "title": title, "pics": pics, "show_person": not anonymous, "name": name, "pid": pid,
        "what": "voice" if voice else "face" if modality == "face" else modality or "unknown modality",
        "sim": to_float(f.get("similarity")), "thr": to_float(f.get("threshold")), "margin": _margin(f),
        "fmr": fmr_words(f.get("fmr")), "threshold_source": source,
        "default_threshold": text(source or "").strip().lower() == "default",
        "consent": f.get("consent"), "path": f.get("path", ""), "sha256": f.get("sha256"),
        "start": to_float(f.get("start")), "end": to_float(f.get("end")),
        "matched": _matched(f.get("frames"), voice), "bbox": f.get("bbox"),
        "model": f.get("model"), "index": f.get("index"), "contributors": people, "sample": sample,
        "extra": {k: v for k, v in f["extra"].items() if k not in SAMPLE_KEYS and k not in ("provenance", "quality")}
        if isinstance(f.get("extra"), dict) else f.get("extra"),
        "provenance": provenance_words(f["extra"].get("provenance")) if isinstance(f.get("extra"), dict) else None,
        "quality": quality_words(f["extra"].get("quality")) if isinstance(f.get("extra"), dict) else None,
        "review": review_words(f.get("review")),
    }


def _meta_rows(meta: dict[str, Any]) -> list[tuple[str, Any]]:
    """Scan details from meta, known keys first, then any others: dicts kept, lists comma-joined."""
    picked: list[tuple[str, Any]] = []
    used = set(_META_SUMMARY)
    for label, keys in _META_FIELDS:
        used.update(keys)
        key = next((k for k in keys if meta.get(k) not in (None, "", {}, [])), None)
        if key is not None:
            picked.append((label, meta[key]))
    picked += [(text(k).replace("_", " "), v) for k, v in meta.items() if k not in used and v not in (None, "", {}, [])]
    return [(label, ", ".join(text(x) for x in v) if isinstance(v, (list, tuple)) else v) for label, v in picked]


def _notes(meta: dict[str, Any], hits: list[dict[str, Any]]) -> list[str]:
    """Threshold notes from meta, plus one when any finding used an uncalibrated default threshold."""
    notes: list[str] = []
    for key in ("threshold_notes", "notes"):
        v = meta.get(key)
        if isinstance(v, str):
            notes.append(v)
        elif isinstance(v, dict):
            notes += [f"{text(k)}: {text(x)}" for k, x in v.items()]
        elif isinstance(v, (list, tuple)):
            notes += [text(x) for x in v if x]
    if any(text(f.get("threshold_source") or "").strip().lower() == "default" for f in hits):
        notes.append(_DEFAULT_NOTE)
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


def _people(hits: list[dict[str, Any]], names: dict[str, str]) -> list[dict[str, Any]]:
    """One row per person, in order of their most severe finding, then people seen only inside composites."""
    people: dict[str, dict[str, Any]] = {}
    for n, f in enumerate(hits, 1):
        key = _key(f.get("person"))
        if key is None:
            continue
        p = people.setdefault(key, {"pid": key, "name": f.get("name"), "count": 0, "best": None,
                                    "margin": None, "first": n, "consent": None, "composites": 0})
        p["count"] += 1
        s, m = to_float(f.get("similarity")), _margin(f)
        if s is not None and (p["best"] is None or s > p["best"]):
            p["best"] = s
        if m is not None and (p["margin"] is None or m > p["margin"]):
            p["margin"] = m
        if p["consent"] is None and f.get("consent"):
            p["consent"] = f.get("consent")
        if not p["name"] and f.get("name"):
            p["name"] = f.get("name")
    others: dict[str, dict[str, Any]] = {}
    for f in hits:
        if f.get("kind") != "composite":
            continue
        for c in f.get("contributors") or []:
            if isinstance(c, dict) and c.get("person"):
                k = text(c["person"])
                row = people.get(k) or others.setdefault(
                    k, {"pid": k, "name": names.get(k), "count": 0, "best": None, "margin": None, "first": None,
                        "consent": None, "composites": 0})
                row["composites"] += 1
    return [*people.values(), *others.values()]


def _facts(meta: dict[str, Any], hits: list[dict], errors: list[dict], n_people: int) -> list[dict[str, Any]]:
    """The summary figures at the top of the page."""
    scanned_raw = meta.get("files_scanned")
    scanned = _count(scanned_raw)
    scanned_text = f"{scanned:,}" if scanned is not None else scanned_raw if scanned_raw else "not recorded"
    error_files = _count(meta.get("errors"))
    if error_files is None:
        error_files = len({text(f.get("path", "")) for f in errors})
    flagged = len({text(f.get("path", "")) for f in hits})
    n_match = sum(1 for f in hits if f.get("kind") == "match")
    n_comp = sum(1 for f in hits if f.get("kind") == "composite")
    split = f"{n_match} match{'es' if n_match != 1 else ''}, {n_comp} composite{'s' if n_comp != 1 else ''}"
    if len(hits) > n_match + n_comp:
        split += f", {len(hits) - n_match - n_comp} other"

    def fact(label: str, value: Any, alert: bool = False, small: str | None = None) -> dict[str, Any]:
        """One summary figure."""
        return {"label": label, "value": value, "alert": alert, "small": small}

    return [
        fact("files scanned", scanned_text),
        fact("files with errors", error_files, bool(error_files)),
        fact("findings", len(hits), bool(hits), split if hits else None),
        fact("files flagged", flagged, bool(flagged)),
        fact("people found", n_people, bool(n_people)),
    ]


def render_html(
    findings: list[dict],
    *,
    crops: Callable[[dict], bytes | None] | None = None,
    references: Callable[[str], bytes | None] | None = None,
    waveforms: Callable[[dict], bytes | None] | None = None,
    scenes: Callable[[dict], bytes | None] | None = None,
    meta: dict | None = None,
    samples: Callable[[int], dict | None] | None = None,
    banner: str | None = None,
) -> str:
    """One self-contained HTML page (no script, no external fetch) reporting findings, most severe first.

    banner: a warning shown above everything else (an interrupted scan says so there).

    scenes: finding -> the whole image or frame, reduced, with the face boxed (JPEG), shown beside the crop.

    samples: enrolled sample id -> its provenance (Store.sample_info as a dict), to say which crop is which.
    """
    meta = meta if isinstance(meta, dict) else {}
    rows = [f for f in (findings or []) if isinstance(f, dict)]
    errors = [f for f in rows if f.get("kind") == "error"]
    hits = sorted((f for f in rows if f.get("kind") != "error"), key=_sort_key)
    names: dict[str, str] = {}
    for f in hits:
        pid, name = f.get("person"), f.get("name")
        if isinstance(pid, str) and name and pid not in names:
            names[pid] = name
    people = _people(hits, names)
    facts = _facts(meta, hits, errors, sum(1 for p in people if p["first"]))
    scanned, unread = _count(meta.get("files_scanned")), _count(meta.get("unread"))
    # no file scanned could be read at all: the page must not read as a clean result (nothing was looked at)
    unread = scanned if not hits and scanned and unread is not None and unread >= scanned else None
    refs = References(references)
    groups = _sections(sections(hits), crops, waveforms, refs, names, samples, scenes)
    where = {g["pid"]: g["id"] for g in groups if g["pid"] is not None}
    for p in people:
        p["section"] = where.get(p["pid"])
    return _ENV.get_template("report.html.j2").render(
        csp=CSP,
        banner=banner,
        meta_rows=_meta_rows(meta),
        facts=facts,
        unread=unread,
        notes=_notes(meta, hits),
        people=people,
        sections=groups,
        total=len(hits),
        errors=[(f.get("path", ""), f.get("error") or "unknown error")
                for f in sorted(errors, key=lambda f: text(f.get("path", "")))],
    )


def _sections(groups: list[Section], crops: Callable | None, waveforms: Callable | None, refs: References,
              names: dict[str, str], samples: Callable | None = None,
              scenes: Callable | None = None) -> list[dict[str, Any]]:
    """Sections for the page: the first entries of each as cards with pictures, the rest as table rows, so a
    report of many thousand findings decodes and embeds only a bounded number of pictures."""
    out, n = [], 0
    for i, g in enumerate(groups, 1):
        cards = []
        for e in g.entries[:CARDS_PER_PERSON]:
            n += 1
            card = _card(n, e.finding, crops, waveforms, refs, names, samples, scenes)
            card["copies"] = e.paths[1:]
            cards.append(card)
        rows = [{"path": e.paths[0], "copies": len(e.paths) - 1, "sim": to_float(e.finding.get("similarity")),
                 "margin": _margin(e.finding), "start": to_float(e.finding.get("start")),
                 "end": to_float(e.finding.get("end")), "consent": e.finding.get("consent"),
                 "kind": text(e.finding.get("kind") or ""),
                 "review": (e.finding.get("review") or {}).get("state", "open") if "review" in e.finding else None}
                for e in g.entries[CARDS_PER_PERSON:]]
        people = g.key.split(":", 1)[1].split("+") if g.pid is None else []
        title = g.name or g.pid or f"Composite of {' + '.join(names.get(p, p) for p in people if p) or 'unknown people'}"
        out.append({"id": f"s{i}", "pid": g.pid, "title": title, "findings": g.findings, "files": g.files,
                    "cards": cards, "rows": rows, "open": i <= 3})
    return out


def render_record(evidence: Evidence) -> str:
    """The page for an evidence record, from the record alone: its pictures, its references, its run."""
    rows = evidence.findings
    if evidence.reviews is not None:  # each card says what was decided (reviews.words); "open" when nothing yet
        rows = [{**r, "review": evidence.reviews.get(finding_id(r), {})} if reviewable(r) else r for r in rows]
    pics = {id(row): p for row, p in zip(rows, evidence.pictures) if p}
    refs = evidence.references
    owner = {int(v): r.get("person") for r in rows
             if isinstance(v := (r.get("extra") or {}).get("sample"), int) and not isinstance(v, bool)}

    def sample(vid: int) -> dict | None:
        person = owner.get(vid)
        return {"person": person, "reference_sample": refs[person].sample} if person in refs else None

    run, status = evidence.run, None
    if run and not evidence.complete:
        status = (f"Incomplete: {evidence.counts()}. The scan was stopped before its last file; the files not "
                  "scanned were not checked.")
    return render_html(
        rows,
        crops=lambda f: getattr(pics.get(id(f)), "crop", None),
        waveforms=lambda f: getattr(pics.get(id(f)), "waveform", None),
        scenes=lambda f: getattr(pics.get(id(f)), "scene", None),
        references=lambda person: refs[person].crop if person in refs else None,
        samples=sample, meta=run_header(evidence), banner=status)


def run_header(evidence: Evidence) -> dict[str, Any]:
    """The page's header from the run's own metadata, in words, in reading order."""
    run = evidence.run
    out: dict[str, Any] = {}
    if RUN in evidence.missing:
        out = {k: v for k, v in run.items() if k not in ("notes", "complete")}  # an older output: what it has
    else:
        done = [f"{run[k]} {w}" for k, w in (("duplicates", "identical to another"), ("cached", "from the scan "
                "cache")) if run.get(k)]
        out = {"Scan started": run.get("started"), "Scan finished": run.get("finished") or "not finished",
               "Files": evidence.counts() + (f" ({', '.join(done)})" if done else ""),
               "Tool": f"likeness-audit {run.get('version')}", "Paths": run.get("paths"),
               "Use (consent checked for)": run.get("use"),
               "Options": run.get("options") or "defaults", "Models": run.get("models"),
               "Index versions": run.get("indexes"), "Gallery (people enrolled)": run.get("gallery"),
               # the summary figure: the count when complete, "96 of 200" when not
               "files_scanned": run.get("files_scanned") if evidence.complete else
               f"{run.get('files_scanned')} of {run.get('files_total') if run.get('files_total') is not None else '?'}",
               "errors": run.get("errors"), "unread": run.get("unread")}
        if run.get("ai_declared") is not None:  # files whose own credentials say a generative model made them
            out["Files declaring themselves AI-generated"] = run["ai_declared"]
    notes = list(run.get("notes") or [])
    if PICTURES in evidence.missing:
        notes.append(f"Pictures are missing from this report: {evidence.missing[PICTURES]}.")
    if RUN in evidence.missing:
        notes.append(f"The run's own metadata is missing ({evidence.missing[RUN]}): the times and counts above are "
                     "what the file holds, not what the scan recorded.")
    out["notes"] = notes + list(run.get("warnings") or [])
    return out
