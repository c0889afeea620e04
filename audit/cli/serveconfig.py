"""`serve --config FILE`: a TOML file whose keys are serve's option names; the command line overrides it.

Every key is the long name of an option of `serve` (`port`, `scan-root`, `max-upload-mb`, `log-format`, ...) or of
the global options a server needs (`home`, `models`, `threads`, `key-file`). An unknown key is a usage error that
names it, so a typo never leaves a setting silently at its default. Relative paths are relative to the file.
"""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path

import click

from .. import config

GLOBALS = {"home": "home", "models": "models", "threads": "threads", "key-file": "key_file"}  # key -> group param
PATHS = {"home", "models", "key-file", "scan-root", "log-file"}  # relative to the file's folder
META = "serve.config"  # ctx.meta key: the file's values for the group's options


def option_keys(command: click.Command) -> dict[str, click.Option]:
    """Config key -> option, for every option of the command that takes a value from a file."""
    keys = {}
    for param in command.params:
        if isinstance(param, click.Option) and param.name not in ("config_file", "help"):
            long = max(param.opts, key=len)
            keys[long.lstrip("-")] = param
    return keys


def read(path: Path) -> dict:
    """The file's top-level table; a TOML syntax error is a usage error with its line."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise click.UsageError(f"config file {path}: {exc}") from exc
    except OSError as exc:
        raise click.UsageError(f"cannot read config file {path}: {exc.strerror}") from exc


def load(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """Eager callback of --config: the file's values become the command's defaults (ctx.default_map), so an
    option given on the command line still wins; the global options' values wait in ctx.meta for apply_globals."""
    if not value:
        return
    path = Path(value).resolve()
    data = read(path)
    keys = option_keys(ctx.command)
    defaults, globals_ = {}, {}
    for key, raw in data.items():
        if key not in keys and key not in GLOBALS:
            near = difflib.get_close_matches(key.replace("_", "-"), [*keys, *GLOBALS], n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            raise click.UsageError(f"config file {path}: unknown key '{key}'{hint}; the keys are serve's option "
                                   f"names: {', '.join(sorted([*keys, *GLOBALS]))}", ctx)
        if isinstance(raw, dict):
            raise click.UsageError(f"config file {path}: '{key}' is a table; write keys at the top level", ctx)
        if key in PATHS:
            raw = [_beside(path, v, key) for v in raw] if isinstance(raw, list) else _beside(path, raw, key)
        if key in GLOBALS:
            globals_[GLOBALS[key]] = raw
        else:
            option = keys[key]
            if option.multiple and not isinstance(raw, list):
                raw = [raw]
            defaults[option.name] = raw
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    ctx.meta[META] = globals_


def _beside(path: Path, value, key: str) -> str:
    if not isinstance(value, str):
        raise click.UsageError(f"config file {path}: '{key}' must be a path (a string), not {value!r}")
    return str((path.parent / Path(value).expanduser()).resolve())


def apply_globals(ctx: click.Context, obj) -> None:
    """Set the store options the file gives, unless the command line or the environment gave them."""
    given = ctx.meta.get(META) or {}
    group = ctx.parent
    for name, value in given.items():
        source = group.get_parameter_source(name) if group else None
        if source not in (None, click.core.ParameterSource.DEFAULT):
            continue  # the command line (or $AUDIT_HOME, $AUDIT_MODELS) wins
        if name == "threads":
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 256:
                raise click.UsageError(f"config file: 'threads' must be a whole number from 1 to 256, not {value!r}")
            obj.threads = value
        elif name == "home":
            obj.home = config.home(value)
        else:
            setattr(obj, name, value)
