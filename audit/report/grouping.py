"""Findings grouped for a report that scales: one section per person (composites by their people), and within
it one entry per identical file (same SHA-256, same face or span), listing every path that holds it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .filters import text

CARDS_PER_PERSON = 24  # entries shown with pictures in each person's section; the rest are table rows


@dataclass
class Entry:
    """One finding as it appears in one or more identical files."""

    finding: dict[str, Any]
    paths: list[str] = field(default_factory=list)


@dataclass
class Section:
    """Everything found of one person (or one combination of people, for composites)."""

    key: str
    pid: str | None
    name: str | None
    entries: list[Entry] = field(default_factory=list)

    @property
    def findings(self) -> int:
        return sum(len(e.paths) for e in self.entries)

    @property
    def files(self) -> int:
        return len({p for e in self.entries for p in e.paths})


def _same(f: dict[str, Any]) -> tuple:
    """What makes two findings the same evidence in identical files: content, kind, who, where, when."""
    if not f.get("sha256"):
        return ("path", text(f.get("path", "")), id(f))
    who = f.get("person") or "+".join(sorted(text(c.get("person")) for c in f.get("contributors") or []
                                             if isinstance(c, dict)))
    box = tuple(f.get("bbox") or ()) if isinstance(f.get("bbox"), (list, tuple)) else text(f.get("bbox"))
    return (f.get("sha256"), f.get("kind"), f.get("modality"), who, box, f.get("start"), f.get("end"))


def _section_key(f: dict[str, Any]) -> tuple[str, str | None]:
    """(section key, person id): the person, or for an anonymous composite the people it was made of."""
    pid = f.get("person")
    if pid not in (None, ""):
        return f"person:{text(pid)}", text(pid)
    people = sorted(text(c.get("person")) for c in f.get("contributors") or [] if isinstance(c, dict))
    return "composite:" + "+".join(people), None


def sections(hits: list[dict[str, Any]]) -> list[Section]:
    """Findings (most severe first) -> sections in order of their most severe finding, entries likewise."""
    out: dict[str, Section] = {}
    entries: dict[tuple, Entry] = {}
    for f in hits:
        key, pid = _section_key(f)
        section = out.get(key)
        if section is None:
            section = out[key] = Section(key, pid, f.get("name"))
        same = (key, _same(f))
        entry = entries.get(same)
        if entry is None:
            entry = entries[same] = Entry(f)
            section.entries.append(entry)
        entry.paths.append(text(f.get("path", "")))
    return list(out.values())
