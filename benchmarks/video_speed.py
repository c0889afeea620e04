"""Video sampling speed: x real time for four ways of taking 1 frame/s out of 720p and 1080p H.264.

Usage: python benchmarks/video_speed.py [--seconds N] [--keep DIR] [--scan] [--threads T]
Builds test videos from the shared face photos (panned and zoomed so the picture moves, hard cuts between
photos, B-frames, keyframe every 2.5 s), then times, decoding to BGR arrays only:
  decode-all     every frame decoded (frame threads), 1 frame/s converted
  nonref-1fps    audit.media.video.iter_frames(fps=1): non-reference frames skipped
  keyframes      audit.media.video.iter_frames(keyframes=True): keyframes only (fewer than 1 frame/s)
  seek-per-sample  seek to each whole second, decode forward to it
--scan adds likeness-audit's whole scan (decode, detect, embed, search) over 4 copies of each clip, with 1 and 2
worker processes at 1 frame/s and with --keyframes.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from audit.media import video

PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces" / "deepface"
FPS = 30
GOP_S = 2.5
SHOT_S = 3.0  # each photo stays on screen this long, moving
SIZES = {"720p": ((1280, 720), 3_500_000), "1080p": ((1920, 1080), 6_000_000)}


def load_photos(folder: Path) -> list[np.ndarray]:
    """The shared photos as BGR arrays."""
    photos = [cv2.imread(str(p)) for p in sorted(folder.glob("*.jpg"))]
    photos = [p for p in photos if p is not None]
    if not photos:
        raise SystemExit(f"no photos in {folder}")
    return photos


def shot_frame(photo: np.ndarray, size: tuple[int, int], u: float, seed: int) -> np.ndarray:
    """Frame at progress u (0..1) of a pan-and-zoom over one photo."""
    w, h = size
    ph, pw = photo.shape[:2]
    # Cover the frame, then zoom from 1.0x to 1.25x (or back) while panning diagonally.
    cover = max(w / pw, h / ph)
    zoom = 1.0 + 0.25 * (u if seed % 2 else 1 - u)
    cw, ch = w / (cover * zoom), h / (cover * zoom)
    x0 = (pw - cw) * (u if seed % 3 else 1 - u)
    y0 = (ph - ch) * (0.25 + 0.15 * math.sin(math.pi * u + seed))  # faces sit in the upper part of portraits
    m = np.array([[w / cw, 0, -x0 * w / cw], [0, h / ch, -y0 * h / ch]], np.float32)
    return cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def build(path: Path, size: tuple[int, int], bit_rate: int, seconds: int, photos: list[np.ndarray]) -> float:
    """Encode one test video; return seconds spent."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as c:
        s = c.add_stream("libx264", rate=FPS)
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        s.codec_context.bit_rate = bit_rate
        s.codec_context.options = {
            "preset": "veryfast",
            "bf": "3",
            "g": str(int(GOP_S * FPS)),
            "keyint_min": str(FPS),
        }
        noise = rng.integers(-3, 4, (size[1], size[0], 3), dtype=np.int16)  # a little grain, like a camera
        per_shot = int(SHOT_S * FPS)
        for i in range(seconds * FPS):
            shot = i // per_shot
            photo = photos[shot % len(photos)]
            img = shot_frame(photo, size, (i % per_shot) / per_shot, shot)
            img = np.clip(img.astype(np.int16) + np.roll(noise, i * 7, axis=1), 0, 255).astype(np.uint8)
            f = av.VideoFrame.from_ndarray(img, format="bgr24")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    tmp.rename(path)
    return time.perf_counter() - t0


def decode_all(path: Path, threads: int) -> int:
    """iter_frames at 1 frame/s with NONREF turned off: every frame goes through the decoder."""
    saved = video.NONREF_MAX_FPS
    video.NONREF_MAX_FPS = 0.0
    try:
        return sum(1 for _ in video.iter_frames(path, fps=1.0, threads=threads))
    finally:
        video.NONREF_MAX_FPS = saved


def nonref(path: Path, threads: int) -> int:
    """The library default for 1 frame/s."""
    return sum(1 for _ in video.iter_frames(path, fps=1.0, threads=threads))


def keyframes(path: Path, threads: int) -> int:
    """Keyframes only."""
    return sum(1 for _ in video.iter_frames(path, keyframes=True, threads=threads))


