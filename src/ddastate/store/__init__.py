"""ddastate.store: the local key-value storage service.

``open_store(engine, location)`` returns a :class:`Store`: the ``sqlite`` engine
(default, durable) at a directory, or the ``memory`` engine when ``location`` is empty.
The reference's engine name ``pebble`` is accepted and mapped to the default, with a warning.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .api import Store, StoreClosedError, StoreError, StoreLockedError, WriteBatch, key_upper_bound
from .memory import MemoryStore
from .sqlite import SqliteStore

if TYPE_CHECKING:
    from ddastate.config import Config

log = logging.getLogger(__name__)

DEFAULT_ENGINE = "sqlite"
ENGINES = ("sqlite", "memory", "pebble")


def normalize_engine(engine: str | None) -> str:
    """The engine a configured name stands for; raises StoreError for unknown names."""
    name = (engine or DEFAULT_ENGINE).strip().lower()
    if name == "pebble":
        log.warning(
            "store engine 'pebble' is not available in ddastate; using the default engine %r",
            DEFAULT_ENGINE,
        )
        return DEFAULT_ENGINE
    if name not in ("sqlite", "memory"):
        raise StoreError(
            f"unknown store engine {engine!r} (expected one of: sqlite, memory, pebble)"
        )
    return name


def open_store(engine: str | None = DEFAULT_ENGINE, location: str = "") -> Store:
    """Open a store; an empty ``location`` gives the in-memory engine whatever the engine name."""
    name = normalize_engine(engine)
    if not location or name == "memory":
        return MemoryStore()
    return SqliteStore(location)


def open_store_from_config(cfg: Config) -> Store:
    """Open the store service of a DDA configuration (``services.store``)."""
    st = cfg.services.store
    return open_store(st.engine, st.location)


__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "MemoryStore",
    "SqliteStore",
    "Store",
    "StoreClosedError",
    "StoreError",
    "StoreLockedError",
    "WriteBatch",
    "key_upper_bound",
    "normalize_engine",
    "open_store",
    "open_store_from_config",
]
