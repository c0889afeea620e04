"""Structured errors: the library states facts with fields; the CLI and the web each word them for their reader."""

from __future__ import annotations

import pytest

import audit
from audit.cli.base import said
from audit.errors import EnrollError, MediaError
from audit.service.words import web_words


def test_enrolment_refusals_carry_fields_not_flags(photos, audit_home):
    with audit.open_store(audit_home, key=None) as store:
        with pytest.raises(EnrollError) as caught:
            audit.enroll_faces(store, "x", [photos["gdp"]])
        exc = caught.value
        assert (exc.code, exc.person) == ("nothing-usable", "x") and len(exc.problems) == 1
        problem = exc.problems[0]
        assert (problem.code, problem.hint, problem.scores) == ("several-faces", "pick-largest", {"faces": 5})
        assert problem.path == str(photos["gdp"])
        assert "--" not in str(exc) and str(exc) == f"nothing usable to enroll for 'x' ({photos['gdp']}: 5 faces found)"
        assert exc.fields()["problems"][0]["code"] == "several-faces"
        # Each door words the hint for its own reader.
        assert said(exc).endswith("5 faces found; use --pick largest to take the largest)")
        assert web_words(problem) == "5 faces found: upload a photo with only you in it"

        audit.enroll_faces(store, "yao", [photos["yaoming"]])
        with pytest.raises(EnrollError) as caught:
            audit.enroll_faces(store, "twin", [photos["yaoming"]])
        taken = caught.value.problems[0]
        assert (taken.code, taken.hint) == ("already-enrolled", "force") and "--force" not in str(caught.value)
        assert said(caught.value).endswith("already enrolled for yao (--force to enroll it anyway))")
        # The web names no one else's id.
        assert "yao" not in web_words(taken)


def test_web_words_hide_server_paths_and_flags():
    damaged = MediaError("no decodable frames in /srv/store/tmp/upload-1/001.mp4: bad data", path="/x")
    assert web_words(damaged, hide=("/srv/store/tmp/upload-1",)) == "this file could not be read as media"
    assert web_words(MediaError("unsupported file type '.csv'")) == ("not a photo, video or sound recording this tool "
                                                                     "reads (a '.csv' file)")
    people = EnrollError("2 people appear in the video; enroll from a video of one person", code="several-people",
                         scores={"people": 2}, hint="pick-largest")
    assert said(people).endswith("of one person or use --pick largest")
    assert "--" not in web_words(people) and "only you" in web_words(people)
    voice = EnrollError("too little speech (0.2 s voiced)", code="too-little-speech",
                        scores={"voiced_s": 0.2, "need_s": 1.0})
    assert web_words(voice, "voice") == "too little speech (0.2 s; at least 1 s needed)"
