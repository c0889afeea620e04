"""The CLI invoked in-process, and where the shared data set lives."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

# ../shared/data beside the repository: the shared photos and voices, when present.
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def run(*args, code=0, env=None, input=None):
    """Invoke the CLI in-process; assert the exit code, return the result."""
    from audit.cli import cli

    result = CliRunner(env=env).invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)
    assert result.exit_code == code, result.output + (result.stderr if result.stderr_bytes else "")
    return result
