"""Scanning: decode and embed media (analyze), search and judge it (match), coordinate a run (run)."""

from .options import ScanOptions
from .run import ScanRun, ScanSummary, scan

__all__ = ["ScanOptions", "ScanRun", "ScanSummary", "scan"]
