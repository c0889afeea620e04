"""Enrolment floors: the high end of impostor scores, below which a new sample is as likely a stranger as the person.

Usage: python benchmarks/enrol_floor.py [--data ../shared/data] [--models ge2e,campplus] [--workers 2]

Enrolment hygiene (audit/enroll/enroll.py, check_agreement) refuses a sample that scores, against the person's own
samples, below what strangers reach against each other at a stated rate: the 99th percentile of impostor scores
(FLOOR_RATE: a stranger's sample clears it 1 time in 100), far below what genuine pairs score, even hard ones.
  faces   every pair of labelled deepface photos of two different people (ArcFace cosine, as the index scores)
  voices  every pair of clean recordings of two different speakers: the 10 LibriSpeech test-other speakers' 100
          utterances and the 251 train-clean speakers' one each (whole-recording embed_utterance cosine, as
          enrolment stores them)
Genuine pairs (same person) are printed beside them, to show how few genuine pairs the floor refuses.
"""

from __future__ import annotations

import argparse
import csv
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FLOOR_RATE = 0.99  # the impostor percentile a sample must reach against its own person

_encoders: dict = {}


def face_vectors(folder: Path) -> tuple[np.ndarray, list[str]]:
    """([photos, dim] embeddings of the largest face, person labels) of the labelled deepface photos."""
    from audit.media import decode_image
    from audit.models.face import FaceModel

    model = FaceModel()
    vecs, people = [], []
    with open(folder / "identities.csv") as f:
        for row in csv.DictReader(f):
            faces = model.analyze(decode_image((folder / row["file"]).read_bytes()))
            if faces:
                vecs.append(max(faces, key=lambda x: x.size).embedding)
                people.append(row["person"])
    return np.stack(vecs), people


def _embed(job: tuple[str, str]) -> np.ndarray:
    """One whole recording, embedded as `enroll voice` does."""
    from audit.media.audio import load_audio
    from audit.models.voice import voice_encoder

    path, model = job
    if model not in _encoders:
        _encoders[model] = voice_encoder(model)
    return _encoders[model].embed_utterance(load_audio(path))


def voice_vectors(folder: Path, model: str, workers: int) -> tuple[np.ndarray, list[str]]:
    """([recordings, dim] embeddings, speaker labels) of every shared LibriSpeech recording."""
    files = sorted((folder / "librispeech-test-other").glob("*/*.flac"))
    labels = [p.parent.name for p in files]
    train = sorted((folder / "librispeech-train-clean").glob("*.flac"))
    files += train
    labels += [p.name.split("-")[0] for p in train]
    jobs = [(str(p), model) for p in files]
    if workers > 1:
        import multiprocessing

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            vecs = list(pool.map(_embed, jobs, chunksize=8))
    else:
        vecs = [_embed(j) for j in jobs]
    return np.stack(vecs), labels


def pairs(vecs: np.ndarray, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(genuine, impostor) cosines over every unordered pair."""
    sims = vecs @ vecs.T
    same = np.equal.outer(np.array(labels), np.array(labels))
    upper = np.triu(np.ones_like(same), 1)
    return sims[same & upper], sims[~same & upper]


def show(name: str, genuine: np.ndarray, impostor: np.ndarray) -> None:
    """One line of percentiles and what the floor would refuse."""
    floor = float(np.quantile(impostor, FLOOR_RATE))
    print(f"{name}: impostor pairs {len(impostor)}: median {np.median(impostor):.3f}, p95 "
          f"{np.quantile(impostor, 0.95):.3f}, p99 {floor:.3f}, p99.9 {np.quantile(impostor, 0.999):.3f}, max "
          f"{impostor.max():.3f}; genuine pairs {len(genuine)}: min {genuine.min():.3f}, p1 "
          f"{np.quantile(genuine, 0.01):.3f}, median {np.median(genuine):.3f}; genuine below the p99 floor: "
          f"{int((genuine < floor).sum())}")


def main() -> None:
    """Print each modality's impostor percentiles and genuine minimum."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--models", default="ge2e,campplus")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    t0 = time.time()
    show("face (buffalo_s)", *pairs(*face_vectors(args.data / "faces" / "deepface")))
    for model in args.models.split(","):
        show(f"voice ({model})", *pairs(*voice_vectors(args.data / "voices", model, args.workers)))
    print(f"({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
