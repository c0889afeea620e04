"""The `users` and `serve` commands: accounts of the web service, and the server itself."""

from __future__ import annotations

import click

from .. import config
from ..service.accounts import Accounts  # plain SQLite: no need of the serve extra
from . import serveconfig
from .base import Context, Fail, cli, guarded

NEEDS_EXTRA = 'the web service needs its extra: pip install "likeness-audit[serve]"'


def _service_modules():
    try:
        from ..service import auth, state

        return auth, state
    except ImportError as exc:
        raise Fail(f"{NEEDS_EXTRA} ({exc.name} is missing)") from exc


@cli.group()
def users() -> None:
    """Accounts of the web service (admin, auditor, actor)."""


@users.command("add")
@click.argument("account")
@click.option("--role", type=click.Choice(["admin", "auditor", "actor"]), required=True, help="What the account may do.")
@click.option("--person", help="Actors: the registered person id the account speaks for (registered if missing).")
@click.option("--name", help="Actors: display name when the person is new (default: the person id).")
@click.pass_obj
@guarded
def users_add(obj: Context, account: str, role: str, person: str | None, name: str | None) -> None:
    """Create ACCOUNT; prints a one-time password and an API token (shown only now).

    \b
    Example:
      likeness-audit users add root --role admin
      likeness-audit users add alice --role actor --person alice
    """
    auth, _ = _service_modules()
    store = obj.store()
    if person and role == "actor":
        auth.check_id(person, "person id")
        if person not in store.names():
            store.add_samples(person, name, [], None)  # registered, nothing enrolled yet
    accounts = Accounts(store.home)
    try:
        _, password, token = auth.add_account(accounts, account, role, person, by="cli")
    finally:
        accounts.close()
    click.echo(f"password: {password}")
    click.echo(f"token: {token}")


@users.command("list")
@click.pass_obj
@guarded
def users_list(obj: Context) -> None:
    """List accounts (id, role, person).

    \b
    Example:
      likeness-audit users list
    """
    accounts = Accounts(obj.store(create=False).home)
    for u in accounts.users():
        click.echo(f"{u.id}\t{u.role}\t{u.person or ''}")
    accounts.close()


def _with_accounts(obj: Context, fn):
    """fn(auth, accounts) over the store's service accounts."""
    auth, _ = _service_modules()
    accounts = Accounts(obj.store(create=False).home)
    try:
        return fn(auth, accounts)
    finally:
        accounts.close()


@users.command("delete")
@click.argument("account")
@click.pass_obj
@guarded
def users_delete(obj: Context, account: str) -> None:
    """Delete ACCOUNT; its sessions and API token stop working at once (its scans stay).

    \b
    Example:
      likeness-audit users delete alice
    """
    _with_accounts(obj, lambda auth, accounts: auth.delete_account(accounts, account, by="cli"))
    click.echo(f"deleted account {account}")


@users.command("reset-password")
@click.argument("account")
@click.pass_obj
@guarded
def users_reset_password(obj: Context, account: str) -> None:
    """Give ACCOUNT a new one-time password (shown only now); its sessions end.

    \b
    Example:
      likeness-audit users reset-password alice
    """
    password = _with_accounts(obj, lambda auth, accounts: auth.reset_password(accounts, account, by="cli"))
    click.echo(f"password: {password}")


@users.command("rotate-token")
@click.argument("account")
@click.pass_obj
@guarded
def users_rotate_token(obj: Context, account: str) -> None:
    """Give ACCOUNT a new API token (shown only now); the old one is refused from the next request.

    \b
    Example:
      likeness-audit users rotate-token alice
    """
    token = _with_accounts(obj, lambda auth, accounts: auth.rotate_token(accounts, account, by="cli"))
    click.echo(f"token: {token}")


@cli.command()
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), is_eager=True,
              expose_value=False, callback=serveconfig.load,
              help="A TOML file of these options (keys: the option names, e.g. port = 8750, plus home, models, "
                   "threads, key-file); options given here override it.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8750, show_default=True, help="TCP port.")
@click.option("--scan-root", "scan_roots", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="A folder auditors may scan by path (JSON {\"paths\": [...]}); repeatable. Default: uploads only.")
@click.option("--max-upload-mb", type=click.FloatRange(0.01), default=config.SERVICE_MAX_UPLOAD_BYTES / 2**20,
              show_default=True, help="Largest request body.")
@click.option("--max-file-mb", type=click.FloatRange(0.01), default=config.SERVICE_MAX_FILE_BYTES / 2**20,
              show_default=True, help="Largest uploaded file.")
@click.option("--max-files", type=click.IntRange(1), default=config.SERVICE_MAX_FILES, show_default=True,
              help="Most files in one upload.")
