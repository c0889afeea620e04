"""A deterministic corpus of hostile media files (about 1,000) for the scan's robustness test and benchmark.

`build(root)` writes the files and returns what it wrote, by how each file must come out of a scan:

- `bad`: unreadable by construction (truncated before the end marker or the index, corrupt headers, zero bytes,
  wrong content for the extension, decompression bombs, 0x0 images, symlink loops, FIFOs, devices, oversized,
  unreadable): exactly one error row each.
- `garbled`: damaged in ways a tolerant decoder may get through (flipped bits in JPEG entropy data, MP3 cut between
  frames): at most one error row each, and no crash.
- `denied`: files with mode 000 (bad too); only a non-root scanner gets "permission denied" for them.
"""

from __future__ import annotations

import ctypes
import io
import json
import os
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audit import config


@dataclass
class Corpus:
    """What build() wrote."""

    root: Path
    bad: dict[Path, str] = field(default_factory=dict)  # path -> category
    garbled: dict[Path, str] = field(default_factory=dict)
    denied: list[Path] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)  # loops and unreadable folders: no rows expected

    def counts(self) -> dict[str, int]:
        """Files per category."""
        out: dict[str, int] = {}
        for cat in list(self.bad.values()) + [f"garbled {c}" for c in self.garbled.values()]:
            out[cat] = out.get(cat, 0) + 1
        return out


