"""Findings out: tables (CSV / JSON / JSON Lines / Parquet), pictures for evidence, the HTML report."""

from .output import write_findings
from .record import output_format, read_record, read_records, write_record
from .tables import FORMATS, findings_frame, read_findings

__all__ = ["FORMATS", "findings_frame", "output_format", "read_findings", "read_record", "read_records",
           "write_findings", "write_record"]
