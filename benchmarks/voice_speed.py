"""Voice pipeline speed: seconds of audio handled per second of wall time (decode + VAD + embed).

Usage: python benchmarks/voice_speed.py [--data ../shared/data/voices] [--limit N] [--pipeline utterance segments]
                                        [--model ge2e campplus]

Runs every shared LibriSpeech file (about 65 minutes of audio) through load_audio and embed_utterance
(one vector per file) or embed_segments (3 s windows, as a scan does) in three set-ups: one process with one
onnxruntime thread, one process with two threads, and two single-thread worker processes; each encoder named
by --model in the same run, so their ratios compare.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from audit.media.audio import load_audio
from audit.models.voice import VOICE_MODELS, VoiceEncoder, voice_encoder

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "voices"

_encoder = None
_pipeline = "utterance"


def _init(threads: int, pipeline: str, model: str = "ge2e") -> None:
    """Create this process's encoder and open its session before the clock matters."""
    global _encoder, _pipeline
    _encoder, _pipeline = voice_encoder(model, threads=threads), pipeline
    _encoder.embed_utterance(np.zeros(VoiceEncoder.sample_rate, np.float32))


def _process(path: Path) -> float:
    """Decode and embed one file; return its duration in seconds."""
    wav = load_audio(path)
    if _pipeline == "utterance":
        _encoder.embed_utterance(wav)
    else:
        _encoder.embed_segments(wav)
    return len(wav) / VoiceEncoder.sample_rate


def run(files: list[Path], pipeline: str, threads: int, processes: int, model: str = "ge2e") -> tuple[float, float, float]:
    """Return (audio seconds, wall seconds, CPU seconds of this process and its children)."""
    t0, c0 = time.perf_counter(), _cpu()
    if processes == 1:
        _init(threads, pipeline, model)
        audio = sum(_process(p) for p in files)
    else:
        ctx = multiprocessing.get_context("spawn")  # a forked onnxruntime session is not safe to reuse
        with ProcessPoolExecutor(processes, mp_context=ctx, initializer=_init, initargs=(threads, pipeline, model)) as pool:
            audio = sum(pool.map(_process, files, chunksize=4))
    return audio, time.perf_counter() - t0, _cpu() - c0


def _cpu() -> float:
    """User + system CPU seconds of this process and its finished children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> None:
    """Time each set-up once and print x real time."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--limit", type=int, default=None, help="use only the first N files")
    ap.add_argument("--pipeline", nargs="+", choices=["utterance", "segments"], default=["utterance", "segments"])
    ap.add_argument("--model", nargs="+", choices=VOICE_MODELS, default=["ge2e"])
    args = ap.parse_args()
    files = sorted(args.data.glob("librispeech-*/**/*.flac"))[: args.limit]
    if not files:
        raise SystemExit(f"no shared voices under {args.data}")
    print(f"{len(files)} files, {os.cpu_count()} CPUs")
    setups = (("1 process, 1 thread  ", 1, 1), ("1 process, 2 threads ", 2, 1), ("2 processes, 1 thread", 1, 2))
    for model, pipeline in itertools.product(args.model, args.pipeline):
        for label, threads, processes in setups:
            audio, wall, cpu = run(files, pipeline, threads, processes, model)
            print(f"{model:<8} {pipeline:<9} {label}: {audio / 60:.1f} min of audio in {wall:.1f} s = "
                  f"{audio / wall:.0f}x real time ({audio / cpu:.0f} s of audio per CPU second)")


if __name__ == "__main__":
    main()
