"""Ledger stores. All keep, per member, one state blob plus append-only ledger rows and effects,
and the id of every applied event so a replay skips it (X-4)."""
from __future__ import annotations

from .base import Store
from .memory import MemoryStore
from .sqlite import SQLiteStore


def open_store(url: str, program_id: str) -> Store:
    if url.startswith(("postgresql://", "postgres://")):
        raise ValueError("the PostgreSQL store is not part of this build yet; use a SQLite path or :memory:")
    if url == ":memory:":
        return MemoryStore(program_id)
    return SQLiteStore(url, program_id)


__all__ = ["Store", "MemoryStore", "SQLiteStore", "open_store"]
