"""Bounded work per file (audio as a stream, video time and frame budgets, large JPEGs) and input checks
(`import` of vectors float32 cannot normalise, a scan of audio with no voice enrolled)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from audit import config
from audit.cli import cli
from audit.store import Store
from audit.store.registry import Sample

ROOT = Path(__file__).resolve().parents[1]

# Runs a command as a child and prints the largest resident set of it (and anything it waited for), in KB.
_MEASURE = """
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": done.returncode, "peak_rss_kb": peak, "out": done.stdout.decode()}))
"""


def write_flac(path: Path, seconds: float, rate: int = 16000, noise: float = 0.0, seed: int = 0) -> Path:
    """A mono FLAC of silence (noise=0) or white noise of that amplitude, encoded block by block."""
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("flac", rate=rate, layout="mono")
        block = rate * 10
        left = round(seconds * rate)
        while left > 0:
            n = min(block, left)
            pcm = (rng.uniform(-noise, noise, n) * 32767).astype("<i2") if noise else np.zeros(n, "<i2")
            frame = av.AudioFrame.from_ndarray(pcm[None], format="s16", layout="mono")
            frame.rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
            left -= n
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def write_wav(path: Path, seconds: float, rate: int = 16000) -> Path:
    """A short mono WAV of a 440 Hz tone."""
    t = np.arange(round(seconds * rate)) / rate
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes())
    return path


def write_mp4(path: Path, frames: int, size: int = 32, fps: int = 25) -> Path:
    """A tiny H.264 video of `frames` frames (a moving grey ramp)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            img = np.full((size, size, 3), (i * 7) % 256, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def unit_rows(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """n random unit vectors."""
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def enrol_random(home: Path, modality: str, model: str, dim: int) -> None:
    """One person with one random template: enough for a scan to search that modality."""
    store = Store(home, key=None)
    store.add_people([("someone", None, [Sample(modality, model, "r".ljust(64, "0"), unit_rows(1, dim)[0])], None)])
    store.close()


def voice_model_id() -> str:
    from audit.models.voice import voice_encoder

    return voice_encoder("ge2e").model_id  # a fused scan (the default) scores GE2E-only people with GE2E


def scan_rows(home: Path, *args) -> tuple[int, list[dict], str]:
    """Run `scan --json` in-process; (exit code, rows, output)."""
    done = CliRunner().invoke(cli, ["--home", str(home), "scan", *map(str, args), "--json"])
    rows = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
    return done.exit_code, rows, done.output


# --- audio ---------------------------------------------------------------------------------------------------------


def test_an_hour_of_audio_scans_in_bounded_memory(tmp_path):
    """A one-file scan of an hour of silent FLAC (a few hundred KB) stays under 600 MB resident and clean."""
    home = tmp_path / "store"
    enrol_random(home, "voice", voice_model_id(), 256)
    flac = write_flac(tmp_path / "hour.flac", 3600)
    env = dict(os.environ, AUDIT_HOME=str(home), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "audit", "scan", str(flac),
                           "--json"], check=False, capture_output=True, text=True, env=env, timeout=600)
    got = json.loads(done.stdout)
    assert got["rc"] == 0, done.stderr
    assert [json.loads(x) for x in got["out"].splitlines()] == []  # silence: no finding, no error row
    assert got["peak_rss_kb"] < 600 * 1024, got["peak_rss_kb"]


def test_audio_longer_than_the_limit_gets_an_error_row(tmp_path, monkeypatch):
    """Beyond config.MAX_AUDIO_SECONDS the rest of a file is not scanned, and its error row says so."""
    monkeypatch.setattr(config, "MAX_AUDIO_SECONDS", 30)
    home = tmp_path / "store"
    enrol_random(home, "voice", voice_model_id(), 256)
    flac = write_flac(tmp_path / "long.flac", 75, noise=0.2)
    code, rows, out = scan_rows(home, flac)
    assert code == 0, out
    errors = [r for r in rows if r["kind"] == "error"]
    assert len(errors) == 1, rows
    assert "only the first 30 s of audio were scanned" in errors[0]["error"], errors[0]


def test_streamed_audio_gives_the_segments_of_whole_decoding(tmp_path):
    """Audio decoded in chunks (overlapping by one segment hop) gives the same segment grid as decoding it whole."""
    from audit.media import audio
    from audit.models.voice import voice_encoder

    flac = write_flac(tmp_path / "n.flac", 40, noise=0.3, seed=3)
    encoder = voice_encoder()
    whole = encoder.embed_segments(audio.load_audio(flac))
    reader = audio.AudioReader(flac, chunk_seconds=9.0)
    parts = [(chunk.start + s.start, chunk.start + s.end) for chunk in reader
             for s in encoder.embed_segments(chunk.samples)]
    assert reader.error is None
    assert [round(a, 3) for a, _ in parts] == [s.start for s in whole]
    assert len(parts) > 20


# --- video ---------------------------------------------------------------------------------------------------------


def test_video_frame_budget_keeps_what_was_decoded_and_says_so(tmp_path):
    """iter_frames stops after max_frames decoded frames with a PartlyScanned error, after yielding the frames before."""
    from audit.media import video
    from audit.media.budget import PartlyScanned

    mp4 = write_mp4(tmp_path / "v.mp4", 300)
    got = []
    with pytest.raises(PartlyScanned) as info:
        for frame in video.iter_frames(mp4, fps=5, max_frames=100):
            got.append(frame.time)
    assert 19 <= len(got) <= 21 and got[-1] < 4.0
    assert "only partly scanned" in str(info.value) and "after 100 frames" in str(info.value)
    assert len(list(video.iter_frames(mp4, fps=5, max_frames=1000))) == 60  # within the budget: whole file


def test_animated_gif_has_the_time_budget(tmp_path):
    """GIF/WebP frames are counted against the time budget too: past it, PartlyScanned after the frames before."""
    from PIL import Image

    from audit.media import video
    from audit.media.budget import PartlyScanned

    frames = [Image.new("RGB", (32, 32), (i * 20, 0, 0)) for i in range(10)]
    gif = tmp_path / "a.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=500, loop=0)
    assert len(list(video.iter_frames(gif, fps=2))) == 10
    with pytest.raises(PartlyScanned, match="seconds on this file"):
        list(video.iter_frames(gif, fps=2, max_seconds=0.0))


def test_video_budgets_become_error_rows_in_a_scan(tmp_path, monkeypatch):
    """A scan of a video over the frame budget or the time budget gets one error row naming the limit."""
    home = tmp_path / "store"
    from audit.models.face import FaceModel

    model = FaceModel()
    enrol_random(home, "face", model.model_id, model.dim)
    mp4 = write_mp4(tmp_path / "v.mp4", 200)
    monkeypatch.setattr(config, "MAX_VIDEO_FRAMES", 50)
    code, rows, out = scan_rows(home, mp4)
    assert code == 0, out
    assert [r["kind"] for r in rows] == ["error"] and "only partly scanned" in rows[0]["error"], rows
    monkeypatch.setattr(config, "MAX_VIDEO_FRAMES", 10**6)
    monkeypatch.setattr(config, "MAX_VIDEO_SECONDS", 0.0)
    code, rows, out = scan_rows(home, mp4)
    assert [r["kind"] for r in rows] == ["error"] and "seconds" in rows[0]["error"], rows


# --- images --------------------------------------------------------------------------------------------------------


def test_jpeg_between_pillows_bomb_warning_and_the_limit_decodes_reduced():
    """A 90 MP JPEG (over Pillow's 89.5 MP warning, under our 100 MP limit) decodes at half size, as documented."""
    from audit.media.image import decode_image_scaled

    ok, data = cv2.imencode(".jpg", np.zeros((9500, 9500), np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 50])
    assert ok
    image, scale = decode_image_scaled(data.tobytes())
    assert scale == 0.5 and image.shape == (4750, 4750, 3)


# --- input checks --------------------------------------------------------------------------------------------------


def test_import_refuses_vectors_whose_float32_norm_overflows(tmp_path):
    """Finite entries of +-1e38 have no float32 norm: the file is refused naming the row, nothing is stored."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from audit.models.face import FaceModel
    from audit.store.transfer import _schema

    model = FaceModel()
    vecs = unit_rows(3, model.dim)
    big = np.where(np.arange(model.dim) % 2, 1e38, -1e38).astype(np.float32)
    rows = [{"person": f"p{i}", "name": None, "modality": "face", "model": model.model_id, "vector": list(map(float, v))}
            for i, v in enumerate([vecs[0], vecs[1], big])]
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=_schema()), bad)
    home = tmp_path / "b"
    done = CliRunner().invoke(cli, ["--home", str(home), "import", str(bad)])
    assert done.exit_code == 2 and "row 3: vector cannot be normalised in float32" in done.output, done.output
    assert Store(home, key=None).people() == []


def test_audio_only_scan_without_voices_enrolled_exits_2(tmp_path):
    """Faces enrolled, no voice: a scan of audio files only would pass unheard, so it stops with exit 2."""
    from audit.models.face import FaceModel

    model = FaceModel()
    home = tmp_path / "store"
    enrol_random(home, "face", model.model_id, model.dim)
    folder = tmp_path / "audio"
    folder.mkdir()
    write_wav(folder / "a.wav", 1.0)
    write_wav(folder / "b.wav", 1.0)
    done = CliRunner().invoke(cli, ["--home", str(home), "scan", str(folder)])
    assert done.exit_code == 2, done.output
    assert "no voice is enrolled" in done.output and "2 audio file(s)" in done.output, done.output
    done = CliRunner().invoke(cli, ["--home", str(home), "scan", str(folder), "--no-voice"])
    assert done.exit_code == 2 and "voice scanning is off" in done.output, done.output
    # With an image beside them the scan runs (and warns that the audio was not scanned).
    _ok, jpg = cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8))
    (folder / "c.jpg").write_bytes(jpg.tobytes())
    done = CliRunner().invoke(cli, ["--home", str(home), "scan", str(folder)])
    assert done.exit_code == 0, done.output
