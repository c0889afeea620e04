"""Composite detection: the fit, the rule, and real morphs made in the test."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from audit import composite
from tests.helpers.cli import run

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def unit(v):
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v)


def people(n, dim=512, seed=0):
    rng = np.random.default_rng(seed)
    return [unit(rng.normal(size=dim)) for _ in range(n)]


def cands(probe, cents, names=None):
    names = names or [f"p{i}" for i in range(len(cents))]
    out = [composite.Candidate(n, float(c @ probe), c) for n, c in zip(names, cents)]
    return sorted(out, key=lambda c: -c.similarity)


def test_nnls_agrees_with_scipy():
    optimize = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(3)
    for _ in range(50):
        a, b = rng.normal(size=(64, 6)), rng.normal(size=64)
        np.testing.assert_allclose(composite.nnls(a, b), optimize.nnls(a, b)[0], atol=1e-8)


def test_fit_weights_are_non_negative_and_sum_to_one():
    c = people(4)
    coef, w = composite.fit_weights(unit(0.6 * c[0] + 0.4 * c[1]), np.stack(c))
    assert (coef >= 0).all() and w.sum() == pytest.approx(1.0)
    assert w[0] > w[1] > 0.3 and w[2] < 0.05 and w[3] < 0.05
    coef, w = composite.fit_weights(-c[0], np.stack(c[:1]))  # nothing explains it
    assert coef.tolist() == [0.0] and w.tolist() == [0.0]


def test_rule_on_synthetic_faces():
    c = people(6)
    rng = np.random.default_rng(1)
    def noise():
        return 0.9 * unit(rng.normal(size=512))  # real faces: a person's part plus a large own part

    blend = unit(0.45 * c[0] + 0.4 * c[1] + noise())
    v = composite.judge(blend, cands(blend, c))
    assert v.kind == "composite" and {x.person for x in v.contributors} == {"p0", "p1"}
    assert all(0.3 < x.weight < 0.7 for x in v.contributors)

    single = unit(0.75 * c[2] + noise())
    assert composite.judge(single, cands(single, c)).kind == "single"

    lookalike = unit(0.75 * c[2] + 0.1 * c[3] + noise())  # a little like someone else: still one person
    assert composite.judge(lookalike, cands(lookalike, c)).kind == "single"

    generic = unit(sum(0.3 * x for x in c[:5]) + noise())  # mildly like five people: not a two-person composite
    v = composite.judge(generic, cands(generic, c))
    assert v.kind == "generic"

    stranger = unit(0.13 * c[0] + 0.12 * c[1] + noise())  # unrelated face: too little explained
    assert composite.judge(stranger, cands(stranger, c)).kind == "single"
    assert composite.judge(blend, cands(blend, c)[:1]).kind == "single"


def test_a_matched_face_names_a_second_person_only_with_evidence():
    """adds_evidence: beside a match, a composite needs its second contributor at the match threshold too and a
    better fit from the mix than from the best centroid by GAIN."""
    c = people(4)
    rng = np.random.default_rng(5)
    noise = lambda: 0.9 * unit(rng.normal(size=512))  # noqa: E731
    blend = unit(0.5 * c[0] + 0.45 * c[1] + noise())
    v = composite.judge(blend, cands(blend, c))
    assert v.kind == "composite" and v.gain > composite.GAIN
    sims = sorted(x.similarity for x in v.contributors)
    assert composite.adds_evidence(v, threshold=sims[0] - 0.01)
    assert not composite.adds_evidence(v, threshold=sims[0] + 0.01)  # the second is no match itself
    lopsided = unit(0.75 * c[0] + 0.3 * c[1] + noise())  # mostly one person, a little of another (a swap's target)
    w = composite.judge(lopsided, cands(lopsided, c))
    assert not composite.adds_evidence(w, threshold=0.3)
    single = unit(0.75 * c[2] + noise())
    assert not composite.adds_evidence(composite.judge(single, cands(single, c)), threshold=0.0)


def test_real_single_faces_name_no_wrong_extra_person(deepface, audit_home):
    """Every labelled person enrolled from all but one photo; each held-out photo (one face) is that person's match
    and nobody else's: no composite, no second name."""
    import audit

    folder, ppl = deepface
    store = audit.open_store(audit_home)
    held = {}
    for person, files in ppl.items():
        if len(files) >= 3:
            files = sorted(files)
            held[str(folder / files[-1])] = person
            audit.enroll_faces(store, person, [folder / f for f in files[:-1]], pick="largest")
    rows = [r for r in audit.scan(store, list(held), workers=1) if r.kind != "error"]
    by_path: dict[str, list] = {}
    for r in rows:
        by_path.setdefault(r.path, []).append(r)
    for path, person in held.items():
        got = [(r.kind, r.person) for r in by_path.get(path, [])]
        assert got == [("match", person)], (path, got)


# Real morphs: two people of the shared set, morphed from photos that are not enrolled.
A, B = "person01", "person02"
FA, FB = "img10.jpg", "img3.jpg"  # the morph's sources; not enrolled


@pytest.fixture(scope="module")
def morpher(face_model):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from morph import Morpher
    finally:
        sys.path.remove(str(BENCHMARKS))
    return Morpher(face_model)


