"""Scanning: decode and embed media (analyze), search and judge (match), coordinate a run (run)."""
