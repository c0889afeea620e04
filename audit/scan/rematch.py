"""Retro-match: people's templates searched against the embedding archive (store/archive.py), so someone who enrols
today learns where they appeared in everything audited before, without any media being read again.

Two steps. The search (store/archive_search.py, locally or as a Ray Data job, rematch_ray.py) finds the archived
files holding a face within reach of the threshold. Each such file is then rebuilt from its archived rows (every
face of it: boxes, frame times, quality, evidence crops, embeddings) and judged by the scan's own Matcher, so its
findings are the ones a scan of it would make today, with the same evidence. Voice segments are judged the same
way (all archived files with voice, for people with a voice enrolled). Findings keep only the people asked about,
and say in extra["found"] whether the scan that archived the file had named them ("before enrolment" when not).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

import numpy as np

from ..errors import UnknownPerson
from ..evidence import Evidence
from ..findings import Finding
from ..models import quality as face_quality
from ..models.channel import is_narrow
from ..store import Store
from ..store.archive import Archive, Partition, embeddings
from ..store.archive_search import search
from .analyze import AnalyzedFile, DetectedFace, VoiceSegment
from .match import Matcher
from .options import ScanOptions
from .run import reference_crops

BEFORE = "before enrolment"  # extra["found"] of a finding the archived scan did not make (the person was not known)
BATCH = 4  # partitions per search (one FAISS scan of their codes)


@dataclass
class RematchSummary:
    """What a retro-match searched and found."""

    people: list[str] = field(default_factory=list)
    partitions: int = 0
    rows: int = 0  # archived faces searched (against the people's face templates)
    segments: int = 0  # archived voice segments judged again (every one, when a person has a voice)
    files: int = 0  # archived files judged again (those within reach of the threshold)
    findings: int = 0
    before_enrolment: int = 0
    threshold: float | None = None
    engine: str = "local"
    pruned: list[str] = field(default_factory=list)  # partitions past the retention, deleted first


def templates(store: Store, people: list[str], model: str) -> np.ndarray:
    """The face sample vectors of these people (unit float32 [n, dim])."""
    vecs = [store.person_vectors(p, "face", model) for p in people]
    vecs = [np.asarray(v, np.float32) for v in vecs if len(v)]
    return np.concatenate(vecs) if vecs else np.zeros((0, 0), np.float32)


def rematch(store: Store, people: Iterable[str] | None = None, since: date | None = None, *,
            engine: str = "local", address: str | None = None, threshold: float | None = None,
            voice_model: str = "fused") -> tuple[Evidence, RematchSummary]:
    """Search people's templates (default: everyone enrolled) against the archive; returns the evidence record of
    what was found (pictures from the archive) and a summary.

    :param since: only partitions archived on or after this day (UTC)
    :param engine: "local" (this process) or "ray" (a Ray Data job over the partitions; address: the cluster)
    :raises ArchiveDamaged: a partition cannot be read or fails its check (nothing is searched around it)
    """
    known = set(store.names())
    people = sorted(known) if people is None else list(dict.fromkeys(people))
    for p in people:
        if p not in known:
            raise UnknownPerson(f"no such person: {p}", person=p)
    started = datetime.now(timezone.utc)
    options = ScanOptions(models=store.models_dir, threads=store.threads, threshold=threshold,
                          voice_model=voice_model)
    model = store.face_model
    matcher = Matcher(store, model, options)
    archive = Archive(store.home, store.cipher)
    summary = RematchSummary(people=people, threshold=matcher.faces.threshold, engine=engine)
    summary.pruned = archive.prune()
    faces = archive.partitions("face", model.model_id, since)
    voices = archive.partitions("voice", matcher.voices.model, since) if matcher.voices.model else []
    summary.partitions = len(faces) + len(voices)
    wanted = set(people)
    q = templates(store, people, model.model_id)
    if engine == "ray":
        from .rematch_ray import candidates as ray_candidates

        hits, summary.rows = ray_candidates(faces, q, summary.threshold, store.home, store.cipher, address)
    else:
        hits, summary.rows = candidates(archive, faces, q, summary.threshold)
    if any(store.person(p).samples.get("voice") for p in people):
        hits.update({p.rel: None for p in voices})  # voice: every archived file with speech is judged again
    found: list[Finding] = []
    done: set[tuple[str, str]] = set()  # (modality, file content) judged already: the newest archived scan of a file wins
    for part in sorted(faces + voices, key=lambda p: (p.day, p.rel), reverse=True):  # newest first
        if part.rel not in hits:
            continue
        table = archive.read(part)
        if part.modality == "voice":
            summary.segments += table.num_rows
        for result, attributed, meta in rebuild(table, part, hits[part.rel]):
            if (part.modality, result.sha256) in done:
                continue
            done.add((part.modality, result.sha256))
            summary.files += 1
            for f in matcher.findings(result):
                named = {f.person} | {c.get("person") for c in f.contributors or []}
                if f.kind == "error" or not named & wanted:
                    continue
                before = not (named & wanted & attributed)
                f.extra = {**(f.extra or {}), "found": BEFORE if before else "at scan", **meta}
                found.append(f)
                summary.before_enrolment += before
    summary.findings = len(found)
    run = {"rematch": True, "started": started.isoformat(timespec="seconds"),
           "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), "complete": True,
           "files_scanned": summary.files, "files_total": summary.files, "errors": 0, "paths": [],
           "warnings": list(matcher.warnings), "people": people, "since": since.isoformat() if since else None,
           "partitions": summary.partitions, "archived_rows": summary.rows,
           "archived_segments": summary.segments, "engine": engine,
           "models": {m: mo for m, mo in store.models() if not is_narrow(mo)}}
    record = Evidence.of(found, run)
    record.references = reference_crops(store, record.findings)
    return record, summary


def candidates(archive: Archive, parts: list[Partition], q: np.ndarray,
               threshold: float) -> tuple[dict[str, set[str] | None], int]:
    """partition -> the file hashes in it within reach of the threshold, and the rows searched (this process)."""
    out: dict[str, set[str] | None] = {}
    rows = 0
    with ThreadPoolExecutor(2) as pool:  # partitions read two at a time (pyarrow releases the GIL)
        for i in range(0, len(parts), BATCH):
            batch = parts[i:i + BATCH]
            tables = list(pool.map(lambda p: _searchable(archive, p), batch))
            rows += sum(t.num_rows for t in tables)
            loaded: dict[int, dict[int, str]] = {}

            def load(i: int, local, batch=batch, loaded=loaded):  # shortlisted rows only, read from their row groups
                table = archive.read_rows(batch[i], ["sha256", "embedding"], local)
                loaded[i] = dict(zip(local.tolist(), table.column("sha256").to_pylist()))
                return table

            for hit in search(tables, q, threshold, load) if len(q) else []:
                out.setdefault(batch[hit.table].rel, set()).add(loaded[hit.table][hit.row])
    return out, rows


def _searchable(archive: Archive, part: Partition):
    """What the search reads of a partition first: its sign codes, or (written before them) its 8-bit codes."""
    table = archive.read(part, ["sign", "clipped"])
    return table if "sign" in table.column_names else archive.read(part, ["code", "clipped"])


def rebuild(table, part: Partition, shas: set[str] | None):
    """The archived files of a partition (only those with these hashes, when given) as AnalyzedFile objects, with
    the people the archived scan attributed them to and where they came from."""
    rows = table.to_pylist()
    vecs = embeddings(table)
    files: dict[str, AnalyzedFile] = {}
    people: dict[str, set[str]] = {}
    for row, vec in zip(rows, vecs):
        sha = row["sha256"]
        if shas is not None and sha not in shas:
            continue
        result = files.get(sha)
        if result is None:
            result = files[sha] = AnalyzedFile(row["path"], sha, row["media"])
            people[sha] = set()
        people[sha] |= set(row["people"] or ())
        if row["provenance"] and result.provenance is None:
            result.provenance = json.loads(row["provenance"])
        if part.modality == "face":
            quality = json.loads(row["quality"]) if row["quality"] else None
            result.faces.append(DetectedFace(row["box"], row["score"], vec, row["time"],
                                             face_quality.Quality(**quality) if quality else None, row["crop"]))
        else:
            result.voices.append(VoiceSegment(row["start"], row["end"], vec))
            if row["envelope"]:
                result.envelope = np.frombuffer(row["envelope"], "<f4").astype(np.float32)
                result.duration = row["duration"]
    meta = {"archived_scan": rows[0]["scan"] if rows else None, "scanned": rows[0]["scanned"] if rows else None,
            "archive_partition": part.rel}
    for sha, result in files.items():
        yield result, people[sha], meta


def found_before(store: Store, person: str) -> Evidence | None:
    """What retro-match finds of one person who just enrolled (None when nothing is archived: no work at all)."""
    if not Archive(store.home, store.cipher).partitions():
        return None
    return rematch(store, [person])[0]



def announce(home, record: Evidence, scan: str | None = None, owner: str | None = None,
             deliver: bool = False) -> int:
    """Hand retro-match findings to the webhooks (audit/notify, source "rematch"): never raises, never blocks;
    returns the deliveries queued (deliver=False only queues, for a short-lived process)."""
    from .. import notify

    return notify.findings_found(home, record.findings, source="rematch", scan=scan, owner=owner, deliver=deliver)
