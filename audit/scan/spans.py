"""Voice spans: which runs of a file's speech segments belong to an enrolled speaker.

Segments are 3 s windows with a 1.5 s hop over voiced audio. Segments whose windows overlap or touch form one
stretch of speech (an island); silence longer than a window separates islands. A span is a run of consecutive
segments that all reach the threshold; it counts when it has at least MIN_RUN segments, or covers a whole island
shorter than that (a lone 3 s utterance). Each span is reported on its own, so a file where the enrolled
speaker talks twice between other speakers gives two spans, neither covering the others' speech.

One speaker per stretch of speech: before spans are built, each segment is assigned to at most one enrolled person
(assign): the best by AS-normalised score, when that score reaches the threshold and leads the runner-up by MARGIN.
A segment whose best two are closer than that counts for nobody: one voice then never names two people, and a
voice between two enrolled speakers names neither rather than a coin toss.
"""

from __future__ import annotations

import numpy as np

MIN_RUN = 2  # one segment alone never makes a finding unless it is all the speech there is
GAP = 1e-3  # seconds of tolerance when deciding that two windows touch
MARGIN = 0.5  # chosen with benchmarks/voice_assign.py


def islands(times: np.ndarray) -> list[tuple[int, int]]:
    """Index ranges [a, b) of segments whose windows overlap or touch; times is [n, 2] (start, end)."""
    times = np.asarray(times, np.float64).reshape(-1, 2)
    out, a = [], 0
    for i in range(1, len(times)):
        if times[i, 0] > times[i - 1, 1] + GAP:
            out.append((a, i))
            a = i
    if len(times):
        out.append((a, len(times)))
    return out


def assign(scores: np.ndarray, threshold: float, margin: float = MARGIN) -> np.ndarray:
    """Per segment, the column of the one person it counts for, or -1; scores is [segments, people] (AS-norm)."""
    s = np.asarray(scores, np.float64)
    s = s[:, None] if s.ndim == 1 else s
    owner = np.full(len(s), -1, np.int64)
    if not s.size:
        return owner
    best = np.argmax(s, axis=1)
    top = s[np.arange(len(s)), best]
    # The runner-up of each row (-inf when one person is enrolled): the best after masking the winner out.
    rest = s.copy()
    rest[np.arange(len(s)), best] = -np.inf
    second = rest.max(axis=1)
    keep = (top >= threshold) & (top - second >= margin)
    owner[keep] = best[keep]
    return owner


def spans(scores: np.ndarray, times: np.ndarray, threshold: float, min_run: int = MIN_RUN) -> list[tuple[int, int]]:
    """Index ranges [a, b) of runs of segments at or above the threshold that are long enough to report."""
    passing = np.asarray(scores) >= threshold
    out = []
    for a, b in islands(times):
        need = min(min_run, b - a)
        i = a
        while i < b:
            if not passing[i]:
                i += 1
                continue
            j = i
            while j < b and passing[j]:
                j += 1
            if j - i >= need:
                out.append((i, j))
            i = j
    return out


def file_score(scores: np.ndarray, times: np.ndarray, rule: str = "run2") -> float:
    """The highest threshold at which the file is flagged under `rule` ("run2": spans(); "half": the old rule,
    half of the segments and at least two of them)."""
    s = np.asarray(scores, np.float64)
    if not len(s):
        return -np.inf
    if rule == "half":
        k = max(min(2, len(s)), -(-len(s) // 2))
        return float(np.sort(s)[::-1][k - 1])
    best = -np.inf
    for a, b in islands(times):
        need = min(MIN_RUN, b - a)
        windows = np.lib.stride_tricks.sliding_window_view(s[a:b], need)
        best = max(best, float(windows.min(axis=1).max()))
    return best
