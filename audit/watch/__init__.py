"""Watched folders: files scanned as they arrive, once whole, never twice (see run.py)."""

from .folders import Watcher, readable_folder
from .run import WatchScan, watch
from .settle import SETTLE_S, Settler, open_for_writing

__all__ = ["SETTLE_S", "Settler", "WatchScan", "Watcher", "open_for_writing", "readable_folder", "watch"]