def seek_per_sample(path: Path, threads: int) -> int:
    """Seek to the keyframe before each whole second, then decode forward to the second."""
    n = 0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.codec_context.thread_type = "AUTO"
        s.codec_context.thread_count = threads
        start = s.start_time or 0
        duration = float(s.duration * s.time_base)
        for k in range(int(duration)):
            c.seek(start + int(k / s.time_base), stream=s, backward=True)
            for frame in c.decode(s):
                if frame.time is not None and frame.time - start * s.time_base >= k - 1e-6:
                    frame.to_ndarray(format="bgr24")
                    n += 1
                    break
    return n


def timed(fn: Callable[[Path, int], int], path: Path, threads: int) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and frames for one run."""
    c0, t0 = time.process_time(), time.perf_counter()
    n = fn(path, threads)
    return time.perf_counter() - t0, time.process_time() - c0, n


def scan_end_to_end(path: Path, seconds: float, photos: Path = PHOTOS, copies: int = 4) -> dict[tuple[int, bool], float]:
    """x real time of likeness-audit's own scan (decode + detect + embed + search) over copies of one clip."""
    import audit

    out = {}
    with tempfile.TemporaryDirectory(prefix="video_scan_") as tmp:
        files = []
        for i in range(copies):
            # Distinct copies (an empty MP4 'free' box appended), or the scan would analyse identical files once.
            files.append(Path(tmp) / f"copy{i}.mp4")
            files[-1].write_bytes(path.read_bytes() + (8 + i).to_bytes(4, "big") + b"free" + bytes(i))
        store = audit.open_store(Path(tmp) / "store")
        # A scan refuses an empty gallery (it could only pass by accident); one enrolled person is enough here.
        audit.enroll_faces(store, "someone", [sorted(photos.glob("*.jpg"))[0]], pick="largest")
        for workers, keyframes in ((1, False), (2, False), (2, True)):
            t0 = time.perf_counter()
            for _ in audit.scan(store, files, workers=workers, keyframes=keyframes, voice=False, cache=False):
                pass
            wall = time.perf_counter() - t0
            out[workers, keyframes] = seconds * copies / wall
            mode = "keyframes" if keyframes else "1 frame/s"
            print(f"  scan, {workers} process(es), {mode:9s} {seconds * copies / wall:7.1f}x real time end to end "
                  f"({copies} x {seconds:.0f} s in {wall:.1f} s, start-up included)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=60, help="length of each test video (default 60)")
    ap.add_argument("--keep", type=Path, help="write (and reuse) the test videos in this folder")
    ap.add_argument("--scan", action="store_true", help="also time likeness-audit's whole scan of each clip")
    ap.add_argument("--threads", type=int, default=0, help="decoder threads, 0 = auto (default)")
    ap.add_argument("--photos", type=Path, default=PHOTOS, help="folder of .jpg photos to build videos from")
    args = ap.parse_args()

    tmpdir = None
    if args.keep:
        folder = args.keep
        folder.mkdir(parents=True, exist_ok=True)
    else:
        tmpdir = tempfile.TemporaryDirectory(prefix="video_speed_")
        folder = Path(tmpdir.name)
    photos = None
    ways = [
        ("decode-all", decode_all),
        ("nonref-1fps", nonref),
        ("keyframes", keyframes),
        ("seek-per-sample", seek_per_sample),
    ]
    print(f"H.264 {FPS} fps, B-frames, keyframe every {GOP_S} s + scene cuts; threads={args.threads or 'auto'}")
    try:
        for label, (size, bit_rate) in SIZES.items():
            path = folder / f"bench_{label}_{args.seconds}s.mp4"
            if not path.exists():
                photos = photos if photos is not None else load_photos(args.photos)
                took = build(path, size, bit_rate, args.seconds, photos)
                print(f"{label}: built {path.name} ({path.stat().st_size / 1e6:.1f} MB) in {took:.1f} s")
            info = video.probe(path)
            print(f"{label}: {info.width}x{info.height} {info.duration:.1f} s, {info.fps:.0f} fps, {info.codec}")
            decode = {}
            for name, fn in ways:
                wall, cpu, n = timed(fn, path, args.threads)
                decode[name] = info.duration / wall
                print(
                    f"  {name:16s} {info.duration / wall:7.1f}x real time  "
                    f"({wall:6.2f} s wall, {cpu:6.2f} s CPU, {n} frames)"
                )
            if args.scan:
                scans = scan_end_to_end(path, info.duration, args.photos)
                print(f"  whole scan (2 processes) / decode-only: 1 frame/s {scans[2, False] / decode['nonref-1fps']:.2f}, "
                      f"keyframes {scans[2, True] / decode['keyframes']:.2f}  (goal >= 0.8)")
    finally:
        if tmpdir is not None:
            tmpdir.cleanup()


if __name__ == "__main__":
    main()
