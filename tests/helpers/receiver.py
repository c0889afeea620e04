"""A webhook receiver on loopback: a tiny http.server in a thread that keeps what it was sent."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """Records every POST (headers, body); answers `status`, after `hold` is set when `block` is on."""

    def __init__(self, status: int = 204, block: bool = False):
        self.got: list[tuple[dict, bytes]] = []
        self.status = status
        self.hold = threading.Event()
        if not block:
            self.hold.set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.hold.wait(30)
                outer.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int = 1, timeout: float = 60) -> list[tuple[dict, bytes]]:
        """The first `count` deliveries, waiting up to timeout seconds for them."""
        deadline = time.monotonic() + timeout
        while len(self.got) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.got) >= count, f"{len(self.got)} of {count} deliveries arrived"
        return self.got[:count]

    def close(self) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()
