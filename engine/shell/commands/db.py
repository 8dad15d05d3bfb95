"""`loyalty db`: the ledger database itself. `loyalty db upgrade --db URL` applies the schema
migrations a PostgreSQL ledger lacks, or upgrades an existing SQLite ledger (either store also
upgrades itself on first use)."""
from __future__ import annotations

import sys
from typing import Optional

import click

from engine.shell.commands import lang_option, language


@click.group()
def db() -> None:
    """The ledger database: create and upgrade its schema."""


def _upgrade_sqlite(path: str, lang: str = "en") -> None:
    """An existing SQLite ledger: the steps its store takes on opening (booked times, closes)."""
    from pathlib import Path

    from engine.format.messages import word
    from engine.store.sqlite import StoreError, upgrade

    if not Path(path).is_file():
        click.echo(word("db.not_a_ledger", lang, path=path), err=True)
        sys.exit(1)
    try:
        before, after = upgrade(path)
    except StoreError as exc:
        click.echo(word("cmd.store_open", lang, detail=exc), err=True)
        sys.exit(1)
    done = word("db.current", lang) if before == after else word("db.upgraded", lang, n=before)
    click.echo(word("db.sqlite_at", lang, path=path, version=after, done=done))


@db.command()
@click.option("--db", "url", required=True, metavar="URL",
              help="PostgreSQL URL (postgresql://user@host:port/dbname) or an existing SQLite ledger's path")
@lang_option
def upgrade(url: str, lang: Optional[str]) -> None:
    """Create or upgrade the ledger schema (versioned migrations). Safe to run at any time and
    from many hosts at once: one applies, the others find it current."""
    from engine.format.messages import word
    from engine.store.base import parse_db

    lang = language(lang)
    if parse_db(url).kind != "postgresql":
        _upgrade_sqlite(url, lang)
        return
    try:
        import psycopg
    except ImportError:
        click.echo(word("db.needs_psycopg", lang), err=True)
        sys.exit(1)
    from engine.store.postgres import LATEST, connect, migrate, redact
    from engine.store.sqlite import StoreError

    name = word("db.pg_name", lang, url=redact(url))
    try:
        conn = connect(url)
        try:
            applied = migrate(conn, name)
        finally:
            conn.close()
    except StoreError as exc:
        click.echo(word("cmd.store_open", lang, detail=exc), err=True)
        sys.exit(1)
    except psycopg.Error as exc:
        click.echo(word("db.error", lang, name=name, detail=" ".join(str(exc).split())), err=True)
        sys.exit(1)
    done = word("db.applied", lang, list=", ".join(map(str, applied))) if applied else word("db.current", lang)
    click.echo(word("db.pg_at", lang, name=name, version=LATEST, done=done))


COMMANDS = [db]
