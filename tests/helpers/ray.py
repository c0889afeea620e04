"""A two-node Ray cluster on this machine, started by a test and stopped after it."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers.server import free_port


@contextmanager
def two_nodes(monkeypatch) -> Iterator[str]:
    """Start a head and a worker node with `ray start --block`; yields the cluster's address."""
    # Reached on localhost: no token authentication (a real cluster keeps Ray's default token auth; docs/archives.md).
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    ray_cli = str(Path(sys.executable).parent / "ray")
    port = free_port()
    address = f"127.0.0.1:{port}"
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # Ray's socket paths must stay short
    common = ["--num-cpus", "1", "--object-store-memory", str(100 * 2**20), "--block", "--disable-usage-stats"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    nodes = [subprocess.Popen([ray_cli, "start", "--head", "--port", str(port), "--temp-dir", temp,
                               "--include-dashboard", "false", *common], **quiet)]
    try:
        _wait_for_nodes(address, 1)
        nodes.append(subprocess.Popen([ray_cli, "start", "--address", address, *common], **quiet))
        _wait_for_nodes(address, 2)
        yield address
    finally:
        for node in reversed(nodes):  # `ray start --block` stops its node's processes when terminated
            node.terminate()
        for node in nodes:
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                node.kill()


def _wait_for_nodes(address: str, count: int, timeout: float = 120) -> None:
    """Wait until the cluster at address has count alive nodes (asked from a child: ray.init is per process)."""
    probe = ("import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False, configure_logging=False); "
             "print(sum(n['Alive'] for n in ray.nodes()))")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run([sys.executable, "-c", probe, address], capture_output=True, text=True, timeout=120)
        if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(count)]:
            return
        time.sleep(1)
    raise AssertionError(f"the Ray cluster at {address} did not reach {count} nodes")
