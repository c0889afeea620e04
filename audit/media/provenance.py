"""Content credentials a file carries about itself: its C2PA manifest (claim generator, digital source type
assertions, signer, whether it validates; read with c2pa-python when installed) and the IPTC DigitalSourceType in
its XMP packet (parsed here as text). Never raises for hostile input, and its work per file is bounded."""

from __future__ import annotations

import os
import re
import stat
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# IPTC digital source types that say the media was made by a generative model (https://cv.iptc.org/newscodes/
# digitalsourcetype/): what the report counts as "declares itself AI-generated".
AI_SOURCE_TYPES = frozenset({"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia"})

HEAD, TAIL = 8 * 1024 * 1024, 1024 * 1024  # where credentials are looked for: the file's first and last bytes
MAX_XMP = 1024 * 1024  # a longer XMP packet is cut here (its DigitalSourceType comes early in practice)
C2PA_SECONDS = 30.0  # a manifest that takes longer to check is recorded as not checked (the scan goes on)
MAX_PROBLEMS, MAX_TEXT = 5, 200  # what a hostile manifest can put in a finding

# c2pa's names for the formats files.sniff finds
_MIME = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "tiff": "image/tiff", "gif": "image/gif",
         "heif": "image/heif", "mp4": "video/mp4", "mov": "video/quicktime", "avi": "video/x-msvideo",
         "wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac", "m4a": "audio/mp4"}
MAX_PACKETS = 8  # XMP packets looked at per window
_DST_ATTR = re.compile(r"""[\w.-]{1,40}:DigitalSourceType\s*=\s*["']([^"'<>]{1,500})["']""")
_DST_ELEM = re.compile(r"<([\w.-]{1,40}):DigitalSourceType\b([^<>]{0,600})>([^<>]{0,500})<")
_RESOURCE = re.compile(r"""rdf:resource\s*=\s*["']([^"'<>]{1,500})["']""")


@dataclass
class Provenance:
    """What a file declares about where it came from."""

    manifest: bool = False  # a C2PA manifest is embedded
    valid: bool | None = None  # the manifest validates (signature, hashes); None when it could not be checked
    state: str | None = None  # "valid", "trusted", "invalid", or "not checked: why"
    generator: str | None = None  # the manifest's claim generator ("Adobe Firefly 2.0")
    signer: str | None = None  # the signing certificate's common name (and its issuer)
    source_types: list[str] = field(default_factory=list)  # IPTC digital source types the manifest declares
    xmp_source_type: str | None = None  # the XMP packet's Iptc4xmpExt:DigitalSourceType
    problems: list[str] = field(default_factory=list)  # why the manifest is invalid, or could not be read

    @property
    def ai_declared(self) -> bool:
        """Whether the file declares itself made by a generative model (C2PA or XMP)."""
        return bool(AI_SOURCE_TYPES & {*self.source_types, self.xmp_source_type})

    def to_dict(self) -> dict[str, Any]:
        """Plain data for a finding's extra["provenance"] (ai_declared included)."""
        return {**asdict(self), "ai_declared": self.ai_declared}


def read_provenance(path: str | os.PathLike, fmt: str | None = None, trust: str | None = None) -> Provenance | None:
    """The file's content credentials, or None when it carries none. fmt: its format as media.files.sniff names
    it (looked up when not given). trust: PEM text of trusted signer roots (config.c2pa_trust): a manifest signed
    under one is "trusted", else "valid" at best. Never raises: what cannot be read is recorded in `problems`."""
    try:
        head, tail = _windows(Path(path))
    except OSError:
        return None
    if fmt is None:
        from .files import sniff

        fmt = sniff(head[:32])[1]
    found = Provenance()
    found.xmp_source_type = _xmp_source_type(head) or _xmp_source_type(tail)
    if b"c2pa" in head or b"c2pa" in tail:  # JUMBF boxes name their store "c2pa": no marker, no manifest to read
        _read_c2pa(Path(path), _MIME.get(fmt or ""), found, trust)
    return found if found.manifest or found.xmp_source_type or found.problems else None


def short(source_type: str) -> str:
    """An IPTC digital source type URI's term: '.../digitalsourcetype/trainedAlgorithmicMedia' -> the last part."""
    return _clip(source_type.strip().rstrip("/").rsplit("/", 1)[-1])


