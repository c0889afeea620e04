"""The CAM++ voice encoder: ONNX against torch's outputs (stored fixture), Kaldi fbank, and enroll/scan via the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from audit.errors import ModelError
from audit.models.campplus import CamPlusEncoder, fbank, kaldi_mel_banks
from audit.models.voice import voice_encoder
from tests.helpers.cli import run

FIXTURE = Path(__file__).parent / "data" / "campplus_reference.json"
VOICES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "voices" / "librispeech-test-other"


@pytest.fixture(scope="module")
def encoder() -> CamPlusEncoder:
    return CamPlusEncoder()


def test_onnx_matches_torch_reference(encoder):
    """tools/convert_campplus.py stored torch's embeddings of fixed random features; onnxruntime must agree."""
    ref = json.loads(FIXTURE.read_text())["outputs"]
    for frames, want in ref.items():
        x = np.random.default_rng(int(frames)).standard_normal((1, int(frames), 80)).astype(np.float32)
        got = encoder._get_session().run(None, {"fbank": x})[0][0]
        want = np.array(want)
        assert float(got @ want / np.linalg.norm(got) / np.linalg.norm(want)) > 0.99999
        np.testing.assert_allclose(got, want, atol=2e-4)


def test_kaldi_fbank_shapes_and_banks():
    banks = kaldi_mel_banks()
    assert banks.shape == (80, 257) and np.all(banks[:, -1] == 0) and np.all(banks.sum(axis=1) > 0)
    t = np.arange(16000) / 16000
    feats = fbank((0.1 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))
    assert feats.shape == (98, 80)  # Kaldi snip_edges: 1 + (16000 - 400) // 160
    assert int(np.argmax(feats.mean(axis=0))) in (26, 27, 28)  # the band centred near 1 kHz (Kaldi mel 1000)
    assert fbank(np.zeros(100, np.float32)).shape == (0, 80)


def test_selectable_and_unknown_model():
    assert voice_encoder("campplus").dim == 192 and voice_encoder("ge2e").dim == 256
    with pytest.raises(ModelError, match="ge2e, campplus"):
        voice_encoder("xvector")


def test_enroll_and_scan_with_campplus():
    """Each encoder keeps its own index: people enrolled with CAM++ are found by CAM++ scans only."""
    if not VOICES.is_dir():
        pytest.skip("../shared/data/voices is not present")
    a = sorted((VOICES / "1688").glob("*.flac"))
    b = sorted((VOICES / "2033").glob("*.flac"))
    run("enroll", "voice", "a", *map(str, a[:5]), "--model", "campplus")
    run("enroll", "voice", "b", *map(str, b[:5]), "--model", "campplus")
    rows = [json.loads(x) for x in run("scan", str(a[6]), str(b[6]), "--json", "--voice-model",
                                             "campplus").stdout.splitlines()]
    assert {(Path(r["path"]).name, r["person"]) for r in rows} == {(a[6].name, "a"), (b[6].name, "b")}
    assert all(r["model"].startswith("campplus:") and r["extra"]["score"] == "as-norm" for r in rows)
    # A GE2E scan has nobody enrolled with its encoder: the audio is not even scanned.
    rows = [json.loads(x) for x in run("scan", str(a[6]), "--json", "--voice-model", "ge2e").stdout.splitlines()]
    assert rows == []
