"""AS-norm score normalisation, the shipped cohorts, and voice spans (audit/models/voice_cohort.py, scan/spans.py)."""

from __future__ import annotations

import numpy as np
import pytest

from audit.errors import ModelError
from audit.models.voice import VOICE_MODELS, voice_encoder
from audit.models.voice_cohort import MODELS_DIR, Cohort, as_norm, load_cohort
from audit.scan.spans import file_score, islands, spans


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def test_generic_impostor_drops_and_target_rises():
    """Two probes with the same raw score: a generic voice close to many cohort speakers and a true target.

    AS-norm measures each score against the probe's own cohort neighbours: the generic voice's neighbours score as
    high as the enrolled person, so its normalised score drops below the target's, which rises."""
    rng = np.random.default_rng(0)
    dim = 64
    hub = unit(rng.normal(size=dim))
    # Cohort: half the speakers lie around one 'generic voice' direction, the rest anywhere.
    cohort = Cohort(unit(np.concatenate([hub + 0.5 * rng.normal(size=(60, dim)) / np.sqrt(dim),
                                         rng.normal(size=(60, dim))])), tuple(map(str, range(120))), "m", top_n=30)
    enrolled = unit(rng.normal(size=dim))
    target = unit(enrolled + 1.0 * rng.normal(size=dim) / np.sqrt(dim))
    # A generic impostor: mostly the hub, tilted towards the enrolled person until its raw score equals the target's.
    raw_t = float(target @ enrolled)
    lo, hi = 0.0, 5.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if float(unit(hub + mid * enrolled) @ enrolled) < raw_t else (lo, mid)
    impostor = unit(hub + lo * enrolled)
    probes = np.stack([target, impostor])
    raw = probes @ enrolled[:, None]
    assert raw[0, 0] == pytest.approx(raw[1, 0], abs=1e-4)
    norm = as_norm(raw, cohort.stats(enrolled[None]), cohort.stats(probes))
    assert norm[0, 0] > norm[1, 0] + 1.0
    # The same holds relative to what each probe scores against the cohort: the target stands out, the hub does not.
    mean_t, std_t = cohort.stats(probes)
    assert (raw[0, 0] - mean_t[0]) / std_t[0] > (raw[1, 0] - mean_t[1]) / std_t[1]


def test_as_norm_is_symmetric_and_shift_invariant():
    """A shift common to every score (a channel that raises all similarities) cancels out."""
    raw = np.array([[0.7, 0.2], [0.4, 0.5]])
    enrol = (np.array([0.3, 0.1]), np.array([0.05, 0.08]))
    test = (np.array([0.2, 0.25]), np.array([0.04, 0.06]))
    base = as_norm(raw, enrol, test)
    shifted = as_norm(raw + 0.1, (enrol[0] + 0.1, enrol[1]), (test[0] + 0.1, test[1]))
    np.testing.assert_allclose(base, shifted)
    assert base[0, 0] == pytest.approx(0.5 * ((0.7 - 0.3) / 0.05 + (0.7 - 0.2) / 0.04))


def test_leave_one_out_stats():
    vecs = unit(np.random.default_rng(1).normal(size=(10, 8)))
    cohort = Cohort(vecs, tuple("abcdefghij"), "m", top_n=3)
    mean_all, _ = cohort.stats(vecs)
    mean_loo, _ = cohort.stats(vecs, exclude=np.arange(10))
    assert np.all(mean_all > mean_loo)  # each vector's own score (1.0) is no longer among its neighbours
    assert np.all(mean_all <= 1.0)


@pytest.mark.parametrize("name", [m for m in VOICE_MODELS if m != "fused"])  # fused uses its parts' cohorts
def test_shipped_cohorts_load_without_pickle(name):
    enc = voice_encoder(name)
    cohort = load_cohort(enc.model_id)
    assert cohort.vectors.shape == (126, enc.dim) and len(set(cohort.speakers)) == 126
    np.testing.assert_allclose(np.linalg.norm(cohort.vectors, axis=1), 1.0, atol=1e-4)
    with np.load(MODELS_DIR / f"voice_cohort_{name}.npz", allow_pickle=False) as data:
        assert "CC BY 4.0" in str(data["source"])
    assert cohort.name.startswith("asnorm:")


