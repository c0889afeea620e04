"""Running the service as an operator does: a config file, an idempotent first start, JSON logs, metrics, readiness."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tests.helpers.server import Server, add_account, bearer

pytestmark = pytest.mark.service
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture()
def captured(monkeypatch):
    """`serve` up to the point it would listen: the ServiceConfig and uvicorn's arguments, no server."""
    import uvicorn

    from audit.service import app as service_app

    seen = {}

    def fake_create_app(cfg):
        seen["cfg"] = cfg
        return object()

    monkeypatch.setattr(service_app, "create_app", fake_create_app)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(uvicorn=kw))
    return seen


def serve(*args, env=None):
    from audit.cli import cli

    return CliRunner().invoke(cli, list(map(str, args)), env=env)


def test_config_file_sets_every_option_and_the_command_line_wins(tmp_path, captured, monkeypatch):
    monkeypatch.delenv("AUDIT_HOME", raising=False)
    (tmp_path / "media").mkdir()
    cfg_file = tmp_path / "etc" / "service.toml"
    cfg_file.parent.mkdir()
    cfg_file.write_text('''
home = "../store"              # relative to this file
threads = 2
host = "0.0.0.0"
port = 9000
scan-root = ["../media"]
max-upload-mb = 5
max-file-mb = 2.5
max-files = 7
scan-workers = 3
session-hours = 1.5
secure-cookies = true
trust-proxy = "10.0.0.0/8"     # one value for a repeatable option is fine
log-format = "text"
log-level = "warning"
metrics = "loopback"
''')
    out = serve("serve", "--config", cfg_file, "--port", "9001", "--metrics", "off")
    assert out.exit_code == 0, out.output
    cfg, kw = captured["cfg"], captured["uvicorn"]
    assert cfg.home == (tmp_path / "store").resolve() and cfg.threads == 2
    assert cfg.scan_roots == [(tmp_path / "media").resolve()]
    assert (cfg.max_upload, cfg.max_file, cfg.max_files) == (5 * 2**20, int(2.5 * 2**20), 7)
    assert (cfg.scan_workers, cfg.session_hours, cfg.secure_cookies) == (3, 1.5, True)
    assert cfg.metrics == "off"  # the command line beat the file's "loopback"
    assert kw["port"] == 9001 and kw["host"] == "0.0.0.0" and kw["log_level"] == "warning"
    assert kw["forwarded_allow_ips"] == ["10.0.0.0/8"] and kw["proxy_headers"] is True
    # --home on the command line beats the file's home
    out = serve("--home", tmp_path / "other", "serve", "--config", cfg_file)
    assert out.exit_code == 0, out.output
    assert captured["cfg"].home == (tmp_path / "other").resolve() and captured["uvicorn"]["port"] == 9000


def test_config_file_unknown_key_or_bad_value_is_a_usage_error(tmp_path, captured):
    bad = tmp_path / "bad.toml"
    bad.write_text('prot = 8750\n')
    out = serve("--home", tmp_path / "s", "serve", "--config", bad)
    assert out.exit_code == 2 and "unknown key 'prot' (did you mean 'port'?)" in out.output
    bad.write_text('[server]\nport = 1\n')
    out = serve("--home", tmp_path / "s", "serve", "--config", bad)
    assert out.exit_code == 2 and "unknown key 'server'" in out.output
    bad.write_text('port = "eighty"\n')
    out = serve("--home", tmp_path / "s", "serve", "--config", bad)
    assert out.exit_code == 2 and "--port" in out.output
    bad.write_text('port = \n')
    out = serve("--home", tmp_path / "s", "serve", "--config", bad)
    assert out.exit_code == 2 and "bad.toml" in out.output
    bad.write_text('log-file = "s/service.log"\n')  # inside the store
    out = serve("--home", tmp_path / "s", "serve", "--config", bad)
    assert out.exit_code == 2 and "inside the store" in out.output
    assert "cfg" not in captured  # no server was ever configured


def test_shipped_config_loads_and_is_the_documented_one(tmp_path, captured, monkeypatch):
    monkeypatch.delenv("AUDIT_HOME")
    shipped = REPO / "deploy" / "likeness-audit.toml"
    text = shipped.read_text()
    assert text.strip() in (REPO / "docs" / "operator.md").read_text()
    from audit.cli.serve import serve as command
    from audit.cli.serveconfig import GLOBALS, option_keys

    for key in [*option_keys(command), *GLOBALS]:  # every setting shown, set or commented out
        assert re.search(rf"^(# )?{key} = ", text, re.M), key
    local = tmp_path / "likeness-audit.toml"  # its absolute paths pointed here
    local.write_text(text.replace("/var/lib/likeness-audit", str(tmp_path / "state"))
                     .replace("/srv/media", str(tmp_path)))
    out = serve("serve", "--config", local)
    assert out.exit_code == 0, out.output
    assert captured["cfg"].home == tmp_path / "state"


