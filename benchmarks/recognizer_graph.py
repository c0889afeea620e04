"""ArcFace as shipped against ArcFace with its PReLUs as Mul + Max (audit/models/onnxgraph.py), side by side.

Usage: PYTHONPATH=. python benchmarks/recognizer_graph.py [--faces N] [--rounds R]
One onnxruntime thread each, the two sessions alternated round by round on the same aligned face crops (the shipped
photos' faces and the shared photos' when present), CPU milliseconds a face at batch 1 and 8; checks the embeddings
are equal bit for bit and prints the load average.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit import config, media  # noqa: E402
from audit.models.face import FaceModel, find_pack_files  # noqa: E402
from audit.models.onnxface import REC_MEAN, REC_STD, session  # noqa: E402
from audit.models.onnxgraph import prelu_as_max  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces" / "deepface"


def crops(n: int) -> np.ndarray:
    """Aligned 112 px face crops as the recognizer's input blobs."""
    import cv2

    model = FaceModel()
    photos = list(config.sample_photos()) + sorted(SHARED.glob("*.jpg"))
    out = []
    for p in photos:
        image = media.load_image(p)
        for kps in model.detect(image)[1]:
            out.append(cv2.dnn.blobFromImage(model.align(image, kps), 1.0 / REC_STD, (112, 112), (REC_MEAN,) * 3,
                                             swapRB=True)[0])
        if len(out) >= n:
            break
    return np.stack(out[:n]).astype(np.float32)


def per_face(sess, blobs: np.ndarray, batch: int) -> float:
    """CPU ms a face."""
    name = sess.get_inputs()[0].name
    t = time.process_time()
    for i in range(0, len(blobs), batch):
        sess.run(None, {name: blobs[i:i + batch]})
    return (time.process_time() - t) / len(blobs) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    path = find_pack_files(config.vectron_dir())[1]
    t = time.perf_counter()
    graph = prelu_as_max(path.read_bytes())
    rewrite_ms = (time.perf_counter() - t) * 1000
    if graph is None:
        raise SystemExit(f"{path.name}: nothing to rewrite")
    shipped, rewritten = session(path, 1), session(path, 1, graph)
    blobs = crops(args.faces)
    name = shipped.get_inputs()[0].name
    same = all(np.array_equal(shipped.run(None, {name: b[None]})[0], rewritten.run(None, {name: b[None]})[0])
               for b in blobs)
    print(f"{path.name}: {len(blobs)} faces, rewrite {rewrite_ms:.0f} ms, embeddings equal bit for bit: {same}; "
          f"load {os.getloadavg()[0]:.1f}")
    for batch in (1, 8):
        a, b = [], []
        for _ in range(args.rounds):
            a.append(per_face(shipped, blobs, batch))
            b.append(per_face(rewritten, blobs, batch))
        print(f"batch {batch}: shipped {np.median(a):.1f} ms a face (range {min(a):.1f}-{max(a):.1f}), "
              f"rewritten {np.median(b):.1f} ms ({min(b):.1f}-{max(b):.1f}): {np.median(a) / np.median(b):.2f}x")
    print(f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
