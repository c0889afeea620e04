"""Compare audit.models.voice with resemblyzer on the shared LibriSpeech utterances (needs torch and resemblyzer).

Run in a separate environment that has torch, librosa and resemblyzer==0.1.4 besides the project's own
dependencies, e.g. /work/venv-ref:
    python tools/check_voice_equivalence.py [--write-fixture]

Prints the cosine between both embeddings for every utterance and fails (exit 1) if any is below --min-cosine.
With --write-fixture it also stores resemblyzer's vectors for a few utterances in tests/data/voice_reference.json,
so the test suite can check equivalence without torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
VOICES = SHARED / "data" / "voices" / "librispeech-test-other"
FIXTURE = REPO / "tests" / "data" / "voice_reference.json"
FIXTURE_COUNT = 5

sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    """Embed every utterance both ways and report the cosines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-cosine", type=float, default=0.999)
    parser.add_argument("--write-fixture", action="store_true", help=f"write {FIXTURE.relative_to(REPO)}")
    args = parser.parse_args(argv)

    import numpy as np
    import resemblyzer
    import torch

    from audit.media.audio import load_audio
    from audit.models.voice import VoiceEncoder

    torch.set_num_threads(1)
    files = sorted(VOICES.glob("*/*.flac"))
    if not files:
        print(f"no utterances under {VOICES}", file=sys.stderr)
        return 2
    ref_encoder = resemblyzer.VoiceEncoder("cpu", verbose=False)
    ours = VoiceEncoder()
    cosines, refs = [], {}
    for path in files:
        ref = ref_encoder.embed_utterance(resemblyzer.preprocess_wav(path))
        vec = ours.embed_utterance(load_audio(path))
        cos = float(np.dot(ref, vec) / (np.linalg.norm(ref) * np.linalg.norm(vec)))
        cosines.append(cos)
        refs[path] = ref
        print(f"{path.relative_to(VOICES)}  cosine {cos:.6f}")
    cosines = np.array(cosines)
    print(f"\n{len(cosines)} utterances: min cosine {cosines.min():.7f} (1 - min = {1 - cosines.min():.1e}), "
          f"mean {cosines.mean():.7f}")

    if args.write_fixture:
        # One utterance from each of the first speakers, plus a second from the first speaker.
        by_speaker: dict[str, list[Path]] = {}
        for path in files:
            by_speaker.setdefault(path.parent.name, []).append(path)
        speakers = sorted(by_speaker)
        chosen = [by_speaker[s][0] for s in speakers[: FIXTURE_COUNT - 1]] + [by_speaker[speakers[0]][1]]
        fixture = {  # "utterances" last: it is written by hand below
            "source": f"resemblyzer {getattr(resemblyzer, '__version__', '0.1.4')}: "
            "VoiceEncoder('cpu').embed_utterance(preprocess_wav(path))",
            "paths_relative_to": "shared/ (the directory beside the repository)",
            "model_id": ours.model_id,
            "utterances": [
                {"path": str(p.relative_to(SHARED)), "vector": [round(float(x), 6) for x in refs[p]]} for p in chosen
            ],
        }
        FIXTURE.parent.mkdir(parents=True, exist_ok=True)
        # One utterance per line keeps the fixture readable in diffs.
        text = json.dumps(fixture, indent=1).split('\n "utterances"')[0]
        rows = ",\n".join("  " + json.dumps(u) for u in fixture["utterances"])
        FIXTURE.write_text(f'{text}\n "utterances": [\n{rows}\n ]\n}}\n')
        print(f"wrote {FIXTURE}")
    return 0 if cosines.min() >= args.min_cosine else 1


if __name__ == "__main__":
    sys.exit(main())
