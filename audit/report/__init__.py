"""Findings out: tables (CSV / JSON / JSON Lines / Parquet), pictures for evidence, the HTML report."""
