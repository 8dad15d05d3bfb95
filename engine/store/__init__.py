"""Ledger stores. All keep, per member, one state blob plus append-only ledger rows and effects,
and the id of every applied event so a replay skips it (X-4)."""
from __future__ import annotations

from typing import Optional
from zoneinfo import ZoneInfo

from engine.store.base import Store
from engine.store.memory import MemoryStore
from engine.store.sqlite import SQLiteStore


def open_store(url: str, program_id: str, zone: Optional[ZoneInfo] = None) -> Store:
    """The ledger at ``url`` for program ``program_id``; ``zone``, the program's time zone, lets it
    read states stored by an older engine (engine/store/codec.py)."""
    if url.startswith(("postgresql://", "postgres://")):
        try:
            import psycopg  # noqa: F401  (only PostgreSQL users need it: the `pg` extra)
        except ImportError:
            raise ValueError("a PostgreSQL --db needs psycopg: pip install 'loyalty-engine[pg]'") from None
        from engine.store.postgres import PostgresStore

        return PostgresStore(url, program_id, zone)
    if url == ":memory:":
        return MemoryStore(program_id)
    return SQLiteStore(url, program_id, zone)


__all__ = ["Store", "MemoryStore", "SQLiteStore", "open_store"]
