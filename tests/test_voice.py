"""Tests for audit.media.audio and audit.models.voice (no torch: resemblyzer's vectors come from a stored fixture)."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from audit.media.audio import has_audio, load_audio, load_audio_partial
from audit.errors import MediaError, ModelError
from audit.models.voice import Segment, VoiceEncoder, mel_filterbank, partial_slices

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
VOICES = SHARED / "data" / "voices" / "librispeech-test-other"
FIXTURE = Path(__file__).parent / "data" / "voice_reference.json"
SR = 16000


@pytest.fixture(scope="module")
def encoder() -> VoiceEncoder:
    """One encoder for the module (the ONNX session opens on first use)."""
    return VoiceEncoder()


@pytest.fixture(scope="module")
def voices() -> dict[str, list[Path]]:
    """Shared LibriSpeech utterances by speaker; skips when ../shared is absent."""
    if not VOICES.is_dir():
        pytest.skip("../shared/data/voices is not present")
    return {d.name: sorted(d.glob("*.flac")) for d in sorted(VOICES.iterdir()) if d.is_dir()}


def tone(seconds: float, rate: int = SR, freq: float = 440.0) -> np.ndarray:
    """A quiet sine with a slow vibrato, float32."""
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t + 3 * np.sin(2 * np.pi * 2 * t))).astype(np.float32)


def mux_black_frames(c, n: int) -> None:
    """Add a small H.264 stream of n black frames to an open output container and mux it."""
    v = c.add_stream("libx264", rate=10)
    v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
    for i in range(n):
        frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
        frame.pts = i
        for p in v.encode(frame):
            c.mux(p)
    for p in v.encode(None):
        c.mux(p)


def write_audio(
    path: Path, channels: np.ndarray, rate: int, codec: str, video_frames: int = 0, out_rate: int | None = None
) -> Path:
    """Encode float samples [channels, n] at `rate` with PyAV (stored at out_rate); video_frames adds black frames."""
    layout = {1: "mono", 2: "stereo"}[len(channels)]
    with av.open(str(path), "w") as c:
        # Every stream must exist before the first packet is muxed.
        a = c.add_stream(codec, rate=out_rate or rate, layout=layout)
        if video_frames:
            mux_black_frames(c, video_frames)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(channels, np.float32), format="fltp", layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
        for p in a.encode(frame):  # PyAV resamples and re-chunks to the encoder's rate, format and frame size
            c.mux(p)
        for p in a.encode(None):
            c.mux(p)
    return path


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors."""
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# --- audio decoding --------------------------------------------------------------------------------------------


def test_flac_round_trip_is_exact(tmp_path):
    wav = tone(2.0)
    path = write_audio(tmp_path / "tone.flac", wav[None], SR, "flac")
    out = load_audio(path)
    assert out.dtype == np.float32 and out.ndim == 1
    assert len(out) == len(wav)
    assert np.abs(out - wav).max() < 1e-4  # 16-bit quantisation only


def test_stereo_channels_are_averaged(tmp_path):
    left, right = tone(1.0, freq=300.0), 0.5 * tone(1.0, freq=700.0)
    path = write_audio(tmp_path / "stereo.wav", np.stack([left, right]), SR, "pcm_s16le")
    out = load_audio(path)
    assert np.abs(out - (left + right) / 2).max() < 1e-4


def test_resampled_to_16k(tmp_path):
    path = write_audio(tmp_path / "tone44.flac", tone(2.0, rate=44100)[None], 44100, "flac")
    out = load_audio(path)
    assert abs(len(out) - 2 * SR) <= 1
    assert np.abs(out[1000:-1000] - tone(2.0)[1000:-1000]).max() < 0.01


def test_max_seconds(tmp_path):
    path = write_audio(tmp_path / "tone.flac", tone(3.0)[None], SR, "flac")
    assert len(load_audio(path, max_seconds=1.25)) == 20000


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(MediaError, match="empty"):
        load_audio(path)


def test_text_file_named_mp3(tmp_path):
    path = tmp_path / "notes.mp3"
    path.write_text("this is not an mp3\n" * 50)
    with pytest.raises(MediaError, match="cannot open"):
        load_audio(path)


def test_missing_file(tmp_path):
    with pytest.raises(MediaError, match="no such file"):
        load_audio(tmp_path / "nowhere.flac")


