"""Named crash points in store writes, for the crash-safety tests; inert unless the test variables are set.

``AUDIT_TEST_KILL_AT=NAME`` (or ``NAME#N`` for the N-th time the point is reached) makes the process SIGKILL
itself there, the way a power cut or the OOM killer would stop it. ``AUDIT_TEST_KILL_TRACE=FILE`` appends
``NAME#N`` for every point reached, so a test can first list the points of an operation and then kill at each.
"""

from __future__ import annotations

import os
import signal

KILL_ENV = "AUDIT_TEST_KILL_AT"
TRACE_ENV = "AUDIT_TEST_KILL_TRACE"

_hits: dict[str, int] = {}


def point(name: str) -> None:
    """Mark a crash point: die here when AUDIT_TEST_KILL_AT names it; note it when tracing."""
    target = os.environ.get(KILL_ENV)
    trace = os.environ.get(TRACE_ENV)
    if not target and not trace:
        return
    n = _hits[name] = _hits.get(name, 0) + 1
    hit = f"{name}#{n}"
    if trace:
        with open(trace, "a") as f:
            f.write(hit + "\n")
    if target in (name, hit):
        os.kill(os.getpid(), signal.SIGKILL)
