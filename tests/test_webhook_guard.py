"""Webhooks may not make the server probe its own network: hosts resolving to loopback, private, link-local,
multicast or reserved addresses are refused at registration and before each attempt, unless the operator allows
them; the CLI's own `watch --webhook` is the operator's choice and is never checked."""

from __future__ import annotations

import time

import httpx
import pytest

from audit import notify
from audit.errors import InputError
from audit.notify import deliver, guard
from tests.helpers.receiver import Receiver
from tests.helpers.server import Server, add_account, bearer

MATCH = {"kind": "match", "modality": "face", "person": "alice", "path": "spot.jpg", "similarity": 0.71,
         "threshold": 0.4, "sha256": "ab" * 32}


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(deliver, "BACKOFF_S", 0.05)
    monkeypatch.setattr(deliver, "ATTEMPTS", 2)
    yield
    notify.stop_all()


@pytest.mark.parametrize("url", ["http://127.0.0.1:8/x", "http://localhost/x", "http://[::1]/x",
                                 "http://169.254.169.254/latest/meta-data", "https://10.1.2.3/x",
                                 "http://192.168.0.1/x", "http://172.16.0.1/", "http://224.0.0.1/",
                                 "http://0.0.0.0/", "http://[::ffff:127.0.0.1]/", "http://[fe80::1]/",
                                 "http://100.64.0.1/", "http://240.0.0.1/"])
def test_private_addresses_are_refused(url):
    with pytest.raises(InputError, match="resolves to") as err:
        notify.check_public(url)
    assert err.value.code == "webhook-private-address"


def test_public_addresses_pass():
    notify.check_public("https://8.8.8.8/hook")
    notify.check_public("http://[2001:4860:4860::8888]/hook")
    assert guard.refused("1.1.1.1") is None and guard.refused("127.0.0.2") == "loopback"


def test_delivery_time_check_refuses_a_host_that_turned_private(tmp_path):
    """A hook registered while its name resolved to a public address, now resolving to loopback, gets nothing;
    the CLI's hook to loopback is sent."""
    web, cli = Receiver(), Receiver()
    try:
        hooks = notify.Hooks(tmp_path)
        hooks.register("aud", "auditor", web.url)  # as if its DNS had changed since the check at registration
        hooks.register(notify.CLI_ACCOUNT, "auditor", cli.url)
        hooks.close()
        notify.findings_found(tmp_path, [MATCH], source="scan", owner="aud")
        notify.findings_found(tmp_path, [MATCH], source="watch", owner=notify.CLI_ACCOUNT)
        assert len(cli.wait(1)) == 1
        hooks = notify.Hooks(tmp_path)
        deadline = time.monotonic() + 30
        while hooks.log("aud")[0].status != "failed" and time.monotonic() < deadline:
            time.sleep(0.05)
        (d,) = hooks.log("aud")
        hooks.close()
        assert d.status == "failed" and "refused" in d.last_error and "127.0.0.1 (loopback)" in d.last_error
        assert web.got == []
    finally:
        web.close()
        cli.close()


def test_a_delivery_connects_to_the_address_it_checked(tmp_path, monkeypatch):
    """DNS rebinding: the name answers a checked address at the check and another one a moment later. The attempt
    connects to the address checked (here the loopback receiver, the check made to pass), never resolving again."""
    receiver = Receiver()
    port = receiver.server.server_port
    real = guard.socket.getaddrinfo
    answers = []

    def rebinding(host, *args, **kwargs):
        if host != "hooks.example":
            return real(host, *args, **kwargs)
        answers.append(host)  # first answer: the receiver; any later one: an address nothing listens on
        ip = "127.0.0.1" if len(answers) == 1 else "127.0.0.2"
        return [(guard.socket.AF_INET, guard.socket.SOCK_STREAM, 6, "", (ip, port))]

    monkeypatch.setattr(guard.socket, "getaddrinfo", rebinding)
    monkeypatch.setattr(guard, "refused", lambda ip: None)  # as if 127.0.0.1 were the public address checked
    try:
        hooks = notify.Hooks(tmp_path)
        hooks.register("aud", "auditor", f"http://hooks.example:{port}/hook")
        hooks.close()
        notify.findings_found(tmp_path, [MATCH], source="scan", owner="aud")
        ((headers, body),) = receiver.wait(1)
        assert headers["host"] == f"hooks.example:{port}" and b'"alice"' in body
        assert answers == ["hooks.example"]  # resolved once, for the check
    finally:
        receiver.close()


@pytest.mark.service
def test_the_service_refuses_private_webhooks_unless_allowed(tmp_path):
    home = tmp_path / "store"
    _, token = add_account(home, "aud", "auditor")
    server = Server(home).start()
    try:
        r = httpx.put(server.url + "/api/v1/webhook", headers=bearer(token), json={"url": "http://127.0.0.1:9/x"})
        assert r.status_code == 400 and "webhook-allow-private" in r.text, r.text
        r = httpx.put(server.url + "/api/v1/webhook", headers=bearer(token), json={"url": "http://8.8.8.8/x"})
        assert r.status_code == 200, r.text
    finally:
        server.stop()
    server = Server(home, "--webhook-allow-private").start()
    try:
        r = httpx.put(server.url + "/api/v1/webhook", headers=bearer(token), json={"url": "http://127.0.0.1:9/x"})
        assert r.status_code == 200, r.text
    finally:
        server.stop()
