"""Templates in and out of a store as Parquet (person, name, modality, model, vector), for migration between systems.

An import is checked whole before anything is written: a wrong modality, model or dimension, and a non-finite or
zero vector or one that float32 cannot normalise (entries near 1e38) refuse the file with the row number. Rows
already in the store (same person, model and vector) are skipped, so an interrupted import can simply be run again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError, TemplateError
from . import naming
from .registry import Sample

if TYPE_CHECKING:
    from .registry import Registry

COLUMNS = ("person", "name", "modality", "model", "vector")
BATCH_ROWS = 20_000  # rows read and people written per batch


def _schema():
    import pyarrow as pa

    return pa.schema([("person", pa.string()), ("name", pa.string()), ("modality", pa.string()),
                      ("model", pa.string()), ("vector", pa.list_(pa.float32()))])


def export_templates(registry: Registry, path: str | os.PathLike, modality: str | None = None) -> int:
    """Write every template (of one modality, or all) to a Parquet file (mode 600); returns the rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    names = registry.names()
    tmp = path.with_name(path.name + ".part")
    rows = 0
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # templates are biometric data
    os.close(fd)
    try:
        with pq.ParquetWriter(tmp, _schema()) as writer:
            for mod, model in registry.models():
                if modality and mod != modality:
                    continue
                for _, vecs, people in registry.iter_rows("samples", mod, model):
                    writer.write_table(pa.table({
                        "person": people, "name": [names.get(p, p) for p in people], "modality": [mod] * len(people),
                        "model": [model] * len(people),
                        "vector": pa.array(list(vecs.astype(np.float32)), type=pa.list_(pa.float32()))},
                        schema=_schema()))
                    rows += len(people)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return rows


def _batches(path: Path) -> Iterator[tuple[int, dict]]:
    """(number of the batch's first row, 1-based; columns as Python lists) per batch of the file."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (OSError, ValueError) as exc:
        raise TemplateError(f"{path.name} is not a readable Parquet file: {exc}") from exc
    missing = [c for c in COLUMNS if c not in pf.schema_arrow.names]
    if missing:
        raise TemplateError(f"{path.name} lacks the column(s) {', '.join(missing)} (need {', '.join(COLUMNS)})")
    first = 1
    for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=list(COLUMNS), use_threads=False):
        cols = batch.to_pydict()
        yield first, cols
        first += batch.num_rows


def check_row(row: int, person, modality, model, vector, models: dict[str, dict[str, int]],
              name: str | None = None) -> np.ndarray:
    """The row's unit vector, or TemplateError naming the row and what is wrong with it."""
    if not isinstance(person, str) or not person.strip():
        raise TemplateError(f"row {row}: no person id")
    try:  # the rules every enrolment follows (naming.py)
        naming.check_id(person)
        naming.check_name(name or None)
    except InputError as exc:
        raise TemplateError(f"row {row}: {exc}") from exc
    if modality not in models:
        raise TemplateError(f"row {row}: modality {modality!r} is not one of {', '.join(sorted(models))}")
    if model not in models[modality]:
        known = ", ".join(repr(m[:16]) for m in models[modality])
        raise TemplateError(f"row {row}: model {str(model)[:16]!r} is not this store's {modality} model "
                           f"({known}); templates of another model cannot be compared")
    dim = models[modality][model]
    vec = np.asarray(vector if vector is not None else [], np.float32)
    if vec.shape != (dim,):
        raise TemplateError(f"row {row}: vector of dimension {vec.size}, the {modality} model's is {dim}")
    if not np.isfinite(vec).all():
        raise TemplateError(f"row {row}: vector holds NaN or infinity")
    with np.errstate(over="ignore", under="ignore"):
        norm = np.linalg.norm(vec)  # in float32, as the store computes: finite entries of 1e38 overflow it
    if not np.isfinite(norm):
        raise TemplateError(f"row {row}: vector cannot be normalised in float32 (its length overflows)")
    if norm < 1e-6:
        raise TemplateError(f"row {row}: zero vector")
    with np.errstate(under="ignore"):
        unit = vec if abs(float(norm) - 1) < 1e-4 else vec / norm  # unit templates keep their exact bytes
    if not np.isfinite(unit).all() or abs(float(np.linalg.norm(unit)) - 1) > 1e-3:
        raise TemplateError(f"row {row}: vector cannot be normalised in float32")
    return unit


def accepted(face_model) -> dict[str, dict[str, int]]:
    """modality -> {model id: dimension} an import takes: the store's face model, every shipped voice encoder (a
    fused enrolment writes both) and their band-limited twins (enroll/narrowband.py)."""
    from ..models.channel import narrow_id
    from ..models.voice import voice_encoder

    voices = {}
    for name in ("ge2e", "campplus"):
        enc = voice_encoder(name)
        voices.update({enc.model_id: enc.dim, narrow_id(enc.model_id): enc.dim})
    return {"face": {face_model.model_id: face_model.dim}, "voice": voices}


def import_templates(registry: Registry, add_people: Callable[[list], object], path: str | os.PathLike,
                     models: dict[str, dict[str, int]]) -> tuple[int, int]:
    """Import a Parquet file of templates; models: modality -> {model id: dimension} this store accepts.

    add_people: the store's write of a batch of people (Store.add_people).

    Returns (rows added, rows already there). Checks every row before writing any.
    """
    path = Path(path)
    if not path.is_file():
        raise TemplateError(f"no file {path}")
    for first, cols in _batches(path):  # first pass: refuse a bad file before anything is written
        for i, row in enumerate(zip(*(cols[c] for c in COLUMNS[:1] + COLUMNS[2:]))):
            check_row(first + i, *row, models, name=cols["name"][i])
    added = already = 0
    for first, cols in _batches(path):
        people: dict[str, tuple[str | None, list[Sample]]] = {}
        for i in range(len(cols["person"])):
            pid, modality, model = cols["person"][i], cols["modality"][i], cols["model"][i]
            vec = check_row(first + i, pid, modality, model, cols["vector"][i], models, cols["name"][i])
            sha = hashlib.sha256(b"template|" + vec.tobytes()).hexdigest()
            if registry.has_source(pid, modality, model, sha):
                already += 1
                continue
            name, samples = people.setdefault(pid, (cols["name"][i], []))
            if sha not in {s.source_sha256 for s in samples}:
                samples.append(Sample(modality, model, sha, vec))
        if people:
            add_people([(pid, name, samples, None) for pid, (name, samples) in people.items()])
            added += sum(len(s) for _, s in people.values())
    return added, already
