"""Ledger stores. All keep, per member, its state (on SQLite and PostgreSQL a head and a row an
order or lot, engine/store/rows.py) plus append-only ledger rows and effects, and the id of every
applied event so a replay skips it (X-4)."""
from __future__ import annotations

from typing import Optional
from zoneinfo import ZoneInfo

from engine.store.base import DbSpec, RunStore, Store, StoreError, parse_db
from engine.store.memory import MemoryStore
from engine.store.sqlite import SQLiteStore


def open_store(url: str, program_id: str, zone: Optional[ZoneInfo] = None, *, any_thread: bool = False) -> Store:
    """The store a ``--db`` value names (``parse_db``), for ``program_id``'s ledger; ``zone``, the
    program's time zone, lets it read states stored by an older engine (engine/store/codec.py).
    ``any_thread``: a SQLite connection usable from any thread, one thread at a time (the caller
    serializes every use; engine/shell/service.py does)."""
    spec = parse_db(url)
    if spec.kind == "postgresql":
        try:
            import psycopg  # noqa: F401  (only PostgreSQL users need it: the `pg` extra)
        except ImportError:
            raise ValueError("a PostgreSQL --db needs psycopg: pip install 'loyalty-engine[pg]'") from None
        from engine.store.postgres import PostgresStore

        return PostgresStore(url, program_id, zone)
    if spec.kind == "memory":
        return MemoryStore(program_id)
    return SQLiteStore(url, program_id, zone, any_thread=any_thread)


__all__ = ["DbSpec", "RunStore", "Store", "StoreError", "MemoryStore", "SQLiteStore", "open_store", "parse_db"]
