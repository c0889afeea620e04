"""Speaker verification accuracy of audit.models.voice on the shared LibriSpeech utterances: EER and thresholds.

Usage: python benchmarks/voice_accuracy.py [--data ../shared/data/voices] [--enroll 5]

Each of the 10 test-other speakers is enrolled as the normalised mean of embed_utterance over 5 utterances.
Targets are that speaker's other 5 utterances; impostors are the held-out utterances of the 9 other test-other
speakers (same recording conditions) and the 251 train-clean utterances (a cohort of other speakers).
The same is then done with embed_segments (3 s windows, 1.5 s hop), scored one segment at a time, as a scan does.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from face_accuracy import roc_auc, tar_at_far  # sibling script: same threshold convention as the face figures

from audit.media.audio import load_audio
from audit.models.voice import VoiceEncoder

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "voices"


def eer(genuine: np.ndarray, impostor: np.ndarray) -> tuple[float, float, float, float]:
    """(equal error rate, threshold, FAR, FRR there): where the false-accept and false-reject rates cross."""
    thresholds = np.unique(np.concatenate([genuine, impostor]))
    far = np.array([(impostor >= t).mean() for t in thresholds])
    frr = np.array([(genuine < t).mean() for t in thresholds])
    i = int(np.argmin(np.abs(far - frr)))
    return float((far[i] + frr[i]) / 2), float(thresholds[i]), float(far[i]), float(frr[i])


def report(label: str, genuine: np.ndarray, impostor: np.ndarray) -> None:
    """Print EER, ROC AUC and the thresholds at FAR 1 % and 0.1 %."""
    rate, thr, far_at, frr_at = eer(genuine, impostor)
    print(f"{label}: {len(genuine)} target, {len(impostor)} impostor scores")
    # With few targets FRR moves in steps of 1/len(genuine), so the crossing is shown with both rates.
    print(f"  EER {rate:.2%} at {thr:.3f} (FAR {far_at:.2%}, FRR {frr_at:.2%}); "
          f"ROC AUC {roc_auc(genuine, impostor):.4f}")
    g, i = genuine, impostor
    print(f"  target   mean {g.mean():.3f}, min {g.min():.3f}, 1st pct {np.quantile(g, 0.01):.3f}")
    print(f"  impostor mean {i.mean():.3f}, max {i.max():.3f}, 99th pct {np.quantile(i, 0.99):.3f}")
    for far in (0.01, 0.001):
        tar, thr = tar_at_far(genuine, impostor, far)
        hits = int((impostor >= thr).sum())
        print(f"  FAR {far:<5g}: threshold {thr:.3f}, TAR {tar:.3f} ({hits} impostor scores at or above)")


def centroid(vectors: list[np.ndarray]) -> np.ndarray:
    """Normalised mean of unit vectors (resemblyzer's embed_speaker)."""
    m = np.mean(vectors, axis=0)
    return m / np.linalg.norm(m)


def main() -> None:
    """Embed everything once, then print utterance-level and segment-level figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--enroll", type=int, default=5, help="utterances per speaker used for enrollment")
    args = ap.parse_args()
    test_dir, cohort_dir = args.data / "librispeech-test-other", args.data / "librispeech-train-clean"
    if not test_dir.is_dir() or not cohort_dir.is_dir():
        raise SystemExit(f"shared voices not found under {args.data}")
    speakers = {d.name: sorted(d.glob("*.flac")) for d in sorted(test_dir.iterdir()) if d.is_dir()}
    cohort = sorted(cohort_dir.glob("*.flac"))
    enc = VoiceEncoder()
    t0 = time.perf_counter()

    enrolled = {
        s: centroid([enc.embed_utterance(load_audio(p)) for p in files[: args.enroll]]) for s, files in speakers.items()
    }
    held_out = {s: files[args.enroll :] for s, files in speakers.items()}
    utt, seg, seconds = {}, {}, 0.0
    for p in [p for files in held_out.values() for p in files] + cohort:
        wav = load_audio(p)
        utt[p], seg[p] = enc.embed_utterance(wav), enc.embed_segments(wav)
        seconds += len(wav) / enc.sample_rate
    print(f"model {enc.model_id[:12]}; {len(speakers)} speakers x {args.enroll} enrollment utterances, "
          f"{len(utt) - len(cohort)} held-out + {len(cohort)} cohort utterances "
          f"({seconds / 60:.0f} min of audio scored, all embedded in {time.perf_counter() - t0:.0f} s)\n")

    # Utterance level: one score per (held-out utterance, enrolled speaker).
    target, same_channel, cohort_imp = [], [], []
    for s, c in enrolled.items():
        for other, files in held_out.items():
            (target if other == s else same_channel).extend(float(utt[p] @ c) for p in files)
        cohort_imp.extend(float(utt[p] @ c) for p in cohort)
    target = np.array(target)
    report("Utterances, all impostors", target, np.array(same_channel + cohort_imp))
    report("Utterances, same-channel impostors (test-other, other speakers)", target, np.array(same_channel))
    report("Utterances, cohort impostors (train-clean)", target, np.array(cohort_imp))

    # Segment level: every voiced 3 s window scored on its own; a file is flagged if any window passes.
    seg_target, seg_imp, file_target, file_imp = [], [], [], []
    for s, c in enrolled.items():
        for p, segments in seg.items():
            if not segments:
                continue
            scores = [float(x.vector @ c) for x in segments]
            is_target = p.parent.name == s and p.parent.parent == test_dir
            (seg_target if is_target else seg_imp).extend(scores)
            (file_target if is_target else file_imp).append(max(scores))
    seg_target, seg_imp = np.array(seg_target), np.array(seg_imp)
    n_segments = sum(len(v) for v in seg.values())
    print(f"\n{n_segments} segments from {len(seg)} files ({sum(not v for v in seg.values())} files without any)")
    report("Segments (3 s windows, 1.5 s hop), all impostors", seg_target, seg_imp)
    file_target, file_imp = np.array(file_target), np.array(file_imp)
    for far in (0.01, 0.001):
        _tar, thr = tar_at_far(seg_target, seg_imp, far)
        print(f"  files flagged by their best segment at the segment FAR {far:g} threshold {thr:.3f}: "
              f"targets {np.mean(file_target >= thr):.3f}, impostor (file, speaker) pairs "
              f"{np.mean(file_imp >= thr):.4f} ({int((file_imp >= thr).sum())}/{len(file_imp)})")


if __name__ == "__main__":
    main()
