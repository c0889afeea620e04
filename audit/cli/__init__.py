"""Command line: a thin layer over the library (audit.open_store, audit.scan); the only layer that prints or exits."""

from __future__ import annotations

import os

from . import admin, calibrate, casefile, enroll, gallery, people, rematch, review, scan, serve, watch  # noqa: F401  each module registers its commands
from .base import cli

__all__ = ["cli", "main"]


def main() -> None:
    """Console-script entry point."""
    # OpenCV logs its own decoder complaints to stderr; the error rows already say what was wrong.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
    cli(prog_name="likeness-audit")
