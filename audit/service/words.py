"""Library errors worded for the web's readers: no command-line flags, no server paths, advice a browser can follow."""

from __future__ import annotations

import re

from ..errors import AuditError, MediaError

# Per code: how a refused file (or a whole request) reads on the web. {what} is "photo" or "recording"; the scores
# of the error fill the rest. A code not listed falls back to the library's statement when it names no server path.
REFUSED = {
    "no-face": "no usable face found: the face must be clearly visible, sharp and not too small",
    "several-faces": "{faces:.0f} faces found: upload a photo with only you in it",
    "several-people": "{people:.0f} people appear in the video: upload a video with only you in it",
    "face-too-small": "the face is too small ({size_px:.0f} px; at least {need_px:.0f} px needed): upload a closer "
                      "or larger photo",
    "face-too-blurred": "the face is too blurred: upload a sharper photo",
    "already-enrolled": "this {what} is already enrolled for another person",
    "unlike-own-samples": "this {what} does not {verb} like the others enrolled for {person} (similarity "
                          "{similarity:.2f}, needed {threshold:.2f})",
    "more-like-someone-else": "this {what} {verbs} more like another enrolled person than like {person}",
    "too-little-speech": "too little speech ({voiced_s:.1f} s; at least {need_s:.0f} s needed)",
    "wrong-kind": "not a {what} this upload takes",
    "no-files": "no file of a kind this upload takes",
    "nothing-usable": "nothing was enrolled: no file was usable",
    "bad-person-id": "not a valid person id: use 1-64 letters, digits, '.', '_' or '-'",
}
UNREADABLE = "this file could not be read as media"
UNSAID = "this request could not be completed"


def web_words(exc: AuditError, modality: str = "face", hide: tuple[str, ...] = ()) -> str:
    """exc worded for a web page or API client; hide: server paths that must not be shown (the upload folder)."""
    template = REFUSED.get(exc.code or "")
    if template is not None:
        voice = modality == "voice"
        values = {"what": "recording" if voice else "photo", "verb": "sound" if voice else "look",
                  "verbs": "sounds" if voice else "looks", "person": exc.person or "this person", **exc.scores}
        try:
            return template.format(**values)
        except (KeyError, ValueError):  # a score the template needs is missing: the library's words then
            pass
    text = exc.worded(lambda p: web_words(p, modality, hide))
    if any(h and h in text for h in hide):
        return UNREADABLE if isinstance(exc, MediaError) else UNSAID
    return file_error(text) if isinstance(exc, MediaError) else text


_UNSUPPORTED = re.compile(r"unsupported file type '([^']*)'")


def file_error(text: str | None) -> str:
    """Why a scanned file could not be read, for the person who uploaded it (the library's words otherwise)."""
    if not text:
        return "it could not be read (no reason was recorded)"
    m = _UNSUPPORTED.search(text)
    if m:
        kind = "a file without an extension" if m.group(1) in ("", "(none)") else f"a '{m.group(1)}' file"
        return f"not a photo, video or sound recording this tool reads ({kind})"
    return text


# What the person's own decision on a scan's use was, in the second person (a finding's consent field).
_DECIDED = {"allowed": "you allowed this use", "denied": "you denied this use",
            "expired": "your permission for this use had expired", "unknown": "you have not decided on this use"}


def use_words(use: str | None, consent: str | None) -> str:
    """'advertising (you denied this use)': the use a scan was made for, and what the person decided on it."""
    what = use or "no use stated by the auditor"
    decided = _DECIDED.get(consent or "", None if consent is None else f"consent: {consent}")
    return f"{what} ({decided})" if decided else what
