"""A finding's provenance (what its file declares about itself, media/provenance.py) in words for the report."""

from __future__ import annotations

from typing import Any

_STATE = {"valid": "manifest valid (signer not on a trust list)", "trusted": "manifest valid, signer trusted",
          "invalid": "manifest INVALID"}


def words(prov: Any) -> str | None:
    """'made with X, signed by Y, manifest valid; declares itself AI-generated (trainedAlgorithmicMedia)', or
    None when the file declared nothing."""
    if not isinstance(prov, dict):
        return None
    parts = []
    if prov.get("manifest"):
        said = ["C2PA manifest"]
        if prov.get("generator"):
            said.append(f"made with {prov['generator']}")
        if prov.get("signer"):
            said.append(f"signed by {prov['signer']}")
        state = str(prov.get("state") or "not checked")
        said.append(_STATE.get(state, state))
        if prov.get("problems") and state == "invalid":
            said.append("; ".join(str(p) for p in prov["problems"]))
        parts.append(", ".join(said))
    declared = sorted({*(prov.get("source_types") or []), *([prov["xmp_source_type"]] if prov.get("xmp_source_type")
                                                           else [])})
    if prov.get("ai_declared"):
        parts.append(f"declares itself AI-generated ({', '.join(declared)})")
    elif declared:
        parts.append(f"declares its source as {', '.join(declared)}")
    return "; ".join(parts) or None