def test_cohort_for_another_model_is_an_error(tmp_path):
    with pytest.raises(ModelError, match="no voice cohort"):
        load_cohort("0" * 64)
    bad = tmp_path / "voice_cohort_x.npz"
    np.savez(bad, vectors=np.zeros((1, 4), object), speakers=np.array(["a"]), model=np.array("m"))
    with pytest.raises(ModelError, match="cannot read"):
        load_cohort("m", str(bad))  # an object array would need pickle: refused


# --- spans --------------------------------------------------------------------------------------------------------


def grid(n: int, start: float = 0.0) -> np.ndarray:
    """Times of n consecutive 3 s windows with a 1.5 s hop."""
    return np.array([[start + 1.5 * i, start + 1.5 * i + 3.0] for i in range(n)])


def test_islands_split_on_silence():
    times = np.concatenate([grid(3), grid(2, start=20.0)])
    assert islands(times) == [(0, 3), (3, 5)]


def test_each_run_is_its_own_span():
    scores = np.array([0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.8, 0.9, 0.1, 0.9])
    assert spans(scores, grid(10), 0.5) == [(0, 3), (6, 8)]  # the lone segment at 9 is not enough


def test_lone_utterance_can_be_its_own_span():
    times = np.concatenate([grid(4), grid(1, start=30.0)])
    scores = np.array([0.1, 0.1, 0.1, 0.1, 0.9])
    assert spans(scores, times, 0.5) == [(4, 5)]
    assert spans(np.array([0.9]), grid(1), 0.5) == [(0, 1)]


def test_file_score_agrees_with_spans():
    rng = np.random.default_rng(3)
    for _ in range(300):
        n = int(rng.integers(1, 12))
        times = grid(n)
        if n > 3 and rng.random() < 0.5:
            times[n // 2 :] += 10.0  # a pause
        scores = rng.random(n)
        t = float(rng.random())
        assert (file_score(scores, times) >= t) == bool(spans(scores, times, t))


def test_half_rule_score():
    assert file_score(np.array([0.9, 0.8, 0.1, 0.1]), grid(4), "half") == pytest.approx(0.8)
    assert file_score(np.array([0.9, 0.1, 0.1]), grid(3), "half") == pytest.approx(0.1)


def test_real_voices_known_impostor_drops_target_rises():
    """On the shared LibriSpeech data: a telephone-band recording of an enrolled speaker scores below a known
    impostor (a clean train-clean speaker held out from the cohort) in raw cosine; AS-norm puts it well above."""
    import sys
    from pathlib import Path

    from audit.media.audio import load_audio
    from audit.models.voice import VoiceEncoder
    from audit.scan.voices import VoiceScorer

    voices = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "voices"
    if not voices.is_dir():
        pytest.skip("../shared/data/voices is not present")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from voice_degrade import telephone

    enc = VoiceEncoder()
    files = sorted((voices / "librispeech-test-other" / "2414").glob("*.flac"))
    centroid = unit(np.mean([enc.embed_utterance(load_audio(p)) for p in files[:5]], axis=0))
    scorer = VoiceScorer(["2414"], centroid[None], load_cohort(enc.model_id))
    target = enc.embed_utterance(telephone(load_audio(files[5 + 1])))  # 2414-128291-0006, not enrolled from
    impostor = enc.embed_utterance(load_audio(voices / "librispeech-train-clean" / "3436-172162-0000.flac"))
    raw, norm = scorer.score(np.stack([target, impostor]))
    assert raw[0, 0] < raw[1, 0] - 0.05  # raw: the impostor wins
    assert norm[0, 0] > norm[1, 0] + 0.5  # normalised: the target's score rises above, the impostor's drops