@click.option("--scan-workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Scans run at the same time (one process each).")
@click.option("--session-hours", type=click.FloatRange(0.1), default=12.0, show_default=True, help="Login lifetime.")
@click.option("--secure-cookies", is_flag=True, help="Mark cookies Secure and send HSTS (behind HTTPS).")
@click.option("--trust-proxy", "trust_proxy", multiple=True, metavar="ADDR",
              help="A reverse proxy's address (or network, e.g. 10.0.0.0/8) whose X-Forwarded-For and "
                   "X-Forwarded-Proto are believed; repeatable. Default: none, so a client cannot choose the address "
                   "the login limits count.")
@click.option("--init-admin", metavar="ACCOUNT",
              help="On a service with no admin account yet, create ACCOUNT as admin and print its one-time password "
                   "and API token (as `users add` does); once an admin exists, nothing (safe on every start).")
@click.option("--log-format", type=click.Choice(["json", "text"]), default="json", show_default=True,
              help="Service log of requests and events: one JSON object per line, or plain text.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True, help="Least severe log line written (info: every request).")
@click.option("--log-file", type=click.Path(dir_okay=False), help="Append the log to this file (outside the store); "
              "default: stderr (journald under systemd).")
@click.option("--metrics", "metrics_access", type=click.Choice(["admin", "loopback", "off"]), default="admin",
              show_default=True, help="Who may read /metrics: an admin's Bearer token; also any client on this "
                                      "machine (loopback); or nobody.")
@click.option("--webhook-allow-private", is_flag=True,
              help="Let accounts' webhooks point at loopback, private, link-local or reserved addresses (refused by "
                   "default: an account must not make the server probe its own network).")
@click.pass_obj
@guarded
def serve(obj: Context, log_format: str, log_file: str | None, **options) -> None:
    """Run the actor portal and auditor API over the store (FastAPI on uvicorn).

    \b
    Example:
      likeness-audit serve --init-admin root --port 8750
      likeness-audit serve --config /etc/likeness-audit/likeness-audit.toml
    """
    import os
    from pathlib import Path

    _service_modules()
    from ..service import logs

    serveconfig.apply_globals(click.get_current_context(), obj)
    if log_file and Path(log_file).resolve().is_relative_to(Path(obj.home).resolve()):
        raise Fail(f"--log-file {log_file} is inside the store; write the log outside it (the store's erasure "
                   "does not rewrite logs)")
    if obj.key_file:  # scan workers are separate processes and take the key from the environment
        os.environ["AUDIT_KEY_FILE"] = str(Path(obj.key_file).resolve())
        os.environ.pop("AUDIT_KEY", None)
    handler = logs.configure(log_format, options["log_level"], Path(log_file) if log_file else None)
    try:
        _serve(obj, **options)
    finally:
        logs.unconfigure(handler)


def _serve(obj: Context, host, port, scan_roots, max_upload_mb, max_file_mb, max_files, scan_workers, session_hours,
           secure_cookies, trust_proxy, init_admin, log_level, metrics_access, webhook_allow_private) -> None:
    """Create the first admin if asked, then run the app on uvicorn until stopped."""
    from pathlib import Path

    import uvicorn

    from ..service import logs
    from ..service.app import create_app

    _, state = _service_modules()
    if init_admin:
        _init_admin(obj, init_admin)
    cfg = state.ServiceConfig(home=obj.home, models=obj.models, threads=obj.threads,
                              scan_roots=[Path(r).resolve() for r in scan_roots],
                              max_upload=int(max_upload_mb * 2**20), max_file=int(max_file_mb * 2**20),
                              max_files=max_files, session_hours=session_hours, secure_cookies=secure_cookies,
                              scan_workers=scan_workers, metrics=metrics_access,
                              webhook_allow_private=webhook_allow_private)
    app = create_app(cfg)
    logs.event("server.started", url=f"http://{host}:{port}/", store=str(cfg.home), scan_workers=scan_workers,
               metrics=metrics_access)
    # uvicorn believes proxy headers from 127.0.0.1 unless told otherwise: only the configured proxies here. Its own
    # access log is off (it prints client addresses and query strings); the service logs each request itself.
    uvicorn.run(app, host=host, port=port, log_level=log_level, log_config=None, access_log=False,
                server_header=False, proxy_headers=bool(trust_proxy), forwarded_allow_ips=list(trust_proxy) or None)


def _init_admin(obj: Context, account: str) -> None:
    """Create the first admin account when the service has none; print its secrets only then."""
    auth, _ = _service_modules()
    home = obj.store().home  # created when new, as the server would
    obj.close()  # the server opens its own
    accounts = Accounts(home)
    try:
        if any(u.role == "admin" for u in accounts.users()):
            return
        existing = accounts.user(account)
        if existing is not None:
            raise Fail(f"--init-admin {account}: the service has no admin, and '{account}' is an existing "
                       f"{existing.role} account; name another account (or make one with users add --role admin)")
        _, password, token = auth.add_account(accounts, account, "admin", None, by="serve --init-admin")
    finally:
        accounts.close()
    click.echo(f"password: {password}")
    click.echo(f"token: {token}")
