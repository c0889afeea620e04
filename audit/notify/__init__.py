"""Notifications: new findings told to the accounts they concern, as signed webhook POSTs.

    from audit import notify
    notify.findings_found(store.home, findings, source="rematch")   # queues, returns at once

An auditor's (or admin's) hook hears of the findings of the scans it owns (`owner=`); an actor's hook of every
finding that names their person, whoever scanned. The summary sent names the person, scan, file, score, threshold
and time, never media. Deliveries go from a background thread with retries (deliver.py); the hooks and the delivery
log are store/webhooks.py's.
"""

from ..store.webhooks import CLI_ACCOUNT, NOTIFY_FILE, Delivery, Hook, Hooks, check_url
from .deliver import SIGNATURE, TIMESTAMP, dispatcher, sign, stop_all, verify
from .guard import check_public
from .queue import SOURCES, about, erase, findings_found, named, summary

__all__ = ["CLI_ACCOUNT", "NOTIFY_FILE", "SIGNATURE", "SOURCES", "TIMESTAMP", "Delivery", "Hook", "Hooks", "about",
           "check_public", "check_url", "dispatcher", "erase", "findings_found", "named", "sign", "stop_all",
           "summary", "verify"]
