"""Where files are decoded and embedded: the local process pool (default) or a Ray cluster (optional extra)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import AuditError
from .analyze import AnalyzedFile, Analyzer, analyze_files
from .options import ScanOptions

Task = tuple[Path, "str | None"]  # a file and its SHA-256 when known


def analyze(tasks: list[Task], options: ScanOptions, analyzer: Analyzer) -> Iterator[AnalyzedFile]:
    """Analyse files in order with the engine the options name."""
    if options.engine == "ray":
        return _ray(tasks, options, analyzer.voice_enrolled)
    return analyze_files(tasks, options, analyzer)


class RayAnalyzer:
    """A Ray actor holding one Analyzer: the models load once per actor, not once per file."""

    def __init__(self, options: ScanOptions, voice_enrolled: bool):
        self.analyzer = Analyzer(options, voice_enrolled=voice_enrolled)
        self.analyzer.decoder_threads = 1  # one actor per CPU already

    def analyze(self, chunk: list[tuple[str, str | None]]) -> list[AnalyzedFile]:
        return [self.analyzer(Path(path), sha256) for path, sha256 in chunk]


def _connect(address: str | None):
    """Join the cluster at address (or $RAY_ADDRESS), else start a local Ray for this scan."""
    try:
        import ray
    except ImportError as exc:
        raise AuditError("--engine ray needs Ray: pip install 'likeness-audit[ray]'") from exc
    if ray.is_initialized():
        return ray, False
    # Ray's own notices (token auth, "connecting to...") would print over the scan's progress bar: its driver
    # logger is set to errors only, and the actors' output stays in Ray's session logs (log_to_driver=False).
    kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=True, logging_level=logging.ERROR)
    try:
        if address or os.environ.get("RAY_ADDRESS"):
            ray.init(address=address or None, **kwargs)
        else:
            ray.init(num_cpus=os.cpu_count(), **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise AuditError(f"cannot connect to Ray at {address or os.environ.get('RAY_ADDRESS')}: {exc}") from exc
    return ray, True


def _ray(tasks: list[Task], options: ScanOptions, voice_enrolled: bool) -> Iterator[AnalyzedFile]:
    """Analyse files on Ray actors, one per CPU of the cluster (or options.workers), results in order.

    Every node must see the files at the same paths (a shared file system) and have likeness-audit installed.
    """
    if not tasks:
        return
    ray, started = _connect(options.address)
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        count = max(1, min(options.workers or cpus, len(tasks)))
        actor = ray.remote(num_cpus=1)(RayAnalyzer)
        actors = [actor.remote(options, voice_enrolled) for _ in range(count)]
        # Small chunks, two in flight per actor: an actor starts its next chunk while the last one's results
        # travel back, instead of idling for a round trip per file (what ray.util.ActorPool does).
        size = max(1, min(4, len(tasks) // (4 * count)))
        chunks = [[(str(p), sha) for p, sha in tasks[i:i + size]] for i in range(0, len(tasks), size)]
        pending: dict[int, object] = {}
        try:
            for i in range(len(chunks)):
                for j in range(len(pending) + i, min(len(chunks), i + 2 * count)):
                    pending[j] = actors[j % count].analyze.remote(chunks[j])
                yield from ray.get(pending.pop(i))
        finally:
            for a in actors:
                ray.kill(a)
    finally:
        if started:
            ray.shutdown()
