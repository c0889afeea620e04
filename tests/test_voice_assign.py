"""One speaker per stretch of speech: each voice segment counts for at most one enrolled person (scan/spans.assign)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from audit.media.audio import load_audio
from audit.scan.spans import MARGIN, assign
from audit.scan.voices import VoiceMatcher
from tests.helpers.cli import run
from tests.test_voice_spans import SR, write_flac

T = 3.0  # threshold of the synthetic matrices
WINDOW = 3.0  # seconds of one segment; neighbouring segments overlap by half of it


def grid(n: int) -> np.ndarray:
    """Times of n consecutive 3 s windows with a 1.5 s hop."""
    return np.array([[1.5 * i, 1.5 * i + WINDOW] for i in range(n)])


def test_best_person_above_threshold_wins():
    scores = np.array([[5.0, 4.0], [3.5, 6.0], [2.0, 1.0]])
    assert assign(scores, T).tolist() == [0, 1, -1]


def test_close_runner_up_counts_for_nobody():
    scores = np.array([[5.0, 5.0 - MARGIN / 2], [5.0, 5.0 - MARGIN]])
    assert assign(scores, T).tolist() == [-1, 0]


def test_runner_up_below_threshold_still_needs_margin():
    """The margin is over the runner-up's score wherever it lies, so it never depends on where the threshold is."""
    assert assign(np.array([[T + MARGIN / 4, T - MARGIN / 4]]), T).tolist() == [-1]
    assert assign(np.array([[T + 0.1, T - MARGIN]]), T).tolist() == [0]


def test_one_enrolled_person_has_no_runner_up():
    assert assign(np.array([[3.1], [2.9]]), T).tolist() == [0, -1]
    assert assign(np.zeros((0, 2)), T).tolist() == []


class FakeScorer:
    """A scorer that returns a fixed [segments, people] matrix as both raw and normalised scores."""

    def __init__(self, people: list[str], norm: np.ndarray):
        self.people, self.norm = people, norm
        self.centroids = np.eye(len(people), dtype=np.float32)
        self.cohort = SimpleNamespace(name="asnorm:test")

    def score(self, vectors):
        return self.norm / 10, self.norm


class FakeStore:
    def index_version(self, modality, model):
        return "v1"

    def check_centroids(self, modality, model, centroids):
        self.checked = set(centroids)


def matcher(people: list[str], norm: np.ndarray) -> VoiceMatcher:
    settings = SimpleNamespace(threshold=T, fmr=1e-3, source="default")
    m = VoiceMatcher(FakeStore(), "ge2e", "0" * 64, settings, lambda p: None, {})
    m._scorer = FakeScorer(people, norm)
    return m


def hits(n: int) -> list:
    return [SimpleNamespace(start=t[0], end=t[1], embedding=np.zeros(2, np.float32)) for t in grid(n)]


def test_two_people_above_threshold_on_the_same_segments_give_one_finding():
    """Both clear the threshold on every segment; only the better one is named (the old rule named both)."""
    norm = np.array([[6.0, 4.5], [6.2, 4.0], [5.8, 4.4], [6.1, 4.9]])
    found = matcher(["alice", "bob"], norm).findings("a.flac", None, hits(4))
    assert [(f.person, f.start, f.end, f.frames) for f in found] == [("alice", 0.0, 7.5, 4)]
    assert found[0].similarity == pytest.approx(norm[:, 0].mean(), abs=1e-4)


def test_spans_are_built_from_assigned_segments_only():
    """Alice's turn, then Bob's: each span covers its own speaker's segments, even where both pass the threshold."""
    norm = np.array([[6.0, 3.5], [6.0, 3.6], [5.5, 5.4], [3.5, 6.0], [3.2, 6.5]])
    found = matcher(["alice", "bob"], norm).findings("ab.flac", None, hits(5))
    assert [(f.person, f.frames) for f in found] == [("alice", 2), ("bob", 2)]
    assert found[0].end == pytest.approx(4.5) and found[1].start == pytest.approx(4.5)  # segment 2 is nobody's


def test_nobody_above_threshold_gives_nothing():
    norm = np.array([[2.0, 1.0], [2.5, 2.9]])
    assert matcher(["alice", "bob"], norm).findings("x.flac", None, hits(2)) == []




def test_two_speaker_file_names_each_speaker_in_their_own_turn(speakers, tmp_path):
    """Two shared speakers' held-out recordings end to end: each span names the speaker of its own turn, and no
    stretch of speech counts for both (spans of different people share at most the half window between them)."""
    a_id, b_id = "2414", "3080"
    run("enroll", "voice", a_id, *map(str, speakers[a_id][:5]))
    run("enroll", "voice", b_id, *map(str, speakers[b_id][:5]))
    a, b = load_audio(speakers[a_id][6]), load_audio(speakers[b_id][6])
    turn = len(a) / SR
    path = write_flac(tmp_path / "ab.flac", np.concatenate([a, b]))
    rows = [json.loads(x) for x in run("scan", str(path), "--json").stdout.splitlines()]
    assert {r["person"] for r in rows} == {a_id, b_id}, rows
    for r in rows:
        if r["person"] == a_id:
            assert r["end"] <= turn + WINDOW, r
        else:
            assert r["start"] >= turn - WINDOW, r
    for x in rows:
        for y in rows:
            if x["person"] != y["person"]:
                assert min(x["end"], y["end"]) - max(x["start"], y["start"]) <= WINDOW / 2 + 1e-6, (x, y)