def test_init_admin_through_the_cli_prints_secrets_once(tmp_path, captured):
    home = tmp_path / "store"
    add_account(home, "root", "auditor")
    out = serve("--home", home, "serve", "--init-admin", "root")
    assert out.exit_code == 2 and "'root' is an existing auditor account" in out.output
    out = serve("--home", home, "serve", "--init-admin", "boss")
    assert out.exit_code == 0 and re.fullmatch(r"password: \S+\ntoken: la_\S+\n", out.stdout), out.output
    again = serve("--home", home, "serve", "--init-admin", "boss")
    assert again.exit_code == 0 and again.stdout == "" and captured["cfg"].home == home
    listed = serve("--home", home, "users", "list")
    assert listed.stdout.splitlines() == ["boss\tadmin\t", "root\tauditor\t"]


def _records(server: Server) -> list[dict]:
    """The server log's JSON lines (stdout's password/token lines of --init-admin excluded)."""
    lines = [x for x in server.log_text().splitlines() if x.strip()]
    records = [json.loads(x) for x in lines if not x.startswith(("password: ", "token: "))]
    assert records and all(isinstance(r, dict) and r["event"] and r["time"] for r in records)
    return records


def test_init_admin_only_once_then_plain_start_and_json_logs(tmp_path, photos):
    home = tmp_path / "store"
    first = Server(home, "--init-admin", "root").start()
    try:
        lines = first.log_text().splitlines()
        secrets = dict(x.split(": ", 1) for x in lines if x.startswith(("password: ", "token: ")))
        password, token = secrets["password"], secrets["token"]
        assert token.startswith("la_")
        assert httpx.get(first.url + "/api/v1/me", headers=bearer(token)).json()["role"] == "admin"
    finally:
        first.stop()
    created = [r for r in _records(first) if r["event"] == "account.created"]
    assert created == [{**created[0], "account": "root", "role": "admin", "by": "serve --init-admin"}]
    assert token not in json.dumps(_records(first)) and password not in json.dumps(_records(first))
    second = Server(home, "--init-admin", "root").start()
    try:
        assert "password: " not in second.log_text() and "token: " not in second.log_text()
        url = second.url
        r = httpx.get(url + "/api/v1/me", headers=bearer(token))  # the first start's admin still works
        assert r.json() == {"id": "root", "role": "admin", "person": None}
        _, aud = add_account(home, "aud1", "auditor")
        httpx.get(url + "/api/v1/people/alice?token=" + token, headers=bearer(aud))  # a secret in a query
        client = httpx.Client(base_url=url)

        def login(user, pw):
            nonce = re.search(r'name="login_csrf" value="([^"]+)"', client.get("/login").text).group(1)
            return client.post("/login", data={"user": user, "password": pw, "login_csrf": nonce}).status_code

        # someone types their password into the account field: it must not reach the log
        assert [login("hunter2-secret", password), login("root", "wrong password"), login("root", password)] == [
            401, 401, 303]
        with open(photos["yaoming"], "rb") as f:
            r = httpx.post(url + "/api/v1/scans", headers=bearer(aud), files=[("files", ("a.jpg", f, "image/jpeg"))])
        jid = r.json()["id"]
        from tests.helpers.server import wait_scan

        outcome = wait_scan(url, aud, jid)["status"]  # failed: nobody is enrolled in this store
        httpx.get(url + "/readyz")
    finally:
        second.stop()
    text = second.log_text()
    records = _records(second)
    for secret in (token, password, aud, "hunter2-secret", "alice", str(photos["yaoming"].name)):
        assert secret not in text
    requests = [r for r in records if r["event"] == "request"]
    people = next(r for r in requests if r["route"] == "/api/v1/people/{pid}")
    assert people["account"] == "aud1" and people["role"] == "auditor" and people["status"] == 404
    assert isinstance(people["ms"], float) and people["method"] == "GET"
    events = [r["event"] for r in records]
    for name in ("server.started", "login.failed", "login.ok", "scan.queued", "scan.started", "scan.finished"):
        assert name in events, name
    failed = [r for r in records if r["event"] == "login.failed"]
    assert [r["account"] for r in failed] == [None, "root"]  # an unknown id is not repeated
    finished = next(r for r in records if r["event"] == "scan.finished")
    assert finished["job"] == jid and finished["account"] == "aud1" and finished["status"] == outcome == "failed"
    assert finished["level"] == "warning" and isinstance(finished["ms"], int)


