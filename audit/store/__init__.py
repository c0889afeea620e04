"""Persistence: the Store is the only door to the registry, the indexes, the audit log and the keys."""

from .store import Candidate, Store

__all__ = ["Candidate", "Store"]