def test_truncated_flac(tmp_path):
    whole = write_audio(tmp_path / "whole.flac", tone(4.0)[None], SR, "flac").read_bytes()
    header_only = tmp_path / "header.flac"
    header_only.write_bytes(whole[:60])
    with pytest.raises(MediaError):
        load_audio(header_only)
    half = tmp_path / "half.flac"
    half.write_bytes(whole[: len(whole) // 2])
    wav, _error = load_audio_partial(half)  # what decoded before the cut comes back
    assert 0.5 * SR < len(wav) < 4.0 * SR


def test_mp4_audio_track(tmp_path, voices, encoder):
    source = voices["1688"][0]
    speech = load_audio(source)
    path = write_audio(tmp_path / "clip.mp4", speech[None], SR, "aac", video_frames=5, out_rate=44100)
    assert has_audio(path)
    out = load_audio(path)
    assert abs(len(out) - len(speech)) < 0.1 * SR  # AAC adds priming and padding samples
    assert cosine(encoder.embed_utterance(out), encoder.embed_utterance(speech)) > 0.95


def test_video_without_audio(tmp_path):
    path = tmp_path / "silent.mp4"
    with av.open(str(path), "w") as c:
        mux_black_frames(c, 3)
    assert not has_audio(path)
    with pytest.raises(MediaError, match="no audio stream"):
        load_audio(path)


# --- voice encoder ---------------------------------------------------------------------------------------------


def test_import_is_cheap():
    # Only what importing these two modules adds counts, whatever the package itself imports.
    code = (
        "import sys, audit; before = set(sys.modules); import audit.models.voice, audit.media.audio; "
        "added = set(sys.modules) - before; print('onnxruntime' in added, 'webrtcvad' in added)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_missing_model_names_path(tmp_path):
    missing = tmp_path / "nope.onnx"
    with pytest.raises(ModelError, match=r"nope\.onnx"):
        VoiceEncoder(missing)


def test_unreadable_model(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load"):
        VoiceEncoder(bad).embed_utterance(tone(2.0))


def test_unit_vectors_and_model_id(encoder):
    vec = encoder.embed_utterance(tone(3.0))
    assert vec.shape == (256,) and vec.dtype == np.float32
    assert abs(np.linalg.norm(vec) - 1) < 1e-5
    assert len(encoder.model_id) == 64 and int(encoder.model_id, 16) >= 0


def test_filterbank_shape():
    fb = mel_filterbank()
    assert fb.shape == (40, 201)
    assert (fb >= 0).all() and (fb.sum(axis=1) > 0).all()


def test_partial_slices_follow_resemblyzer():
    # 77-frame steps; a last partial under 75 % real audio is dropped unless it is the only one.
    assert partial_slices(0) == [0]
    assert partial_slices(SR) == [0]
    assert partial_slices(4 * SR) == [0, 77, 154, 231]
    assert partial_slices(int(2.5 * SR)) == [0, 77]


def test_silence(encoder):
    silence = np.zeros(4 * SR, np.float32)
    assert encoder.voiced_seconds(silence) == 0.0
    assert encoder.embed_segments(silence) == []
    assert encoder.embed_segments(np.zeros(0, np.float32)) == []


def test_matches_resemblyzer_fixture(encoder):
    if not SHARED.is_dir():
        pytest.skip("../shared is not present")
    fixture = json.loads(FIXTURE.read_text())
    assert fixture["model_id"] == encoder.model_id
    for item in fixture["utterances"]:
        ours = encoder.embed_utterance(load_audio(SHARED / item["path"]))
        assert cosine(ours, np.array(item["vector"])) >= 0.999, item["path"]


def test_same_speaker_scores_higher(encoder, voices):
    speakers = ["1688", "1998", "2033"]
    vecs = {s: [encoder.embed_utterance(load_audio(p)) for p in voices[s][:2]] for s in speakers}
    same = [cosine(*vecs[s]) for s in speakers]
    different = [cosine(vecs[a][0], vecs[b][1]) for a in speakers for b in speakers if a != b]
    assert min(same) > max(different)


def test_segments(encoder, voices):
    a, b = load_audio(voices["1688"][0]), load_audio(voices["2033"][0])
    gap = 5.0
    wav = np.concatenate([a, np.zeros(int(gap * SR), np.float32), b])
    segments = encoder.embed_segments(wav)
    assert segments and all(isinstance(s, Segment) for s in segments)
    duration = len(wav) / SR
    for s in segments:
        assert 0 <= s.start < s.end <= duration
        assert s.end - s.start <= 3.0 + 1e-9 and 1.0 <= s.voiced_s <= s.end - s.start
        assert abs(np.linalg.norm(s.vector) - 1) < 1e-5
    # Nothing is reported from inside the silent gap.
    a_end = len(a) / SR
    assert not [s for s in segments if s.start >= a_end and s.end <= a_end + gap]
    # Segments score closer to their own speaker.
    ea, eb = encoder.embed_utterance(a), encoder.embed_utterance(b)
    for s in segments:
        if s.end <= a_end:
            assert cosine(s.vector, ea) > cosine(s.vector, eb)
        elif s.start >= a_end + gap:
            assert cosine(s.vector, eb) > cosine(s.vector, ea)