def test_metrics_for_admins_only_by_default_and_loopback_when_asked(tmp_path):
    home = tmp_path / "store"
    _, admin = add_account(home, "root", "admin")
    _, aud = add_account(home, "aud", "auditor")
    server = Server(home).start()
    try:
        httpx.get(server.url + "/api/v1/me", headers=bearer(aud))
        assert httpx.get(server.url + "/metrics").status_code == 401
        assert httpx.get(server.url + "/metrics", headers=bearer(aud)).status_code == 403
        r = httpx.get(server.url + "/metrics", headers=bearer(admin))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        assert 'likeness_audit_http_requests_total{method="GET",route="/api/v1/me",status="200"} 1.0' in r.text
        assert 'likeness_audit_scans{status="queued"} 0.0' in r.text
        assert "likeness_audit_http_request_duration_seconds_bucket" in r.text
        assert 'route="/metrics",status="401"' in r.text and "aud" not in r.text.replace("audit", "")
    finally:
        server.stop()
    server = Server(home, "--metrics", "loopback").start()
    try:
        assert httpx.get(server.url + "/metrics").status_code == 200  # this test is on 127.0.0.1
    finally:
        server.stop()


def _app(tmp_path, **kw):
    from audit.service.app import create_app
    from audit.service.state import ServiceConfig

    return create_app(ServiceConfig(home=tmp_path / "store", key=None, warm_models=False, **kw))


def test_several_apps_in_one_process_each_count_their_own(tmp_path):
    from fastapi.testclient import TestClient

    from audit.service.metrics import loopback, may_read

    with TestClient(_app(tmp_path / "a", metrics="loopback")) as a, \
            TestClient(_app(tmp_path / "b", metrics="loopback")) as b:
        a.get("/healthz")
        a.get("/no/such/page")
        big = a.post("/api/v1/scans", content=b"x" * 100, headers={"content-length": str(2**40)})
        assert big.status_code == 413  # refused before routing: counted, with the route unknown
        assert a.app.state.service.metrics is not b.app.state.service.metrics
        text_a = a.app.state.service.metrics.render()[0].decode()
        text_b = b.app.state.service.metrics.render()[0].decode()
        assert 'route="/healthz",status="200"} 1.0' in text_a and 'route="/healthz"' not in text_b
        assert 'route="unmatched",status="404"' in text_a  # probes of unknown paths share one label
        assert 'method="POST",route="unmatched",status="413"' in text_a
    assert loopback("127.0.0.1") and loopback("::1") and not loopback("10.0.0.1") and not loopback(None)
    assert may_read("admin", "admin", "10.0.0.1") and not may_read("admin", None, "127.0.0.1")
    assert may_read("loopback", None, "127.0.0.1") and not may_read("loopback", "auditor", "10.0.0.1")
    assert not may_read("off", "admin", "127.0.0.1")


def test_readyz_is_503_until_models_load_and_healthz_stays_200(tmp_path):
    from fastapi.testclient import TestClient

    from audit.service.app import create_app
    from audit.service.state import ServiceConfig

    broken = tmp_path / "models"
    broken.mkdir()  # an empty model pack folder: the face models cannot load
    app = create_app(ServiceConfig(home=tmp_path / "store", key=None, models=str(broken)))
    with TestClient(app) as client:
        import time

        deadline = time.monotonic() + 60
        while app.state.service.models_state == "loading" and time.monotonic() < deadline:
            time.sleep(0.1)
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["checks"]["models"] == "failed", r.text
        assert r.json()["checks"]["store"] == "ok" and str(tmp_path) not in r.text
        assert client.get("/healthz").status_code == 200
    with TestClient(_app(tmp_path / "ok")) as client:
        r = client.get("/readyz")
        assert r.status_code == 200 and r.json() == {"status": "ready", "checks": {
            "store": "ok", "models": "ok", "scan workers": "ok"}}
        client.app.state.service.runner.stop()
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["checks"]["scan workers"] == "stopped"


def test_log_formats_to_a_file_and_back_to_quiet(tmp_path):
    from audit.service import logs

    for fmt in ("json", "text"):
        path = tmp_path / f"service-{fmt}.log"
        handler = logs.configure(fmt, "info", path)
        logs.event("scan.queued", job="abc123", account="aud1")
        logs.event("debug.detail", level=10, job="hidden")  # below the level: not written
        logs.unconfigure(handler)
        logs.event("scan.queued", job="after")  # not configured any more: goes nowhere
        lines = path.read_text().splitlines()
        assert len(lines) == 1
        if fmt == "json":
            record = json.loads(lines[0])
            assert {k: record[k] for k in ("level", "event", "job", "account")} == {
                "level": "info", "event": "scan.queued", "job": "abc123", "account": "aud1"}
        else:
            assert lines[0].endswith(" info scan.queued job=abc123 account=aud1")
