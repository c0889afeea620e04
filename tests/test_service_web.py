"""What the API and the pages share: one person-id rule, one upload filter, one error mapping."""

from __future__ import annotations

import re

import httpx
import pytest

from serve_util import Server, add_account, bearer


@pytest.fixture(scope="module")
def door(tmp_path_factory, photos):
    """A server where `_alice` (an id the CLI accepts) is enrolled, with an admin and her actor account."""
    from click.testing import CliRunner

    from audit.cli import cli

    home = tmp_path_factory.mktemp("web") / "store"
    done = CliRunner().invoke(cli, ["--home", str(home), "enroll", "face", "_alice", str(photos["yaoming"])])
    assert done.exit_code == 0, done.output
    tokens, passwords = {}, {}
    for uid, role, person in [("root", "admin", None), ("al", "actor", "_alice"), ("aud", "auditor", None)]:
        passwords[uid], tokens[uid] = add_account(home, uid, role, person)
    server = Server(home).start()
    yield {"url": server.url, "tokens": tokens, "passwords": passwords}
    server.stop()


def _login(url: str, uid: str, password: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=url)
    nonce = re.search(r'name="login_csrf" value="([^"]+)"', client.get("/login").text).group(1)
    r = client.post("/login", data={"user": uid, "password": password, "login_csrf": nonce})
    assert r.status_code == 303, r.text
    return client, re.search(r'name="csrf" value="([^"]+)"', client.get(r.headers["location"]).text).group(1)


def test_id_enrolled_from_the_cli_is_accepted_by_the_api(door, photos):
    url, tokens = door["url"], door["tokens"]
    for uid in ("root", "al"):
        r = httpx.get(f"{url}/api/v1/people/_alice", headers=bearer(tokens[uid]))
        assert r.status_code == 200 and r.json()["id"] == "_alice", r.text
    with open(photos["yaoming"], "rb") as f:
        r = httpx.post(f"{url}/api/v1/people/_alice/faces", headers=bearer(tokens["al"]),
                       files=[("files", ("me.jpg", f, "image/jpeg"))])
    assert r.status_code == 200 and r.json()["already"] == 1, r.text
    r = httpx.post(f"{url}/api/v1/people/-x/faces", headers=bearer(tokens["root"]),
                   files=[("files", ("me.jpg", b"x", "image/jpeg"))])
    assert r.status_code == 400 and "not starting with '-'" in r.text
