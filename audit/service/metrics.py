"""Prometheus metrics of one app: requests by route template and status, latency, scans, files and findings.

Each app has its own CollectorRegistry (never prometheus-client's global one), so tests can build several apps.
No label holds a person id, an account id or a path: routes are templates, and unknown paths are one label.
"""

from __future__ import annotations

import ipaddress

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

ACCESS = ("admin", "loopback", "off")  # who may read /metrics: admins; or loopback clients and admins; nobody
UNMATCHED = "unmatched"  # route label of a path no route has (a probe of /wp-admin), or of a body refused before routing
PREFIX = "likeness_audit"


class JobGauges:
    """Scans queued and running now, read from the job queue at each scrape."""

    def __init__(self, accounts):
        self.accounts = accounts

    def collect(self):
        gauge = GaugeMetricFamily(f"{PREFIX}_scans", "Scans in the queue now, by status.", labels=["status"])
        counts = self.accounts.job_counts()
        for status in ("queued", "running"):
            gauge.add_metric([status], counts.get(status, 0))
        yield gauge


class Metrics:
    """The app's metrics and the registry they are read from."""

    def __init__(self, accounts=None):
        self.collectors = r = CollectorRegistry(auto_describe=True)  # not ".registry": that name is the store's
        self.requests = Counter(f"{PREFIX}_http_requests", "HTTP requests answered, by method, route template "
                                "and status.", ["method", "route", "status"], registry=r)
        self.latency = Histogram(f"{PREFIX}_http_request_duration_seconds", "Time to answer a request, by method "
                                 "and route template.", ["method", "route"], registry=r,
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))
        self.scans_queued = Counter(f"{PREFIX}_scans_queued", "Scans queued since the server started.", registry=r)
        self.scans_finished = Counter(f"{PREFIX}_scans_finished", "Scans finished since the server started, by "
                                      "outcome (done or failed).", ["status"], registry=r)
        self.files = Counter(f"{PREFIX}_scanned_files", "Files scanned by finished scans.", registry=r)
        self.findings = Counter(f"{PREFIX}_findings", "Findings of finished scans.", registry=r)
        for status in ("done", "failed"):
            self.scans_finished.labels(status)  # present at 0 before the first scan ends
        if accounts is not None:
            r.register(JobGauges(accounts))

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def scan_finished(self, status: str, summary: dict | None) -> None:
        """Count one finished scan, its files and findings."""
        self.scans_finished.labels(status).inc()
        if summary:
            self.files.inc(summary.get("files", 0) or 0)
            self.findings.inc(summary.get("findings", 0) or 0)

    def render(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return generate_latest(self.collectors), CONTENT_TYPE_LATEST


def loopback(host: str | None) -> bool:
    """Whether a client address is this machine's own (127.0.0.0/8 or ::1)."""
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def may_read(access: str, role: str | None, client: str | None) -> bool:
    """Whether a request may read /metrics: an admin token (unless off); a loopback client when access is
    'loopback'."""
    if access == "off":
        return False
    return role == "admin" or (access == "loopback" and loopback(client))
