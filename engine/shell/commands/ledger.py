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

from engine.shell.commands import lang_option as _LANG
from engine.shell.commands import language
from engine.shell.loading import load_or_exit


def _fail(code: str, lang: Optional[str], **args) -> None:
    """The error line of ``code`` (engine/format/messages.py) in the language asked for, exit 1."""
    from engine.format import i18n

    click.echo(i18n.translate(code, language(lang), **args), err=True)
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
        _fail("cmd.no_ledger", lang, command=command, spec=spec)
    try:
        return open_store(spec, program.id, program.tz)
    except (StoreError, ValueError) as exc:
        _fail("cmd.store", lang, command=command, detail=exc)


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

    program = load_or_exit(program_path, lang)
    if cluster and jobs > 1:
        _fail("close.jobs_and_cluster", lang)
    try:
        when = close_time(as_of, program)
    except ValueError as exc:
        _fail("cmd.as_of_close", lang, value=repr(as_of), detail=exc)
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
        _fail("cmd.store", lang, command="close", detail=exc)
    finally:
        try:
            store.close()
        except StoreError:
            pass
    answer = result.answer(program)
    if as_json:
        click.echo(json.dumps(answer, ensure_ascii=False, indent=2))
        return
    from engine.format.messages import word

    lang = language(lang)
    note = word("close.recorded", lang) if answer["recorded"] else word("close.already", lang,
                                                                         previous=answer["previous_close"])
    click.echo(word("close.done", lang, program=program.id, through=answer["through"], members=answer["members"],
                    booked=answer["members_booked"], entries=answer["entries"], effects=answer["effects"], note=note))


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

    program = load_or_exit(program_path, lang)
    try:
        first, last = month_range(start, end)
    except LiabilityError as exc:
        _fail_code(exc.code, lang, **exc.values)
    store = _open(program, db, "liability", lang)
    try:
        report = liability_report(program, store, first, last)
    except LiabilityError as exc:
        from engine.format import i18n

        click.echo("loyalty liability: " + i18n.translate(exc.code, language(lang), **exc.values), err=True)
        sys.exit(1)
    except StoreError as exc:
        _fail("cmd.store", lang, command="liability", detail=exc)
    finally:
        try:
            store.close()
        except StoreError:
            pass
    if html_out:
        try:
            Path(html_out).write_text(as_html(report, language(lang)), encoding="utf-8")
        except OSError as exc:
            _fail("cmd.cannot_write", lang, path=html_out, detail=exc.strerror)
    if fmt == "json":
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
    elif fmt == "csv":
        click.echo(as_csv(report, language(lang)), nl=False)
    else:
        click.echo(as_text(report, language(lang)))
    sys.exit(0 if report["identity"] else 1)


COMMANDS = [close_command, liability_command]
