"""Findings out: tables (CSV / JSON / JSON Lines / Parquet), pictures for evidence, the HTML report."""

from .output import write_findings
from .tables import FORMATS, findings_frame, read_findings

__all__ = ["FORMATS", "findings_frame", "read_findings", "write_findings"]
