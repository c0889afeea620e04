"""An index's manifest: what its segments hold, with their checksums, sealed with the store's key so that index
contents are bound to the store (a manifest whose checksums were rewritten without the key is refused)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import files
from ...errors import StoreError
from ..files import atomic_write
from ..log import seals


@dataclass
class SegManifest:
    """What the segments of one index hold; the JSON beside them."""

    modality: str
    model: str
    dim: int
    count: int
    state: list[int]  # (count, sum, hash sum) of the live ids: compared with the registry's id_state on open
    kind: str = "flat"  # base kind: flat | pqfs | ivf
    base: str | None = None
    base_sha256: str = ""
    rerank: str | None = None  # pqfs: the vectors and ids of the base's positions
    rerank_sha256: str = ""
    base_count: int = 0
    delta: str | None = None
    delta_sha256: str = ""
    removed: list[int] = field(default_factory=list)  # base ids removed since the last compaction
    nlist: int = 0
    nprobe: int = 0
    trained: int = 0  # vectors the IVF base was trained on
    generation: int = 0
    version: int = 2

    @property
    def file_sha256(self) -> str:
        """One digest of the whole index state, for findings."""
        rerank = f"|{self.rerank_sha256}" if self.rerank else ""
        state = f"{self.base_sha256}|{self.delta_sha256}|{sorted(self.removed)}{rerank}"
        return hashlib.sha256(state.encode()).hexdigest()


def read(path: Path, registry=None) -> SegManifest | None:
    """The manifest at path (None when there is none); StoreError when it is unreadable, of the old format, or,
    once the store seals its manifests (registry given), without a valid seal."""
    try:
        data = json.loads(files.read_bytes(path))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read index manifest {path.name}: {exc}") from exc
    if not isinstance(data, dict) or data.get("version") != 2:
        raise StoreError(f"index {path.name} is of an older format; run `likeness-audit verify --repair`")
    seal = data.pop("seal", None)
    if seal is not None or (registry is not None and registry.meta(seals.INDEX_SEALS)):
        if not seals.same(seal, _seal(data, registry)):
            raise StoreError(f"index manifest {path.name} does not carry the store's seal: the index was altered "
                             "(its checksums rewritten) or comes from another store; run `likeness-audit verify`")
    try:
        return SegManifest(**data)
    except TypeError as exc:
        raise StoreError(f"index manifest {path.name} is damaged: {exc}") from exc


def write(path: Path, man: SegManifest, registry=None) -> None:
    """Write a manifest, sealed when the store has a key."""
    data = asdict(man)
    data["seal"] = _seal(data, registry)
    atomic_write(path, json.dumps(data, indent=1).encode())


def _seal(data: dict, registry) -> str | None:
    """The manifest's MAC under the store's key (None for a store without one yet)."""
    if registry is None:
        return None
    sealer = seals.current(registry)
    if sealer.key is None:
        return None
    return sealer.manifest(json.dumps({k: v for k, v in data.items() if k != "seal"}, sort_keys=True))
