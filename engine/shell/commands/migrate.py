"""`loyalty migrate-report`: before a revision goes live, what each member holds under the old
version and will hold under the new one, in units and in yen, and a check that nobody loses value."""
from __future__ import annotations

import json
import sys
from datetime import timedelta
from typing import Optional

import click

from engine.shell.commands import lang_option, language


def migration_report(program, store, version_number: Optional[int] = None, lang: str = "en") -> dict:
    from engine.format.messages import word
    from engine.run.report import as_of

    versions = [v for v in program.versions if v.migration or v.number > 1]
    if version_number is not None:
        versions = [v for v in program.versions if v.number == version_number]
    if not versions or versions[0].number == program.versions[0].number:
        raise click.UsageError(word("migrate.no_later", lang) if version_number is None else
                               word("migrate.not_later", lang, n=version_number, program=program.id))
    target = versions[0]
    previous = max((v for v in program.versions if v.number < target.number), key=lambda v: v.number)
    before_at = target.starts_at - timedelta(microseconds=1)
    rows = []
    for member in store.members():
        state = store.load(member)
        if state is None or not state.registered:
            continue
        if state.clock is not None and state.clock >= target.starts_at:
            continue  # already under the new version
        old, _, _ = as_of(program, state, before_at)
        new, _, _ = as_of(program, state, target.starts_at)
        switch_day = target.effective_from
        # what the member still holds at the switch: a lot whose last day is before it has expired
        old_units = sum(l.amount for l in old.lots if l.state in ("valid", "held")
                        and (old.lot_expires_on(l) is None or old.lot_expires_on(l) >= switch_day))
        new_units = sum(l.amount for l in new.lots if l.state in ("valid", "held"))
        old_value = previous.redemption.unit_value_yen if previous.redemption else 0
        new_value = target.redemption.unit_value_yen if target.redemption else 0
        rows.append({"member": member, "before": {"units": old_units, "yen": old_units * old_value},
                     "after": {"units": new_units, "yen": new_units * new_value},
                     "carry_before": old.carry, "carry_after": new.carry,
                     "ok": new_units * new_value >= old_units * old_value})
    totals = {k: sum(r[k]["units"] for r in rows) for k in ("before", "after")}
    yen = {k: sum(r[k]["yen"] for r in rows) for k in ("before", "after")}
    return {"program": program.id, "from_version": previous.number, "to_version": target.number,
            "switch_at": target.starts_at.isoformat(), "members": rows,
            "totals": {"units_before": totals["before"], "units_after": totals["after"],
                       "yen_before": yen["before"], "yen_after": yen["after"]},
            "losers": [r["member"] for r in rows if not r["ok"]]}


@click.command("migrate-report")
@click.argument("program_path", metavar="PROGRAM")
@click.option("--db", required=True, help="The ledger (SQLite path) to report on")
@click.option("--version", "version_number", type=int, default=None, help="Target version (default: the first later one)")
@click.option("--json", "as_json", is_flag=True)
@lang_option
def migrate_report(program_path: str, db: str, version_number: Optional[int], as_json: bool,
                   lang: Optional[str]) -> None:
    """What every member holds before and after a version switch; exit 1 if anyone loses value."""
    from engine.format.messages import word
    from engine.shell.loading import load_or_exit
    from engine.store import open_store
    from engine.store.base import StoreError

    lang = language(lang)
    program = load_or_exit(program_path, lang)
    try:
        store = open_store(db, program.id, program.tz)
    except (StoreError, ValueError) as exc:
        click.echo(word("cmd.store_open", lang, detail=exc), err=True)
        sys.exit(1)
    try:
        report = migration_report(program, store, version_number, lang)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
    elif lang == "ja":
        _print_ja(program, report)
    else:
        click.echo(f"{program.id}: version {report['from_version']} -> {report['to_version']} at {report['switch_at']}")
        click.echo(f"{'member':<14}{'units before':>13}{'yen before':>12}{'units after':>13}{'yen after':>12}  check")
        for r in report["members"]:
            click.echo(f"{r['member']:<14}{r['before']['units']:>13,}{r['before']['yen']:>12,}"
                       f"{r['after']['units']:>13,}{r['after']['yen']:>12,}  {'ok' if r['ok'] else 'LOSES VALUE'}")
        t = report["totals"]
        click.echo(f"{'total':<14}{t['units_before']:>13,}{t['yen_before']:>12,}{t['units_after']:>13,}{t['yen_after']:>12,}")
    sys.exit(1 if report["losers"] else 0)


def _print_ja(program, report: dict) -> None:
    """The report in Japanese: headings as wide as their Japanese words, yen as 1,234円."""
    from engine.format.messages import word
    from engine.shell.runreport import _width

    def pad(text: str, width: int, left: bool = False) -> str:
        fill = " " * max(width - _width(text), 0)
        return text + fill if left else fill + text

    def w(code: str, **args) -> str:
        return word(code, "ja", **args)

    click.echo(w("migrate.head", program=program.id, old=report["from_version"], new=report["to_version"],
                 at=report["switch_at"]))
    cols = (14, 16, 16, 16, 16)
    click.echo(pad(w("migrate.member"), cols[0], True) + pad(w("migrate.units_before"), cols[1])
               + pad(w("migrate.yen_before"), cols[2]) + pad(w("migrate.units_after"), cols[3])
               + pad(w("migrate.yen_after"), cols[4]) + "  " + w("migrate.check"))
    for r in report["members"]:
        check = w("migrate.ok") if r["ok"] else w("migrate.loses")
        click.echo(pad(r["member"], cols[0], True) + pad(f"{r['before']['units']:,}", cols[1])
                   + pad(f"{r['before']['yen']:,}円", cols[2]) + pad(f"{r['after']['units']:,}", cols[3])
                   + pad(f"{r['after']['yen']:,}円", cols[4]) + "  " + check)
    t = report["totals"]
    click.echo(pad(w("migrate.total"), cols[0], True) + pad(f"{t['units_before']:,}", cols[1])
               + pad(f"{t['yen_before']:,}円", cols[2]) + pad(f"{t['units_after']:,}", cols[3])
               + pad(f"{t['yen_after']:,}円", cols[4]))


COMMANDS = [migrate_report]