@pytest.fixture(scope="module")
def morph_case(deepface, morpher, tmp_path_factory):
    """(folder, gallery files per person, morph path, held-out single photo of A)."""
    import cv2

    from audit import media

    folder, ppl = deepface
    assert FA in ppl[A] and FB in ppl[B]
    fa, fb = FA, FB
    gallery = {p: [f for f in sorted(files) if f not in (fa, fb)] for p, files in ppl.items()}
    single = gallery[A].pop()  # a real photo of A that is not enrolled
    img = morpher.morph(morpher.points(media.load_image(folder / fa)), morpher.points(media.load_image(folder / fb)))
    out = tmp_path_factory.mktemp("morph") / f"morph-{A}-{B}.png"
    cv2.imwrite(str(out), img)
    return folder, gallery, out, folder / single


def test_morph_is_composite_and_single_photo_is_match(morph_case, audit_home):
    import audit

    folder, gallery, morph, single = morph_case
    store = audit.open_store(audit_home)
    for person, files in gallery.items():
        audit.enroll_faces(store, person, [folder / f for f in files], pick="largest")
    rows = list(audit.scan(store, [morph, single], workers=1))
    by_path: dict[str, list] = {}
    for r in rows:
        by_path.setdefault(Path(r.path).name, []).append(r)
    # The morph: a composite naming both, and (it reaches the threshold against its best parent) that match too.
    # Before, a composite replaced the match; now a face that matches someone is always reported as that match.
    comps = [r for r in by_path[morph.name] if r.kind == "composite"]
    assert len(comps) == 1
    m = comps[0]
    assert m.person is None
    assert {c["person"] for c in m.contributors[:2]} == {A, B}
    assert sum(c["weight"] for c in m.contributors) <= 1.0 + 1e-6
    assert all(c["weight"] > 0.2 and c["similarity"] > 0 for c in m.contributors[:2])
    assert m.similarity >= m.threshold and m.fmr is not None and m.threshold_source == "default"
    matches = [r for r in by_path[morph.name] if r.kind == "match"]
    assert len(matches) == 1 and matches[0].person in (A, B) and matches[0].similarity >= matches[0].threshold
    (s,) = by_path[single.name]
    assert s.kind == "match" and s.person == A and s.contributors is None


def test_cli_scan_flags_morph_of_two_enrolled_people(morph_case):
    folder, gallery, morph, single = morph_case
    for person in (A, B, "person03", "person10"):
        run("enroll", "face", person, *[folder / f for f in gallery[person]], "--pick", "largest")
    result = run("scan", morph, single, "--json")
    rows: dict[str, list] = {}
    for r in map(json.loads, result.stdout.splitlines()):
        rows.setdefault(Path(r["path"]).name, []).append(r)
    (m,) = [r for r in rows[morph.name] if r["kind"] == "composite"]
    assert [c["person"] for c in m["contributors"]][:2] in ([A, B], [B, A])
    assert set(m["contributors"][0]) >= {"person", "similarity", "weight"}
    assert [(r["kind"], r["person"]) for r in rows[single.name]] == [("match", A)]
    text = run("scan", morph).stdout
    assert text.splitlines()[1].startswith("composite\tface\t")


def test_video_with_morph_gives_composite_appearance(morph_case, tmp_path):
    """A composite held on screen in a video is one composite appearance naming both; the real face is a match."""
    from tests.helpers.video import make_video

    folder, gallery, morph, single = morph_case
    for person in (A, B, "person03", "person10"):
        run("enroll", "face", person, *[folder / f for f in gallery[person]], "--pick", "largest")
    clip = tmp_path / "avatar.mp4"
    make_video(clip, [(morph, 3), (single, 3)], fps=5)
    result = run("scan", clip, "--json")
    rows = [json.loads(x) for x in result.stdout.splitlines()]
    got = [(r["kind"], r["person"], r["start"], r["end"], r["frames"]) for r in rows]
    composites = [r for r in rows if r["kind"] == "composite"]  # in any order: matches come first since the
    assert [(r["start"], r["end"], r["frames"]) for r in composites] == [(0.0, 2.0, 3)]  # match-first rule
    assert {c["person"] for c in composites[0]["contributors"][:2]} == {A, B}
    # The morph also matches its closer parent (reported now, beside the composite): A's appearance covers the real
    # face's frames, and the morph's when A is the closer parent there.
    assert ("match", A, 3.0, 5.0, 3) in got or ("match", A, 0.0, 5.0, 6) in got
    assert all(k == "match" and p in (A, B) for k, p, *_ in got if k != "composite")


def test_side_by_side_picture_is_judged_per_face(deepface, audit_home, tmp_path):
    """Two people's held-out photos side by side in one picture: each face is its own person's match; neither face
    becomes a composite of the two, and nobody else is named."""
    import cv2

    import audit

    folder, ppl = deepface
    store = audit.open_store(audit_home)
    held = {}
    for person in ("person01", "person03", "person02", "person10"):
        files = sorted(ppl[person])
        held[person] = files[-1]
        audit.enroll_faces(store, person, [folder / f for f in files[:-1]], pick="largest")
    a, b = (cv2.imread(str(folder / held[p])) for p in ("person01", "person03"))
    h = min(a.shape[0], b.shape[0])
    a, b = (cv2.resize(x, (round(x.shape[1] * h / x.shape[0]), h)) for x in (a, b))
    pair = tmp_path / "side-by-side.png"
    cv2.imwrite(str(pair), np.hstack([a, b]))
    rows = [r for r in audit.scan(store, [pair], workers=1) if r.kind != "error"]
    assert sorted((r.kind, r.person) for r in rows) == [("match", "person01"), ("match", "person03")]
    left, right = sorted(rows, key=lambda r: r.bbox[0])
    assert left.person == "person01" and right.person == "person03"
