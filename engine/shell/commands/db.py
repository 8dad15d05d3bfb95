"""`loyalty db`: the ledger database itself. `loyalty db upgrade --db URL` applies the schema
migrations a PostgreSQL ledger lacks, or upgrades an existing SQLite ledger (either store also
upgrades itself on first use)."""
from __future__ import annotations

import sys

import click


@click.group()
def db() -> None:
    """The ledger database: create and upgrade its schema."""


def _upgrade_sqlite(path: str) -> None:
    """An existing SQLite ledger: the steps its store takes on opening (booked times, closes)."""
    from pathlib import Path

    from engine.store.sqlite import StoreError, upgrade

    if not Path(path).is_file():
        click.echo(f"{path}: neither a PostgreSQL URL (postgresql://user@host:port/dbname) nor an existing SQLite "
                   "ledger (a new SQLite ledger creates its schema itself)", err=True)
        sys.exit(1)
    try:
        before, after = upgrade(path)
    except StoreError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    done = "already current" if before == after else f"upgraded from version {before}"
    click.echo(f"SQLite ledger {path}: schema at version {after} ({done})")


@db.command()
@click.option("--db", "url", required=True, metavar="URL",
              help="PostgreSQL URL (postgresql://user@host:port/dbname) or an existing SQLite ledger's path")
def upgrade(url: str) -> None:
    """Create or upgrade the ledger schema (versioned migrations). Safe to run at any time and
    from many hosts at once: one applies, the others find it current."""
    from engine.store.base import parse_db

    if parse_db(url).kind != "postgresql":
        _upgrade_sqlite(url)
        return
    try:
        import psycopg
    except ImportError:
        click.echo("a PostgreSQL --db needs psycopg: pip install 'loyalty-engine[pg]'", err=True)
        sys.exit(1)
    from engine.store.postgres import LATEST, connect, migrate, redact
    from engine.store.sqlite import StoreError

    name = f"PostgreSQL store {redact(url)}"
    try:
        conn = connect(url)
        try:
            applied = migrate(conn, name)
        finally:
            conn.close()
    except StoreError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    except psycopg.Error as exc:
        click.echo(f"{name}: {' '.join(str(exc).split())}", err=True)
        sys.exit(1)
    done = f"applied migration(s) {', '.join(map(str, applied))}" if applied else "already current"
    click.echo(f"{name}: schema at version {LATEST} ({done})")


COMMANDS = [db]
