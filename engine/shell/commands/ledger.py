"""`loyalty close` and `loyalty liability` (issue 22, docs/CONTRACT.md): the auditor's ledger.

close: every member's happenings due up to --as-of booked into the ledger with no event, member by
member (engine/run/close.py). liability: the month-by-month roll-forward of the units owed, in
units and yen, with breakage and the contract liability (engine/run/liability.py).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import click

from engine.shell.loading import load_or_exit

_LANG = click.option("--lang", type=click.Choice(["en", "ja"]), default=None,
                     help="Language of the messages (default: from the locale)")


def _fail(message: str, lang: Optional[str], **args) -> None:
    """Exit 1 with ``message``: a code of engine/format/messages.py (with ``args``) or a text as written."""
    from engine.format import i18n

    click.echo(i18n.translate(message, i18n.resolve_lang(lang), **args), err=True)
    sys.exit(1)


def _fail_code(code: str, lang: Optional[str], exit_code: int = 1, **args) -> None:
    from engine.format import i18n

    click.echo(i18n.translate(code, i18n.resolve_lang(lang), **args), err=True)
    sys.exit(exit_code)


def _open(program, db: Optional[str], command: str, lang: Optional[str]):
    """The ledger named by --db (default loyalty-<program>.db); a SQLite file must exist already:
    neither command creates a ledger."""
    from engine.store import StoreError, open_store, parse_db

    spec = db or f"loyalty-{program.id}.db"
    if parse_db(spec).missing():
        _fail(f"loyalty {command}: no ledger at {spec}", lang)
    try:
        return open_store(spec, program.id, program.tz)
    except (StoreError, ValueError) as exc:
        _fail(f"loyalty {command}: {exc}", lang)


@click.command("close")
@click.argument("program_path", metavar="PROGRAM")
@click.option("--db", default=None, help="SQLite path (default loyalty-<program>.db) or postgresql://user@host:port/db")
@click.option("--as-of", "as_of", required=True,
              help="Close through this moment: ISO 8601 with offset, or a date (the end of that day)")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes: above 1, the members are closed sharded (engine/run/close.py); "
                   "needs a SQLite or PostgreSQL --db")
@click.option("--cluster", default=None, metavar="tcp://HOST:PORT",
              help="Close on the Dask scheduler at this address, the members sharded over its workers "
                   "(they open --db themselves: PostgreSQL, or a SQLite file they can reach)")
@_LANG
def close_command(program_path: str, db: Optional[str], as_of: str, as_json: bool, jobs: int,
                  cluster: Optional[str], lang: Optional[str]) -> None:
    """Book every member's happenings due up to --as-of (expiries, birth-month bonuses, restores,
    version switches) with no event needed. Idempotent; a rerun after a kill books the rest."""
    from engine.run.close import CloseError, close, close_sharded, close_time
    from engine.store.base import parse_db
    from engine.store.sqlite import StoreError

    program = load_or_exit(program_path)
    if cluster and jobs > 1:
        _fail("close.jobs_and_cluster", lang)
    try:
        when = close_time(as_of, program)
    except ValueError as exc:
        _fail(f"--as-of: not an ISO 8601 time with offset, nor a date: {as_of!r} ({exc})", lang)
    spec = db or f"loyalty-{program.id}.db"
    if (jobs > 1 or cluster) and parse_db(spec).kind == "memory":
        _fail_code("close.shared_ledger", lang, spec=spec)
    store = _open(program, db, "close", lang)
    try:
        if jobs > 1 or cluster:
            result = close_sharded(program, store, spec, when, jobs=jobs, address=cluster,
                                   text=Path(program_path).read_bytes())
        else:
            result = close(program, store, when)
    except CloseError as exc:
        _fail_code("close.shard_failed", lang, exc.exit_code, detail=str(exc))
    except StoreError as exc:
        _fail(f"loyalty close: {exc}", lang)
    finally:
        try:
            store.close()
        except StoreError:
            pass
    answer = result.answer(program)
    if as_json:
        click.echo(json.dumps(answer, ensure_ascii=False, indent=2))
        return
    note = "recorded" if answer["recorded"] else f"already closed through {answer['previous_close']}: not recorded again"
    click.echo(f"{program.id}: closed through {answer['through']}: {answer['members']} member(s), "
               f"{answer['members_booked']} with happenings booked, {answer['entries']} ledger entries, "
               f"{answer['effects']} effects ({note})")


@click.command("liability")
@click.argument("program_path", metavar="PROGRAM")
@click.option("--db", default=None, help="SQLite path (default loyalty-<program>.db) or postgresql://user@host:port/db")
@click.option("--from", "start", required=True, help="First month: YYYY-MM (or a date in it)")
@click.option("--to", "end", required=True, help="Last month: YYYY-MM (or a date in it)")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv"]), default="text", show_default=True)
@click.option("--html", "html_out", default=None, metavar="OUT", help="Also write the report as an HTML page to OUT")
@_LANG
def liability_command(program_path: str, db: Optional[str], start: str, end: str, fmt: str,
                      html_out: Optional[str], lang: Optional[str]) -> None:
    """The points liability per month: opening, issued (earn, bonus, grant, migration), used,
    restored, expired, voided, converted, closing, in units and yen; the roll-forward identity;
    outstanding by expiry month; observed against expected breakage; the contract liability.
    Exit 1 when the identity fails in a month (happenings due but not booked: run loyalty close)."""
    from engine.run.liability import LiabilityError, as_csv, as_html, as_text, liability_report, month_range
    from engine.store.sqlite import StoreError

    program = load_or_exit(program_path)
    try:
        first, last = month_range(start, end)
    except LiabilityError as exc:
        _fail_code(exc.code, lang, **exc.values)
    store = _open(program, db, "liability", lang)
    try:
        report = liability_report(program, store, first, last)
    except (LiabilityError, StoreError) as exc:
        _fail(f"loyalty liability: {exc}", lang)
    finally:
        try:
            store.close()
        except StoreError:
            pass
    if html_out:
        try:
            Path(html_out).write_text(as_html(report), encoding="utf-8")
        except OSError as exc:
            _fail(f"{html_out}: {exc.strerror}", lang)
    if fmt == "json":
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
    elif fmt == "csv":
        click.echo(as_csv(report), nl=False)
    else:
        click.echo(as_text(report))
    sys.exit(0 if report["identity"] else 1)


COMMANDS = [close_command, liability_command]
