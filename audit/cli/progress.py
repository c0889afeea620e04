"""A scan's progress bar on stderr (tqdm), only on a terminal; messages go above it."""

from __future__ import annotations

import sys

import click


class Progress:
    """Files done/total, faces, findings and ETA while a scan runs; nothing when off."""

    def __init__(self, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=None, unit="file", file=sys.stderr, dynamic_ncols=True, leave=False,
                            desc="scanning")

    def update(self, summary) -> None:
        """Show the summary so far (ScanRun.progress calls this after every file)."""
        if self.bar is None:
            return
        if summary.total is not None and self.bar.total != summary.total:
            self.bar.total = summary.total
        self.bar.set_postfix_str(f"{summary.faces} faces, {summary.findings} findings", refresh=False)
        self.bar.update(summary.files - self.bar.n)
        if summary.files == summary.total:
            self.bar.refresh()  # the last file always shows, whatever tqdm's rate limit skipped

    def echo(self, message: str) -> None:
        """A line on stderr that does not tear the bar."""
        if self.bar is None:
            click.echo(message, err=True)
        else:
            self.bar.write(message, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