def _windows(path: Path) -> tuple[bytes, bytes]:
    """The first HEAD and last TAIL bytes of a regular file (the tail empty when the head holds it all); OSError
    for anything else. Opened non-blocking, so a FIFO named like media never blocks the scan."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with open(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{path} is not a regular file")
        size = st.st_size
        head = f.read(HEAD)
        if size <= HEAD:
            return head, b""
        f.seek(max(HEAD, size - TAIL))
        return head, f.read(TAIL)


def _xmp_source_type(data: bytes) -> str | None:
    """The DigitalSourceType an XMP packet in data declares (attribute, element or rdf:resource form)."""
    for text in _packets(data):
        if a := _DST_ATTR.search(text):
            return short(a.group(1))
        if e := _DST_ELEM.search(text):
            r = _RESOURCE.search(e.group(2))
            value = r.group(1) if r else e.group(3)
            if value.strip():
                return short(value)
    return None


def _packets(data: bytes) -> list[str]:
    """The XMP packets in data (each cut at MAX_XMP), found in one pass: many openings without an end cost no more
    than one."""
    out, pos = [], 0
    while len(out) < MAX_PACKETS:
        start = data.find(b"<x:xmpmeta", pos)
        end = data.find(b"</x:xmpmeta>", start) if start >= 0 else -1
        if end < 0:
            break
        out.append(data[start:min(end, start + MAX_XMP)].decode("utf-8", "replace"))
        pos = end + 1
    return out


def _read_c2pa(path: Path, mime: str | None, found: Provenance, trust: str | None = None) -> None:
    """Fill found from the file's C2PA manifest store, in a thread given C2PA_SECONDS (a hostile manifest that
    hangs the reader costs that, once)."""
    found.manifest = True  # the marker is there; the reader says whether it is a manifest
    try:
        import c2pa  # noqa: F401  (a dependency; a copy without it still reads XMP and notes the manifest)
    except ImportError:
        found.state = "not checked: c2pa-python is not installed"
        return
    if mime is None:
        found.state = "not checked: c2pa cannot read this format"
        return
    out: dict[str, Any] = {}
    worker = threading.Thread(target=_reader, args=(path, mime, out, trust), daemon=True, name="c2pa-reader")
    worker.start()
    worker.join(C2PA_SECONDS)
    if worker.is_alive():
        found.state = f"not checked: the manifest took longer than {C2PA_SECONDS:g} s to read"
        found.problems.append(found.state.removeprefix("not checked: "))
        return
    if "error" in out:
        found.valid, found.state = False, "invalid"
        found.problems.append(_clip(f"the manifest cannot be read: {out['error']}"))
        return
    if out.get("manifest") is None:
        found.manifest = False  # a stray "c2pa" in the bytes: no manifest store
        return
    _fill(found, out["manifest"], out.get("state"), out.get("results"))


def _reader(path: Path, mime: str, out: dict[str, Any], trust: str | None = None) -> None:
    """Read the manifest store with c2pa-python (no remote manifests, no OCSP: nothing touches the network);
    with trust, signers are checked against those roots."""
    try:
        import c2pa

        settings: dict[str, Any] = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
        if trust:
            settings["verify"]["verify_trust"] = True
            settings["trust"] = {"trust_anchors": trust}
        context = c2pa.Context.from_dict(settings)
        with open(path, "rb") as f:
            reader = c2pa.Reader.try_create(mime, f, None, context)
            if reader is None:
                return
            with reader:
                out["manifest"] = reader.get_active_manifest() or {}
                out["state"] = reader.get_validation_state()
                out["results"] = reader.get_validation_results()
    except Exception as exc:  # noqa: BLE001  the reader's errors, and anything a hostile file provokes in it
        out["error"] = f"{type(exc).__name__}: {exc}"


def _fill(found: Provenance, manifest: dict, state: Any, results: Any) -> None:
    """Generator, signer, source types and validity from the active manifest and its validation results."""
    state = str(state or "").lower()
    found.state = state if state in ("valid", "trusted", "invalid") else "invalid"
    found.valid = found.state in ("valid", "trusted")
    info = manifest.get("claim_generator_info")
    if isinstance(info, list) and info and isinstance(info[0], dict) and info[0].get("name"):
        found.generator = _clip(" ".join(str(info[0][k]) for k in ("name", "version") if info[0].get(k)))
    elif isinstance(manifest.get("claim_generator"), str):
        found.generator = _clip(manifest["claim_generator"])
    sig = manifest.get("signature_info")
    if isinstance(sig, dict):
        who = sig.get("common_name") or sig.get("issuer")
        issuer = f" (issued by {sig['issuer']})" if sig.get("issuer") and sig.get("issuer") != who else ""
        found.signer = _clip(f"{who}{issuer}") if who else None
    found.source_types = sorted({short(t) for t in _source_types(manifest.get("assertions"), 0)})[:MAX_PROBLEMS]
    active = results.get("activeManifest") if isinstance(results, dict) else None
    failures = active.get("failure") if isinstance(active, dict) else None
    for f in (failures if isinstance(failures, list) else [])[:MAX_PROBLEMS]:
        # an untrusted signer is what state "valid" (not "trusted") already says: not a problem of the manifest
        if isinstance(f, dict) and (f.get("code") != "signingCredential.untrusted" or not found.valid):
            found.problems.append(_clip(f"{f.get('code')}: {f.get('explanation') or ''}".rstrip(": ")))
    if not found.valid and not found.problems:
        found.problems.append("the manifest does not validate")


def _source_types(value: Any, depth: int) -> list[str]:
    """Every digitalSourceType in the assertions (actions, creative work ...), bounded in depth and count."""
    if depth > 6:
        return []
    if isinstance(value, dict):
        own = [value["digitalSourceType"]] if isinstance(value.get("digitalSourceType"), str) else []
        return own + [t for v in list(value.values())[:100] for t in _source_types(v, depth + 1)]
    if isinstance(value, list):
        return [t for v in value[:100] for t in _source_types(v, depth + 1)]
    return []


def _clip(value: str) -> str:
    """Text a file wrote, kept short and printable."""
    value = "".join(c if c.isprintable() else " " for c in str(value))
    return value if len(value) <= MAX_TEXT else value[: MAX_TEXT - 1] + "…"
