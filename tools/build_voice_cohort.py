"""Build a shipped AS-norm cohort (audit/models/voice_cohort_<model>.npz) from LibriSpeech train-clean utterances.

Usage: python tools/build_voice_cohort.py [--model ge2e|campplus] [--data ../shared/data/voices/librispeech-train-clean]
       [--telephone]   (the same utterances through audit/models/channel.py's telephone line: the cohort that
                        normalises scores against band-limited templates, voice_cohort_<model>_telephone.npz)

The 251 speakers (one utterance each) are sorted by speaker id; those at even positions (126) become the cohort
and those at odd positions (125) are left for measuring false matches (benchmarks/voice_accuracy.py), so the
speakers that normalise scores are never the impostors the stated rate is counted on. Only embeddings ship:
the encoder's vector of each whole utterance (embed_utterance), with the speaker ids and the encoder's SHA-256.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from audit.media.audio import load_audio
from audit.models.channel import narrow_id, telephone
from audit.models.voice import VOICE_MODELS, voice_encoder
from audit.models.voice_cohort import MODELS_DIR

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "voices" / "librispeech-train-clean"


def split(files: list[Path]) -> tuple[list[Path], list[Path]]:
    """(cohort, held out): the speakers at even and odd positions in speaker-id order."""
    ordered = sorted(files, key=lambda p: int(p.name.split("-")[0]))
    return ordered[0::2], ordered[1::2]


def main() -> None:
    """Embed the cohort half and write the npz."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--model", choices=VOICE_MODELS, default="ge2e")
    ap.add_argument("--telephone", action="store_true", help="embed each utterance after the telephone line")
    args = ap.parse_args()
    cohort, held_out = split(sorted(args.data.glob("*.flac")))
    if not cohort:
        raise SystemExit(f"no FLAC files under {args.data}")
    enc = voice_encoder(args.model)
    line = telephone if args.telephone else (lambda wav: wav)
    out = MODELS_DIR / f"voice_cohort_{args.model}{'_telephone' if args.telephone else ''}.npz"
    vectors = np.stack([enc.embed_utterance(line(load_audio(p))) for p in cohort]).astype(np.float32)
    speakers = np.array([p.name.split("-")[0] for p in cohort])
    model = narrow_id(enc.model_id) if args.telephone else enc.model_id
    np.savez(out, vectors=vectors, speakers=speakers, model=np.array(model),
             source=np.array("LibriSpeech train-clean (c) 2014 Vassil Panayotov, CC BY 4.0; one utterance per "
                             "speaker, speaker embeddings only"
                             + (", after a 300-3400 Hz mu-law telephone line" if args.telephone else "")))
    print(f"{len(cohort)} cohort speakers -> {out} ({len(held_out)} speakers held out for evaluation)")


if __name__ == "__main__":
    main()
