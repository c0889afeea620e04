"""The deployment files: the Containerfile's install steps run here as a script, the systemd unit's settings."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Containerfile, continuation lines joined, comments dropped."""
    text = path.read_text().replace("\\\n", " ")
    lines = [x.strip() for x in text.splitlines() if x.strip() and not x.strip().startswith("#")]
    return [(x.split(None, 1)[0].upper(), x.split(None, 1)[1]) for x in lines]


def test_containerfile_installs_with_the_script_and_serves_the_shipped_config():
    steps = _instructions(DEPLOY / "Containerfile")
    runs = [args for op, args in steps if op == "RUN"]
    assert any("deploy/install.sh /src /opt/likeness-audit" in r for r in runs)
    copies = [args.split() for op, args in steps if op == "COPY"]
    assert ["deploy/likeness-audit.toml", "/etc/likeness-audit/likeness-audit.toml"] in copies
    entry = next(args for op, args in steps if op == "ENTRYPOINT")
    assert "/etc/likeness-audit/likeness-audit.toml" in entry and "/opt/likeness-audit/bin/likeness-audit" in entry
    home = tomllib.loads((DEPLOY / "likeness-audit.toml").read_text())["home"]
    assert ("VOLUME", home) in steps and any(op == "HEALTHCHECK" and "/readyz" in a for op, a in steps)


def test_systemd_unit_is_hardened_and_keeps_the_store_in_its_state_directory():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # systemd keys are case-sensitive
    unit.read(DEPLOY / "likeness-audit.service")
    service = unit["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == "/opt/likeness-audit/bin/likeness-audit" and argv[argv.index("serve") + 1:] == [
        "--config", "/etc/likeness-audit/likeness-audit.toml"]
    home = tomllib.loads((DEPLOY / "likeness-audit.toml").read_text())["home"]
    assert home == "/var/lib/" + service["StateDirectory"]  # the one folder ProtectSystem=strict leaves writable
    for key, value in {"DynamicUser": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
                       "NoNewPrivileges": "yes", "StateDirectoryMode": "0700", "UMask": "0077",
                       "KillSignal": "SIGINT"}.items():
        assert service[key] == value, key
    assert "--init-admin" not in service["ExecStart"]  # its secrets would go to the journal
    if shutil.which("systemd-analyze"):
        out = subprocess.run(["systemd-analyze", "verify", str(DEPLOY / "likeness-audit.service")],
                             capture_output=True, text=True)
        assert "Unknown key" not in out.stderr and "Unknown section" not in out.stderr, out.stderr


@pytest.mark.slow
def test_install_script_builds_a_working_environment(tmp_path):
    """deploy/install.sh (the Containerfile's install step) run here: a fresh environment from a copy of the
    checkout, built without the network (its dependencies are this test environment's, read-only)."""
    from importlib.metadata import version

    if int(version("setuptools").split(".")[0]) < 77:
        pytest.skip("the build needs setuptools>=77 in this environment (the test extra brings it)")
    src = tmp_path / "src"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True)
    if listed.returncode == 0:
        for name in filter(None, listed.stdout.decode().split("\0")):
            if (REPO / name).is_file():
                (src / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / name, src / name)
    else:  # not a git checkout (an unpacked source archive)
        shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".venv", "build", "*.egg-info", "__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # pip, setuptools and the dependencies come from this environment, appended to the new one's path
    site = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "borrowed.pth").write_text(sysconfig.get_path("purelib") + "\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PIP_OPTS": "--no-index --no-build-isolation"}
    out = subprocess.run(["sh", str(src / "deploy" / "install.sh"), str(src), str(venv)], capture_output=True,
                         text=True, env=env, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "likeness-audit, version" in out.stdout and f"installed likeness-audit in {venv}" in out.stdout
    installed = Path(site, "audit", "__init__.py")
    assert installed.is_file()  # the package itself is the new environment's own copy
    helped = subprocess.run([str(venv / "bin" / "likeness-audit"), "serve", "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "--config" in helped.stdout and "--init-admin" in helped.stdout
