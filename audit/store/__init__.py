"""Persistence: the Store is the only door to the registry, the indexes, the audit log and the keys."""

from .store import Candidate, Store, open_store
from .verify import VerifyReport

__all__ = ["Candidate", "Store", "VerifyReport", "open_store"]