def _image(w: int = 96, h: int = 96, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 255 // w), (y * 255 // h), ((x + y) * 127 // (w + h))], -1).astype(np.uint8)
    return np.clip(img.astype(int) + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)


def _encode(ext: str, img: np.ndarray, *params: int) -> bytes:
    import cv2

    ok, buf = cv2.imencode(ext, img, list(params))
    assert ok
    return buf.tobytes()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(w: int, h: int, idat: bytes, depth: int = 8, color: int = 2) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _png_bomb(side: int) -> bytes:
    """A 1-bit greyscale PNG of side x side zeros: a few hundred KB that would decode to side^2 pixels."""
    row = b"\x00" * (1 + (side + 7) // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    return _png(side, side, idat, depth=1, color=0)


def _jpeg_with_size(jpeg: bytes, w: int, h: int) -> bytes:
    """Rewrite the frame header (SOF0/SOF2) of a JPEG to claim another size."""
    data = bytearray(jpeg)
    i = 2
    while i < len(data) - 9:
        if data[i] != 0xFF:
            break
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            data[i + 5:i + 9] = struct.pack(">HH", h, w)
            return bytes(data)
        i += 2 + length
    raise ValueError("no SOF marker")


def _sof_offset(jpeg: bytes) -> int:
    i = 2
    while True:
        marker, length = jpeg[i + 1], struct.unpack(">H", jpeg[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            return i
        i += 2 + length


def _sos_offset(jpeg: bytes) -> int:
    """Where entropy-coded data starts (after the SOS header)."""
    i = 2
    while True:
        marker, length = jpeg[i + 1], struct.unpack(">H", jpeg[i + 2:i + 4])[0]
        if marker == 0xDA:
            return i + 2 + length
        i += 2 + length


def _mp4(frames: int = 30, side: int = 96) -> bytes:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width = s.height = side
        s.pix_fmt = "yuv420p"
        for i in range(frames):
            for p in s.encode(av.VideoFrame.from_ndarray(_image(side, side, i), format="rgb24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return buf.getvalue()


def _mp4_boxes(data: bytes) -> dict[bytes, tuple[int, int]]:
    out, i = {}, 0
    while i + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[i:i + 8])
        out[kind] = (i, i + size)
        i += max(size, 8)
    return out


def _mp3(seconds: float = 2.0, rate: int = 22050) -> bytes:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp3") as c:
        s = c.add_stream("libmp3lame", rate=rate)
        t = np.arange(int(rate * seconds)) / rate
        frame = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :],
                                           format="flt", layout="mono")
        frame.sample_rate = rate
        for p in list(s.encode(frame)) + list(s.encode(None)):
            c.mux(p)
    return buf.getvalue()


def _gif(side: int = 32, frames: int = 3) -> bytes:
    from PIL import Image

    ims = [Image.fromarray(_image(side, side, i)) for i in range(frames)]
    buf = io.BytesIO()
    ims[0].save(buf, format="GIF", save_all=True, append_images=ims[1:], duration=100)
    return buf.getvalue()


def _gif_frames(n: int) -> bytes:
    """A GIF of n tiny frames (a few dozen bytes each)."""
    from PIL import Image

    ims = [Image.fromarray(np.full((2, 2, 3), i % 251, np.uint8)) for i in range(n)]
    buf = io.BytesIO()
    ims[0].save(buf, format="GIF", save_all=True, append_images=ims[1:], duration=20)
    return buf.getvalue()


def _animated_webp(side: int = 48, frames: int = 4) -> bytes:
    from PIL import Image

    ims = [Image.fromarray(_image(side, side, i)) for i in range(frames)]
    buf = io.BytesIO()
    ims[0].save(buf, format="WEBP", save_all=True, append_images=ims[1:], duration=100, quality=60)
    return buf.getvalue()


def _cuts(size: int, n: int, lo: int = 1, hi: int | None = None) -> list[int]:
    """n distinct cut positions spread from lo to hi (exclusive), denser near the start."""
    hi = size - 1 if hi is None else hi
    pts = np.unique(np.geomspace(lo, max(lo + 1, hi), n).astype(int))
    return [int(p) for p in pts if lo <= p < hi]


def build(root: Path) -> Corpus:
    """Write the corpus under root (which must not exist yet)."""
    root.mkdir(parents=True)
    c = Corpus(root)
    rng = np.random.default_rng(1000)
    counter = iter(range(10**6))

    def put(folder: str, name: str, data: bytes, category: str, bad: bool = True) -> Path:
        d = root / folder
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"{next(counter):04d}-{name}"
        p.write_bytes(data)
        (c.bad if bad else c.garbled)[p] = category
        return p

    photos = {p.stem: p.read_bytes() for p in config.sample_photos()}
    small_jpeg = _encode(".jpg", _image(), 1, 90)  # cv2.IMWRITE_JPEG_QUALITY
    png = _encode(".png", _image())
    webp = _encode(".webp", _image(), 64, 80)  # cv2.IMWRITE_WEBP_QUALITY
    bmp, tiff = _encode(".bmp", _image()), _encode(".tiff", _image())
    mp4, mp3, gif = _mp4(), _mp3(), _gif()

    # Truncated images: every cut lacks the end marker (JPEG EOI, PNG IEND) or the rest of the pixels.
    for stem, data in [*photos.items(), ("small", small_jpeg)]:
        for cut in _cuts(len(data), 45):
            put("jpeg/truncated", f"{stem}-{cut}.jpg", data[:cut], "truncated jpeg")
    for cut in _cuts(len(png), 90, hi=len(png) - 12):
        put("png/truncated", f"{cut}.png", png[:cut], "truncated png")
    for cut in _cuts(len(webp), 90):
        put("webp/truncated", f"{cut}.webp", webp[:cut], "truncated webp")
    for name, data, ext in (("bmp", bmp, ".bmp"), ("tiff", tiff, ".tiff")):
        for cut in _cuts(len(data), 35):
            put(f"{name}/truncated", f"{cut}{ext}", data[:cut], f"truncated {name}")
    for cut in _cuts(len(gif), 40, hi=len(gif) - 1):
        put("gif/truncated", f"{cut}.gif", gif[:cut], "truncated gif")
    anim = _animated_webp()
    for cut in _cuts(len(anim), 30, lo=40, hi=len(anim) - 1):  # past the header: read as video, then cut short
        put("webp/animated-truncated", f"{cut}.webp", anim[:cut], "truncated animated webp")

    # Truncated video: the MP4 index (moov) comes after the frames, so any cut before its end loses it.
    boxes = _mp4_boxes(mp4)
    assert boxes[b"moov"][0] > boxes[b"mdat"][0], "expected moov after mdat"
    for cut in _cuts(len(mp4), 110, hi=boxes[b"moov"][1] - 8):
        put("mp4/truncated", f"{cut}.mp4", mp4[:cut], "truncated mp4")
    # MP3 cut inside its first frames cannot be probed; later cuts are shorter valid files (garbled at most).
    for cut in _cuts(len(mp3), 30, hi=400):
        put("mp3/truncated", f"{cut}.mp3", mp3[:cut], "truncated mp3")
    for cut in _cuts(len(mp3), 10, lo=1200):
        put("mp3/cut-between-frames", f"{cut}.mp3", mp3[:cut], "mp3 cut", bad=False)

    # Corrupt headers.
    for stem, data in [*photos.items(), ("small", small_jpeg)]:
        sof = _sof_offset(data)
        for k in range(12):
            d = bytearray(data)
            d[sof + 1] = [0x00, 0x01, 0xFF, 0xD8][k % 4]  # the frame header's marker is gone
            d[sof + 4 + k % 5] ^= 0xFF
            put("jpeg/corrupt-header", f"{stem}-sof-{k}.jpg", bytes(d), "corrupt jpeg header")
        for k in range(6):  # SOI then random bytes
            junk = rng.integers(0, 256, 200 + 400 * k, np.uint8).tobytes()
            put("jpeg/corrupt-header", f"{stem}-junk-{k}.jpg", b"\xff\xd8" + junk + b"\xff\xd9", "corrupt jpeg")
    for k in range(30):  # IHDR with a wrong checksum, or IDAT that is not zlib data
        d = bytearray(png)
        if k % 2:
            d[16 + k % 13] ^= 1 + k
        else:
            i = png.index(b"IDAT") + 4
            d[i:i + 64] = rng.integers(0, 256, 64, np.uint8).tobytes()
        put("png/corrupt", f"{k}.png", bytes(d), "corrupt png")
    for k in range(30):  # RIFF/WEBP/VP8 headers damaged
        d = bytearray(webp)
        d[k % 16] ^= 0x5A
        put("webp/corrupt-header", f"{k}.webp", bytes(d), "corrupt webp header")
    for k in range(20):
        d = bytearray(mp4)
        moov = boxes[b"moov"][0]
        d[moov + 4:moov + 8] = b"junk"  # no movie header any more
        d[moov + 8 + k * 16:moov + 24 + k * 16] = rng.integers(0, 256, 16, np.uint8).tobytes()
        put("mp4/corrupt", f"{k}.mp4", bytes(d), "corrupt mp4")
    for k in range(20):
        put("mp4/ftyp-junk", f"{k}.mp4", mp4[:32] + rng.integers(0, 256, 500 + 300 * k, np.uint8).tobytes(),
            "mp4 header then junk")
    for k in range(10):
        put("audio/wav-bad-format", f"{k}.wav", b"RIFF" + struct.pack("<I", 36 + 100 * k) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 0x7777, 0, 0, 0, 0, 0) + b"data" + struct.pack("<I", 100 * k)
            + bytes(100 * k), "wav with a broken format header")
        put("audio/flac-junk", f"{k}.flac", b"fLaC" + rng.integers(0, 256, 60 + 200 * k, np.uint8).tobytes(),
            "flac marker then junk")
    for k in range(20):
        put("mp3/junk", f"{k}.mp3", rng.integers(0, 256, 100 + 900 * k, np.uint8).tobytes(), "random bytes mp3")
        put("mp3/id3-only", f"{k}.mp3", b"ID3\x04\x00\x00" + bytes([0, 0, k % 128, 127]) + b"\x00" * (20 * k),
            "id3 tag without audio")

    # Damaged but perhaps decodable: flipped bits in JPEG entropy data (libjpeg carries on).
    for k in range(20):
        d = bytearray(small_jpeg)
        start = _sos_offset(small_jpeg)
        for i in rng.integers(start, len(d) - 2, 8):
            d[i] ^= 1 << int(rng.integers(0, 8))
        put("jpeg/bitflips", f"{k}.jpg", bytes(d), "jpeg bit flips", bad=False)

    # Zero bytes, and the wrong content for the extension.
    exts = [".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".gif", ".mp4", ".mov", ".mkv", ".webm", ".mp3",
            ".wav", ".flac", ".m4a"]
    for ext in exts:
        put("empty", f"empty{ext}", b"", "zero bytes")
    others = {"text": b"just some text\n" * 40, "json": b'{"not": "media"}\n', "pdf": b"%PDF-1.4\n%\xe2\xe3\n" * 30,
              "zip": b"PK\x03\x04" + bytes(200), "elf": b"\x7fELF\x02\x01\x01" + bytes(300),
              "html": b"<html><body>hello</body></html>\n" * 10}
    for ext in exts:
        for what, data in others.items():
            put("wrong-extension", f"{what}{ext}", data, "wrong content for extension")
    # Audio named as an image or a video: files are typed by content, so these are scanned as the audio they are
    # (no error row; with no voice enrolled, nothing to find).
    for ext in (".jpg", ".png", ".webp", ".gif"):
        put("wrong-extension", f"mp3{ext}", mp3, "audio named as image", bad=False)
    for ext in (".mp4", ".mov"):
        put("wrong-extension", f"mp3{ext}", mp3, "audio named as video", bad=False)

    # Decompression bombs and images without pixels.
    put("bombs", "png-40000.png", _png_bomb(40000), "decompression bomb")
    put("bombs", "png-1M-wide.png", _png(1_000_000, 200, zlib.compress(b"\x00" * 1000)), "decompression bomb")
    for stem, data in photos.items():
        put("bombs", f"{stem}-65000.jpg", _jpeg_with_size(data, 65000, 65000), "decompression bomb")
    vp8l = bytearray(_encode(".webp", _image(), 64, 101))  # lossless: VP8L header holds 14-bit sizes
    if vp8l[12:16] == b"VP8L":
        vp8l[21:25] = struct.pack("<I", (16383 - 1) | ((16383 - 1) << 14) | (vp8l[24] >> 4 & 0x1) << 28)
        put("bombs", "webp-16383.webp", bytes(vp8l), "decompression bomb")
    g = bytearray(gif)
    g[6:10] = struct.pack("<HH", 65535, 65535)
    put("bombs", "gif-65535.gif", bytes(g), "decompression bomb")
    # Bombs under the header limits: each a small file that once decoded to gigabytes.
    put("bombs", "png-9999.png", _png_bomb(9999), "decompression bomb")  # 100 MP, 12 KB
    g = bytearray(gif)
    g[6:10] = struct.pack("<HH", 9000, 9000)  # small frames on a huge canvas: Pillow fills the canvas per frame
    put("bombs", "gif-canvas-9000.gif", bytes(g), "decompression bomb")
    put("bombs", "gif-6000-frames.gif", _gif_frames(6000), "decompression bomb")  # beyond the frame cap
    put("bombs", "png-4800.png", _png_bomb(4800), "large blank image", bad=False)  # under the budget: decoded
    put("zero-size", "0x0.png", _png(0, 0, zlib.compress(b"")), "0x0 image")
    put("zero-size", "0x7.png", _png(0, 7, zlib.compress(b"\x00" * 7)), "0x0 image")
    put("zero-size", "0x0.bmp", bmp[:18] + struct.pack("<ii", 0, 0) + bmp[26:54], "0x0 image")
    g = bytearray(gif)
    g[6:10] = struct.pack("<HH", 0, 0)
    put("zero-size", "0x0.gif", bytes(g), "0x0 image")

    # Names: not UTF-8, very long, deep.
    for k in range(30):
        raw = os.fsencode(root / "names") + b"/" + f"{k:02d}-".encode() + bytes([0xFF, 0xFE, 0x80 + k]) + b".jpg"
        (root / "names").mkdir(exist_ok=True)
        with open(raw, "wb") as f:
            f.write(small_jpeg[: 100 + 10 * k])
        c.bad[Path(os.fsdecode(raw))] = "non-UTF-8 name"
    put("names", "x" * 200 + ".png", png[:50], "long name")
    deep = "/".join(f"d{i}" for i in range(60))
    put(f"names/{deep}", "deep.jpg", small_jpeg[:80], "deep folder")

    # Things that are not regular files.
    links = root / "links"
    links.mkdir()
    for a, b in (("loop-a.jpg", "loop-b.jpg"), ("loop-b.jpg", "loop-a.jpg"), ("self.png", "self.png"),
                 ("dangling.mp4", "/nonexistent/x.mp4"), ("dangling.jpg", "no-such-file.jpg")):
        os.symlink(b, links / a)
        c.bad[links / a] = "symlink loop or dangling link"
    os.symlink("..", links / "up")  # a folder loop: not followed, no row
    c.folders.append(links / "up")
    for name, target in (("zero.mp4", "/dev/zero"), ("zero.jpg", "/dev/zero"), ("urandom.mp3", "/dev/urandom")):
        os.symlink(target, links / name)
        c.bad[links / name] = "device"
    for name in ("fifo.jpg", "fifo.mp4", "fifo.mp3"):
        os.mkfifo(links / name)
        c.bad[links / name] = "fifo"

    # Too large to read (sparse: no disk used).
    for name in ("huge.jpg", "huge.png"):
        p = root / "huge" / name
        p.parent.mkdir(exist_ok=True)
        with open(p, "wb") as f:
            f.write(small_jpeg[:100])
            f.truncate(config.MAX_IMAGE_BYTES + 1)
        c.bad[p] = "oversized"

    # Permission denied (for a non-root scanner; root reads them and finds them bad anyway).
    for k in range(20):
        p = put("denied", f"{k}.{['jpg', 'png', 'mp4', 'mp3'][k % 4]}", small_jpeg[: 50 + k], "permission denied")
        c.denied.append(p)
    return c


def restrict(c: Corpus) -> None:
    """Make the denied files unreadable (mode 000)."""
    for p in c.denied:
        os.chmod(p, 0)


# Runs the scan as a child and reports the largest resident set of it and its worker processes.
_MEASURE = """
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[1:])
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": done.returncode, "peak_rss_kb": peak}), file=sys.stderr)
"""


def _drop_file_capabilities() -> None:
    """As root, give up CAP_DAC_OVERRIDE/READ_SEARCH, so mode-000 files are unreadable as for anyone else."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP: gone from every program executed afterwards


def prepare_store(home: Path, face_model, photo: Path) -> None:
    """A store with one face and one voice enrolled, so the scan decodes images, video and audio alike."""
    from audit.enroll import enroll_faces
    from audit.store.registry import Sample
    from audit.store import Store
    from audit.models.voice import VoiceEncoder

    store = Store(home, key=None)
    enroll_faces(store, "yao", [photo], model=face_model)
    v = np.random.default_rng(0).normal(size=256).astype(np.float32)
    store.add_samples("voice-only", None, [Sample("voice", VoiceEncoder().model_id, "0" * 64, v / np.linalg.norm(v),
                                                  start=0.0, end=10.0)], None)
    store.close()


@dataclass
class MeasuredScan:
    """A CLI scan's rows by path, exit code, peak RSS and stderr."""

    rows: dict[str, list[dict]]
    rc: int
    peak_rss_mb: float
    stderr: str


def run_scan(home: Path, *paths: Path, timeout: float = 600) -> MeasuredScan:
    """`likeness-audit scan PATHS --json` in a child process, measured; as root, without file-permission bypass."""
    cmd = [sys.executable, "-c", _MEASURE, sys.executable, "-m", "audit", "--home", str(home), "scan",
           *map(str, paths), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          preexec_fn=_drop_file_capabilities if os.geteuid() == 0 else None,
                          env={**os.environ, "OPENCV_LOG_LEVEL": "OFF"})
    report = json.loads(done.stderr.strip().splitlines()[-1])
    rows: dict[str, list[dict]] = {}
    for line in done.stdout.splitlines():
        row = json.loads(line)
        rows.setdefault(row["path"], []).append(row)
    return MeasuredScan(rows, report["rc"], report["peak_rss_kb"] / 1024, done.stderr)
