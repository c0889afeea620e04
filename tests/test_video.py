"""Tests for audit.media.video: every clip is generated in tmp_path with PyAV or Pillow."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from audit.errors import MediaError
from audit.media.video import VIDEO_EXTS, VideoFrame, is_animated, is_video, iter_frames, probe

W, H = 320, 240
BITS = 10  # frame numbers are drawn as 10 black/white blocks, readable after lossy coding


def numbered(n: int, w: int = W, h: int = H) -> np.ndarray:
    """BGR image showing frame number n as binary blocks, with a red top-left quadrant for orientation."""
    a = np.full((h, w, 3), 128, np.uint8)
    a[: h // 2, : w // 2] = (0, 0, 255)
    bw = w // BITS
    for b in range(BITS):
        a[h // 2 : h // 2 + h // 4, b * bw : (b + 1) * bw] = 255 if (n >> b) & 1 else 0
    return a


def read_number(img: np.ndarray) -> int:
    """Inverse of numbered() on an unrotated, unscaled frame."""
    h, w = img.shape[:2]
    bw = w // BITS
    y = h // 2 + h // 8
    return sum(1 << b for b in range(BITS) if img[y - 4 : y + 4, b * bw + 4 : (b + 1) * bw - 4].mean() > 128)


def make_video(
    path: Path,
    seconds: float = 6.0,
    fps: int = 25,
    codec: str = "libx264",
    pts_ms: list[int] | None = None,
    size: tuple[int, int] = (W, H),
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    rotation: int | None = None,
    audio: bool = False,
) -> Path:
    """Write a clip whose frame i shows the number i; pts_ms gives irregular timestamps (ms) instead."""
    w, h = size
    with av.open(str(path), "w", options=container_options or {}) as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        if options:
            s.codec_context.options = options
        if pts_ms is not None:
            s.codec_context.time_base = Fraction(1, 1000)
            s.time_base = Fraction(1, 1000)
        if rotation is not None:
            s.set_display_rotation(rotation)
        a_s = c.add_stream("aac", rate=16000) if audio else None
        count = len(pts_ms) if pts_ms is not None else int(seconds * fps)
        for i in range(count):
            f = av.VideoFrame.from_ndarray(numbered(i, w, h), format="bgr24")
            if pts_ms is not None:
                f.pts, f.time_base = pts_ms[i], Fraction(1, 1000)
            else:
                f.pts, f.time_base = i, Fraction(1, fps)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
        if a_s is not None:
            _write_audio(c, a_s, seconds)
    return path


def _write_audio(c, a_s, seconds: float) -> None:
    """Append a quiet mono tone to an open container."""
    n = a_s.codec_context.frame_size or 1024
    t = 0
    while t < seconds * 16000:
        samples = (0.1 * np.sin(np.arange(t, t + n) / 10)).astype(np.float32)[None]
        af = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        af.sample_rate, af.pts = 16000, t
        for p in a_s.encode(af):
            c.mux(p)
        t += n
    for p in a_s.encode():
        c.mux(p)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """6 s, 25 fps, 320x240 H.264 with B-frames, keyframe every second, moov at the front."""
    path = tmp_path_factory.mktemp("v") / "clip.mp4"
    return make_video(
        path,
        options={"g": "25", "keyint_min": "25", "sc_threshold": "0", "bf": "3"},
        container_options={"movflags": "faststart"},
    )


def test_sample_one_per_second(clip):
    frames = list(iter_frames(clip, fps=1.0))
    assert len(frames) == 6
    for k, fr in enumerate(frames):
        assert isinstance(fr, VideoFrame)
        assert fr.index == k
        assert fr.image.shape == (H, W, 3) and fr.image.dtype == np.uint8
        assert fr.time == pytest.approx(k, abs=0.2)  # NONREF may land on the next reference frame
        assert read_number(fr.image) == round(fr.time * 25)  # the picture matches its timestamp
        assert fr.scale == 1.0


def test_sample_rates(clip):
    every = list(iter_frames(clip, fps=None))
    assert len(every) == 150
    assert [read_number(f.image) for f in every] == list(range(150))
    assert [f.time for f in every] == pytest.approx([i / 25 for i in range(150)])
    ten = list(iter_frames(clip, fps=10))  # above NONREF_MAX_FPS: every frame decoded
    # the frame on screen at each target k/10 s is the last one starting at or before it
    assert [f.time for f in ten] == pytest.approx([math.floor(k * 2.5 + 1e-9) / 25 for k in range(60)])
    assert all(read_number(f.image) == round(f.time * 25) for f in ten)
    half = list(iter_frames(clip, fps=0.5, threads=1))
    assert [round(f.time) for f in half] == [0, 2, 4]


def test_keyframes(clip):
    with av.open(str(clip)) as c:
        key_times = [float(p.pts * p.time_base) for p in c.demux(video=0) if p.is_keyframe and p.pts is not None]
    frames = list(iter_frames(clip, keyframes=True))
    assert [f.time for f in frames] == pytest.approx(sorted(key_times))
    assert [f.time for f in frames] == pytest.approx([0, 1, 2, 3, 4, 5])
    assert [read_number(f.image) for f in frames] == [0, 25, 50, 75, 100, 125]


def vfr_pts(seed: int, n: int = 60) -> list[int]:
    """Irregular timestamps in ms, ending exactly on a whole second."""
    gaps = np.random.default_rng(seed).choice([10, 33, 40, 120, 400, 700, 1500], size=n - 2)
    pts = [0, *np.cumsum(gaps).tolist()]
    return [*pts, (pts[-1] // 1000 + 2) * 1000]


def on_screen(pts: list[int], step_ms: int) -> list[float]:
    """Reference: for each target, the last frame starting at or before it, once each."""
    out = []
    for k in range(pts[-1] // step_ms + 1):
        t = max(p for p in pts if p <= k * step_ms) / 1000
        if t not in out:
            out.append(t)
    return out


def test_variable_frame_rate(tmp_path):
    pts = vfr_pts(1)
    # Without B-frames every frame is a reference, so NONREF sampling sees them all: exact answer.
    path = make_video(tmp_path / "vfr.mp4", pts_ms=pts, options={"bf": "0"})
    every = list(iter_frames(path, fps=None))
    assert [read_number(f.image) for f in every] == list(range(len(pts)))
    assert [f.time for f in every] == pytest.approx([p / 1000 for p in pts], abs=1e-3)
    sampled = list(iter_frames(path, fps=1.0))
    assert [f.time for f in sampled] == pytest.approx(on_screen(pts, 1000), abs=1e-3)
    assert all(f.time == pytest.approx(pts[read_number(f.image)] / 1000, abs=1e-3) for f in sampled)
    assert [f.time for f in iter_frames(path, fps=4.0)] == pytest.approx(on_screen(pts, 250), abs=1e-3)


def test_variable_frame_rate_with_b_frames(tmp_path):
    pts = vfr_pts(2)
    path = make_video(tmp_path / "vfrb.mp4", pts_ms=pts, options={"bf": "3"})
    sampled = list(iter_frames(path, fps=1.0))
    times = [f.time for f in sampled]
    assert times == sorted(times) and len(set(times)) == len(times)
    for f in sampled:  # picture and timestamp agree
        assert f.time == pytest.approx(pts[read_number(f.image)] / 1000, abs=1e-3)
    # NONREF may pick an earlier reference frame than the exact answer, never a later one
    exact = on_screen(pts, 1000)
    assert len(sampled) >= len(exact) - 3 and len(sampled) <= len(exact)
    assert set(times) <= {p / 1000 for p in pts}


def test_truncated_file_yields_early_frames_then_raises(clip, tmp_path):
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    got: list[VideoFrame] = []
    with pytest.raises(MediaError, match="damaged after"):
        for fr in iter_frames(cut, fps=1.0):
            got.append(fr)
    assert len(got) >= 2
    assert [round(f.time) for f in got] == list(range(len(got)))
    assert all(read_number(f.image) == round(f.time * 25) for f in got)


def test_damage_in_the_middle_recovers_later_frames(tmp_path):
    src = make_video(
        tmp_path / "src.mp4",
        seconds=8,
        options={"g": "25", "keyint_min": "25", "sc_threshold": "0"},
        container_options={"movflags": "faststart"},
    )
    data = bytearray(src.read_bytes())
    n = len(data)
    data[int(n * 0.4) : int(n * 0.5)] = np.random.default_rng(2).integers(0, 256, int(n * 0.5) - int(n * 0.4), np.uint8).tobytes()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    got: list[VideoFrame] = []
    with pytest.raises(MediaError, match=r"damaged after \d+\.\d s"):
        for fr in iter_frames(bad, fps=1.0):
            got.append(fr)
    assert got and got[0].time == 0
    assert got[-1].time > 6  # decoding went on past the damage


@pytest.mark.parametrize("content", [b"", b"this is not a video\n" * 50])
def test_not_a_video_raises(tmp_path, content):
    path = tmp_path / "x.mp4"
    path.write_bytes(content)
    with pytest.raises(MediaError):
        list(iter_frames(path))
    with pytest.raises(MediaError):
        probe(path)


def test_missing_file_raises(tmp_path):
    with pytest.raises(MediaError):
        list(iter_frames(tmp_path / "nope.mp4"))


def test_audio_only_raises_no_video_stream(tmp_path):
    path = tmp_path / "audio.m4a"
    with av.open(str(path), "w", format="mp4") as c:
        _write_audio(c, c.add_stream("aac", rate=16000), 1.0)
    with pytest.raises(MediaError, match="no video stream"):
        list(iter_frames(path))


def _solid_frames(colours: list[int]) -> list[Image.Image]:
    return [Image.fromarray(np.full((48, 64, 3), (c, 255 - c, 40), np.uint8)) for c in colours]


@pytest.mark.parametrize("ext", [".gif", ".webp"])
def test_animated_gif_and_webp(tmp_path, ext):
    colours = [0, 60, 120, 180, 240]
    durations = [100, 300, 500, 700, 400]  # starts: 0, .1, .4, .9, 1.6; ends 2.0
    frames = _solid_frames(colours)
    path = tmp_path / f"anim{ext}"
    kw = {"lossless": True} if ext == ".webp" else {}
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=durations, loop=0, **kw)
    assert is_video(path)
    every = list(iter_frames(path, fps=None))
    assert [f.time for f in every] == pytest.approx([0, 0.1, 0.4, 0.9, 1.6])
    # BGR: red channel is last; GIF palettes may shift colours slightly
    assert [int(f.image[0, 0, 2]) for f in every] == pytest.approx(colours, abs=8)
    assert all(f.image.shape == (48, 64, 3) for f in every)
    sampled = list(iter_frames(path, fps=2.0))  # on screen at 0, .5, 1.0, 1.5: frames from 0, .4, .9, .9
    assert [f.time for f in sampled] == pytest.approx([0, 0.4, 0.9])
    assert [int(f.image[0, 0, 2]) for f in sampled] == pytest.approx([0, 120, 180], abs=8)
    assert [f.index for f in sampled] == [0, 1, 2]
    info = probe(path)
    assert info.duration == pytest.approx(2.0)
    assert (info.width, info.height, info.frames, info.has_audio) == (64, 48, 5, False)


def test_static_webp_is_not_video(tmp_path):
    path = tmp_path / "still.webp"
    _solid_frames([10])[0].save(path)
    assert not is_animated(path)
    assert not is_video(path)


def test_is_video_by_extension(tmp_path):
    assert {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif"} <= VIDEO_EXTS
    assert is_video("a/b/C.MP4") and is_video(Path("x.mkv"))
    assert not is_video("x.jpg") and not is_video("x.wav") and not is_video(tmp_path / "missing.webp")


def test_odd_file_name(tmp_path):
    folder = tmp_path / "dir with spaces ünï"
    folder.mkdir()
    path = make_video(folder / "clip 名前 — (1) #x.mp4", seconds=3)
    frames = list(iter_frames(path, fps=1.0))
    assert [round(f.time) for f in frames] == [0, 1, 2]
    assert probe(path).duration == pytest.approx(3.0, abs=0.1)


@pytest.mark.parametrize(("name", "codec"), [("clip.webm", "libvpx-vp9"), ("clip.mkv", "libx264")])
def test_matroska_and_webm(tmp_path, name, codec):
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} not in this PyAV build")
    opts = {"deadline": "realtime", "cpu-used": "8"} if "vpx" in codec else {}
    path = make_video(tmp_path / name, seconds=3, codec=codec, options=opts)
    frames = list(iter_frames(path, fps=1.0))
    assert [round(f.time) for f in frames] == [0, 1, 2]
    assert all(read_number(f.image) == round(f.time * 25) for f in frames)
    info = probe(path)
    assert info.codec in ("vp9", "libvpx-vp9", "h264")
    assert (info.width, info.height) == (W, H)


def test_rotation_matches_opencv(tmp_path):
    cv2 = pytest.importorskip("cv2")
    for rot in (90, -90, 180):
        path = make_video(tmp_path / f"rot{rot}.mp4", seconds=1, rotation=rot)
        fr = next(iter(iter_frames(path)))
        cap = cv2.VideoCapture(str(path))  # OpenCV applies the display matrix by default
        ok, ref = cap.read()
        cap.release()
        assert ok
        assert fr.image.shape == ref.shape
        assert np.abs(fr.image.astype(int) - ref.astype(int)).mean() < 1.0
        info = probe(path)
        assert info.rotation == (rot if rot != 180 else 180)
        assert (info.width, info.height) == ((H, W) if rot in (90, -90) else (W, H))
    # 90 counter-clockwise: the red top-left quadrant ends up bottom-left.
    fr = next(iter(iter_frames(tmp_path / "rot90.mp4")))
    assert fr.image[-10, 10, 2] > 200 and fr.image[10, 10, 2] < 200


def test_max_side_downscales(tmp_path):
    path = make_video(tmp_path / "big.mp4", seconds=1, size=(640, 480))
    fr = next(iter(iter_frames(path, max_side=320)))
    assert fr.image.shape == (240, 320, 3)
    assert fr.scale == pytest.approx(0.5)
    assert read_number(fr.image) == 0
    small = next(iter(iter_frames(path, max_side=1000)))
    assert small.image.shape == (480, 640, 3) and small.scale == 1.0


def test_probe(tmp_path, clip):
    info = probe(clip)
    assert info.duration == pytest.approx(6.0, abs=0.05)
    assert (info.width, info.height, info.rotation) == (W, H, 0)
    assert info.fps == pytest.approx(25.0)
    assert info.codec == "h264"
    assert info.has_audio is False
    assert info.frames == 150
    with_audio = make_video(tmp_path / "av.mp4", seconds=2, audio=True)
    assert probe(with_audio).has_audio is True
    assert len(list(iter_frames(with_audio))) == 2


def test_bad_arguments(clip):
    with pytest.raises(ValueError):
        list(iter_frames(clip, fps=0))
    with pytest.raises(ValueError):
        list(iter_frames(clip, max_side=0))
