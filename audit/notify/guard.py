"""Where a webhook may point: the web service refuses hosts that resolve to this machine or to private networks
(loopback, private, link-local, multicast, reserved, unspecified, shared address space) unless the operator allows
them (`serve --webhook-allow-private`): an account must not make the server probe the network it sits in.

Checked when a hook is registered and again before every attempt, since a name's DNS answer can change; the attempt
then connects to the addresses just checked, so a name that answers differently a moment later (DNS rebinding)
cannot turn it towards a private one. The hook of `watch --webhook` is the operator's own choice and is never checked.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from ..errors import InputError


def refused(ip: str) -> str | None:
    """Why an address is not a public one (None when it is)."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    for what in ("loopback", "link_local", "multicast", "reserved", "unspecified", "private"):
        if getattr(addr, f"is_{what}"):
            return what.replace("_", "-")
    if not addr.is_global:  # e.g. 100.64.0.0/10, the carrier-grade shared space
        return "not public"
    return None


def check_public(url: str) -> list[str]:
    """The addresses the URL's host resolves to; InputError unless every one is public (or when the host does not
    resolve). A delivery connects to these, not to a second DNS answer (deliver.send)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, ValueError) as exc:
        raise InputError(f"the webhook host '{host}' does not resolve ({exc})", code="bad-webhook-url") from exc
    for info in infos:
        why = refused(info[4][0])
        if why:
            raise InputError(f"the webhook host '{host}' resolves to {info[4][0]} ({why}); this server sends "
                             "only to public addresses unless its operator allows private ones "
                             "(serve --webhook-allow-private)", code="webhook-private-address")
    return list(dict.fromkeys(info[4][0] for info in infos))
