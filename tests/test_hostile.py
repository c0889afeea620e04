"""Hostile input: a scan of ~1,000 bad files ends with one error row per file in bounded memory; fuzzed decoders."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from tests.helpers import hostile_files
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit import media
from audit.errors import MediaError
from audit.store import Store

PEAK_RSS_LIMIT_MB = 600  # bombs included; measured about 350 MB (the CLI's or a worker's, the largest)


@pytest.mark.slow
def test_scan_of_a_thousand_hostile_files(face_model, photos):
    # Outside pytest's private temp folder, which a capability-dropped root could not enter.
    base = Path(tempfile.mkdtemp(prefix="likeness-hostile-"))
    try:
        corpus = hostile_files.build(base / "corpus")
        hostile_files.restrict(corpus)
        home = base / "store"
        hostile_files.prepare_store(home, face_model, photos["yaoming"])
        run = hostile_files.run_scan(home, corpus.root)
        assert run.rc == 0, run.stderr[-3000:]
        rows = run.rows

        shown = {media.display_path(p): cat for p, cat in corpus.bad.items()}
        for path, cat in shown.items():
            got = rows.get(path, [])
            assert [r["kind"] for r in got] == ["error"], (cat, path, got)
            assert got[0]["error"]
        unexpected = [r["error"] for rs in rows.values() for r in rs if "unexpected error" in (r["error"] or "")]
        assert unexpected == [], "decoders let exceptions other than MediaError out"
        for p, cat in corpus.garbled.items():
            assert sum(r["kind"] == "error" for r in rows.get(media.display_path(p), [])) <= 1, (cat, p)
        assert set(rows) <= set(shown) | {media.display_path(p) for p in corpus.garbled}
        denied = [rows[media.display_path(p)][0]["error"] for p in corpus.denied]
        # Where root keeps its file capabilities (some containers) the files are read, and found bad anyway.
        permission = "permission denied seen" if all("Permission denied" in e for e in denied) else "read anyway"
        errors = sum(r["kind"] == "error" for rs in rows.values() for r in rs)
        summary = next(line for line in reversed(run.stderr.splitlines()) if line.startswith("scanned "))
        assert summary.startswith(f"scanned {len(corpus.bad) + len(corpus.garbled)} files")
        scan_event = Store(home, key=None).log.entries()[-1]
        assert scan_event["event"] == "scan" and scan_event["details"]["errors"] == errors
        print(f"\nhostile corpus: {len(corpus.bad)} bad + {len(corpus.garbled)} garbled files, {errors} error rows, "
              f"peak RSS {run.peak_rss_mb:.0f} MB, {permission}; {summary}")
        assert run.peak_rss_mb < PEAK_RSS_LIMIT_MB
    finally:
        for p in base.rglob("*"):
            if not p.is_symlink():
                os.chmod(p, 0o700)
        shutil.rmtree(base)


# Fuzzing: a fixed number of derandomised examples, so CI is repeatable and bounded in time.

FUZZ = settings(max_examples=1000, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _seed_images() -> list[bytes]:
    import cv2

    img = hostile_files._image(48, 40)
    out = [cv2.imencode(ext, img)[1].tobytes() for ext in (".jpg", ".png", ".webp", ".bmp", ".tiff")]
    return out + [hostile_files._gif(16, 2)]


def mutated(seeds: list[bytes]):
    """A seed file with some bytes overwritten, a slice cut out or inserted, and/or truncated; or random bytes."""

    @st.composite
    def build(draw):
        if draw(st.integers(0, 9)) == 0:
            return draw(st.binary(max_size=2048))
        data = bytearray(draw(st.sampled_from(seeds)))
        for _ in range(draw(st.integers(0, 6))):
            i = draw(st.integers(0, len(data) - 1))
            op = draw(st.sampled_from(["set", "cut", "insert"]))
            if op == "set":
                data[i] = draw(st.integers(0, 255))
            elif op == "cut":
                del data[i:i + draw(st.integers(1, 64))]
            else:
                data[i:i] = draw(st.binary(min_size=1, max_size=16))
            if not data:
                break
        if draw(st.booleans()):
            data = data[: draw(st.integers(0, len(data)))]
        return bytes(data)

    return build()


SEED_IMAGES = _seed_images()


@FUZZ
@given(mutated(SEED_IMAGES))
def test_fuzz_decode_image(data):
    try:
        image = media.decode_image(data, max_pixels=4_000_000)
    except MediaError:
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert 0 < image.shape[0] * image.shape[1] <= 4_000_000


def _decode_to_end(fn, data: bytes, suffix: str) -> None:
    with tempfile.NamedTemporaryFile(suffix=suffix) as f:
        f.write(data)
        f.flush()
        try:
            fn(f.name)
        except MediaError:
            pass


@pytest.fixture(scope="module")
def av_seeds() -> dict[str, bytes]:
    return {"mp4": hostile_files._mp4(frames=6, side=32), "mp3": hostile_files._mp3(seconds=0.5),
            "gif": hostile_files._gif(16, 3)}


@settings(FUZZ, max_examples=300)
@given(data=st.data())
def test_fuzz_audio_decoder(av_seeds, data):
    from audit.media import audio

    blob = data.draw(mutated([av_seeds["mp3"], av_seeds["mp4"]]))
    _decode_to_end(lambda p: audio.load_audio(p, max_seconds=5), blob, ".mp3")


@settings(FUZZ, max_examples=300)
@given(data=st.data())
def test_fuzz_video_decoder(av_seeds, data):
    from audit.media import video

    kind = data.draw(st.sampled_from(["mp4", "gif"]))
    blob = data.draw(mutated([av_seeds[kind]]))
    _decode_to_end(lambda p: list(video.iter_frames(p, fps=2, max_side=64)), blob, f".{kind}")
