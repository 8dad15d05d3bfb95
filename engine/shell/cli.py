"""The `loyalty` command (CONTRACT.md): validate, run, quote, test. A thin shell over the core."""
from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Iterable, Iterator, Optional

import click

from engine.model.errors import ProgramError
from engine.format.loader import load_program
from engine.format.program import Program
from engine.shell.loading import load_or_exit
from engine.store.base import Store


def _program_files(paths: Iterable[str]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            files.extend(f for f in sorted(path.glob("*.yaml")) if not f.name.endswith(".tests.yaml"))
        else:
            files.append(path)
    return files


def _default_db(program: Program) -> str:
    return f"loyalty-{program.id}.db"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="loyalty-engine", prog_name="loyalty", message="%(prog)s %(version)s")
def cli() -> None:
    """Declarative loyalty programs: validate program files, apply events, quote carts."""


@cli.command()
@click.argument("paths", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--lang", type=click.Choice(["en", "ja"]), default=None,
              help="Language of the messages (default: from the locale, LANG=ja_JP.UTF-8 gives ja; else en)")
def validate(paths: tuple[str, ...], fmt: str, lang: Optional[str]) -> None:
    """Check program files (default: programs/). One FILE:LINE:COL line per problem."""
    from engine.format import i18n

    lang = i18n.resolve_lang(lang)
    files = _program_files(paths or ("programs",))
    problems = []
    for f in files:
        try:
            load_program(f)
        except ProgramError as exc:
            problems.extend(exc.problems)
    if fmt == "json":
        click.echo(json.dumps([{"file": p.pos.file, "line": p.pos.line, "col": p.pos.col, "code": p.code,
                                "message": i18n.translate(p, lang), "hint": i18n.translate_hint(p, lang),
                                "hint_code": p.hint_code} for p in problems],
                              ensure_ascii=False, indent=2, default=str))
    else:
        for p in problems:
            click.echo(i18n.format_problem(p, lang))
        if not problems:
            click.echo(i18n.text("valid_summary", lang, n=len(files)), err=True)
    sys.exit(1 if problems or not files else 0)


def _read_lines(events: str):
    from engine.run.lines import event_lines

    if events == "-":
        yield from event_lines(sys.stdin.buffer)
        return
    with open(events, "rb") as fh:
        yield from event_lines(fh)


@cli.command()
@click.argument("program_path", metavar="PROGRAM")
@click.argument("events", metavar="EVENTS")
@click.option("--db", default=None, help="SQLite path (default loyalty-<program>.db), :memory:, or postgresql://user@host:port/db")
@click.option("--as-of", "as_of", default=None, help="Report time (default: the last event's time)")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (the same as --format json)")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv"]), default=None,
              help="text (a summary, then members on request), json (the whole report) or csv (one row per member)")
@click.option("--member", "members", multiple=True, metavar="ID", help="List this member (repeat for more)")
@click.option("--top", type=click.IntRange(min=1), default=None, metavar="N",
              help="List the N members with the most valid points")
@click.option("--lang", type=click.Choice(["en", "ja"]), default=None,
              help="Language of the report (default: from the locale, LANG=ja_JP.UTF-8 gives ja; else en)")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes: above 1, the events are replayed sharded by member (engine/run/parallel.py); "
                   "needs a SQLite or PostgreSQL --db")
@click.option("--cluster", default=None, metavar="tcp://HOST:PORT",
              help="Replay on the Dask scheduler at this address, sharded by member (engine/run/cluster.py); "
                   "EVENTS may then be a folder of .jsonl files")
def run(program_path: str, events: str, db: Optional[str], as_of: Optional[str], as_json: bool, fmt: Optional[str],
        members: tuple[str, ...], top: Optional[int], lang: Optional[str], jobs: int, cluster: Optional[str]) -> None:
    """Apply EVENTS (.jsonl, or - for stdin) to the ledger and report: a summary (members, points by
    state, their yen value), then members on request (--member, --top)."""
    from engine.format import i18n

    lang = i18n.resolve_lang(lang)
    fmt = fmt or ("json" if as_json else "text")
    from engine.store import StoreError, open_store, parse_db

    program = load_or_exit(program_path, lang)
    if cluster and jobs > 1:
        click.echo(i18n.translate("run.cluster_and_jobs", lang), err=True)
        sys.exit(1)
    if cluster and Path(events).is_dir():
        pass   # a folder of .jsonl files, read one after the other
    elif events != "-" and not Path(events).is_file():
        code = "file.not_regular" if Path(events).exists() else "file.no_events"
        click.echo(i18n.translate(code, lang, path=events), err=True)
        sys.exit(1)
    spec = db or _default_db(program)
    if jobs > 1 and parse_db(spec).kind == "memory":
        click.echo(i18n.translate("run.jobs_memory", lang), err=True)
        sys.exit(1)
    try:
        store = open_store(spec, program.id, program.tz)
    except (StoreError, ValueError) as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    try:
        report, result = _run_and_report(program, store, events, as_of, jobs, program_path, spec, lang, cluster)
    except StoreError as exc:
        click.echo(f"loyalty run: {exc}", err=True)
        sys.exit(1)
    finally:
        try:
            store.close()
        except StoreError:
            pass  # the error that ended the run was already said
    _print_report(program, report, fmt, lang, members, top)
    sys.exit(1 if result.rejected else 0)


def _run_and_report(program: Program, store: Store, events: str, as_of: Optional[str], jobs: int,
                    program_path: str, spec: str, lang: str = "en", cluster: Optional[str] = None):
    from engine.format import i18n
    from engine.run.report import PastViewUnavailable, ledger_report
    from engine.run.runner import parse_as_of

    result = _replay(program, store, events, jobs, program_path, spec, cluster)
    try:
        when = parse_as_of(as_of, program, store)
    except ValueError as exc:
        click.echo(i18n.translate("cmd.as_of", lang, detail=exc), err=True)
        sys.exit(1)
    when = when or datetime.now(program.tz)
    effects = store.effects()
    if jobs > 1 or cluster and store.shared:
        # workers wrote their members' effects as they went: back in the order of the lines
        from engine.run.parallel import effects_in_line_order

        effects = effects_in_line_order(effects, result.effects)
    try:
        report = ledger_report(program, store, when, result, effects, asked=bool(as_of))
    except PastViewUnavailable as exc:
        click.echo("loyalty run: " + i18n.translate("cmd.as_of", lang, detail=exc), err=True)
        sys.exit(1)
    later = len(result.rejected) - len(report["rejected"])
    if later:
        from engine.shell.words import label

        click.echo(label("run.later_refused", lang, n=f"{later:,}"), err=True)
    return report, result


def _replay(program: Program, store: Store, events: str, jobs: int, program_path: str, spec: str,
            cluster: Optional[str]):
    """Apply EVENTS: on a Dask cluster, in ``jobs`` worker processes, or here, one line after the other."""
    from engine.shell.progress import count_lines, replay_progress
    from engine.run.runner import Runner

    if cluster:
        from engine.run.cluster import ClusterError, read_events, event_files, replay_cluster

        try:
            total = None if events == "-" else sum(count_lines(str(f)) or 0 for f in event_files(events))
            with replay_progress(total) as progress:
                return replay_cluster(program_path, _read_lines(events) if events == "-" else read_events(events),
                                      store, spec, address=cluster, progress=progress)
        except ClusterError as exc:
            click.echo(f"loyalty run: {exc}", err=True)
            sys.exit(exc.exit_code)
    if jobs > 1:
        return _replay_jobs(events, jobs, program_path, spec)
    # a bar on a terminal for long replays; silent otherwise (CI, pipes)
    with replay_progress(count_lines(events)) as progress:
        return Runner(program, store).run(_read_lines(events), progress=progress)


def _replay_jobs(events: str, jobs: int, program_path: str, spec: str):
    """``--jobs N``: the lines sharded by member over N worker processes (engine/run/parallel.py)."""
    from engine.model.events import BadEvent
    from engine.run.parallel import ParallelError, replay_parallel
    from engine.run.runner import refusal_of_line
    from engine.shell.progress import count_lines, replay_progress

    refused: dict[int, BadEvent] = {}   # lines the reader refused (over-long): no worker needs them

    def lines() -> Iterator[bytes]:
        for n, raw in enumerate(_read_lines(events), 1):
            if isinstance(raw, BadEvent):
                refused[n] = raw
                yield b"\n"    # a blank line keeps the numbering
            else:
                yield raw

    try:
        result = replay_parallel(program_path, lines(), jobs, spec,
                                 progress=lambda: replay_progress(count_lines(events)))
    except ParallelError as exc:
        click.echo(f"loyalty run: {exc}", err=True)
        sys.exit(exc.exit_code)
    result.rejected.extend(refusal_of_line(bad, n) for n, bad in refused.items())
    return result


def _print_report(program: Program, report: dict, fmt: str, lang: str, members=(), top=None) -> None:
    from engine.shell import runreport

    if fmt == "json":
        click.echo(runreport.as_json(report, members, top))
    elif fmt == "csv":
        click.echo(runreport.as_csv(report, members, top), nl=False)
    else:
        parts = runreport.text_parts(program, report, lang, members, top)
        if sys.stdout.isatty():
            runreport.print_rich(parts)
        else:
            for line in runreport.plain_lines(parts):
                click.echo(line)
        for r in parts["rejected"]:
            click.echo(r, err=True)


@cli.command()
@click.argument("program_path", metavar="PROGRAM")
@click.argument("cart", metavar="CART")
@click.option("--db", default=None, help="SQLite path (default loyalty-<program>.db), :memory:, or postgresql://user@host:port/db")
@click.option("--json", "as_json", is_flag=True)
@click.option("--lang", type=click.Choice(["en", "ja"]), default=None,
              help="Language of the text (default: from the locale, LANG=ja_JP.UTF-8 gives ja; else en)")
def quote(program_path: str, cart: str, db: Optional[str], as_json: bool, lang: Optional[str]) -> None:
    """Price CART (an order.placed object as JSON, or - for stdin) without changing anything."""
    from engine.format import i18n

    lang = i18n.resolve_lang(lang)
    from engine.shell.api import quote as quote_cart
    from engine.model.events import BadEvent, decode_cart
    from engine.store import StoreError, open_store, parse_db

    program = load_or_exit(program_path, lang)
    try:
        raw = sys.stdin.buffer.read() if cart == "-" else Path(cart).read_bytes()
    except OSError as exc:
        click.echo(i18n.translate("cmd.cannot_read", lang, path=cart, detail=exc.strerror), err=True)
        sys.exit(1)
    try:
        order = decode_cart(raw)
    except BadEvent as bad:
        click.echo(f"{cart}: event {bad.event_id or '?'}" + (f", field {bad.field}" if bad.field else "") + f": {bad.reason}", err=True)
        sys.exit(1)
    spec = parse_db(db or _default_db(program))
    try:
        # a quote changes nothing: a ledger that does not exist yet is not created for it
        store = open_store(spec.text if spec.kind != "sqlite" or Path(spec.text).exists() else ":memory:",
                           program.id, program.tz)
    except (StoreError, ValueError) as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    try:
        out = quote_cart(program, store.load(order.member), order)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        _print_quote(out, lang)
    sys.exit(1 if out["errors"] else 0)


def _print_quote(out: dict, lang: str) -> None:
    """A quote as text: the totals, then what the points, rewards and deadline come to, errors on stderr."""
    from engine.shell.words import error_words, label, state_name, yen

    t = out.get("totals", {})
    keys = [k for k in ("items_ex_tax", "fees_ex_tax", "shipping_ex_tax", "tax_total", "grand_total", "to_pay")
            if k in t]
    if lang == "ja":
        names = {k: label(f"quote.{k}", lang) for k in keys}
        from engine.shell.runreport import _width

        wide = max((_width(n) for n in names.values()), default=0) + 2
        for key in keys:
            figure = yen(t[key], lang)
            click.echo(names[key] + " " * (wide - _width(names[key])) + f"{figure:>12}")
    else:
        for key in keys:
            click.echo(f"{key:<18}{t[key]:>10,}")
    if "redeem" in out:
        r = out["redeem"]
        click.echo(label("quote.redeem", lang, max=r["max"], applied=r["applied"], why=r["why"]))
        click.echo(label("quote.earn", lang, points=out["earn"]["points"],
                         state=state_name(out["earn"]["state"], lang), rules=", ".join(out["earn"]["rules"])))
    if out.get("exchange", {}).get("points"):
        ex = out["exchange"]
        rewards = ", ".join(f"{r['reward']} x{r['qty']}" for r in ex["rewards"])
        click.echo(label("quote.exchange", lang, points=ex["points"], rewards=rewards)
                   + "".join(label("quote.fee", lang, kind=f["kind"], yen=yen(f["ex_tax"], lang)) for f in ex["fees"]))
    if "deadline" in out:
        d = out["deadline"]
        if d.get("note") and lang != "ja":
            click.echo(d["note"])
        elif d.get("late"):
            click.echo(label("quote.late", lang, last_day=d["last_day"], rule=d["rule"]))
        else:
            click.echo(label("quote.on_time", lang, last_day=d["last_day"], rule=d["rule"]))
    for e in out["errors"]:
        click.echo(label("quote.error", lang, field=e["field"], reason=error_words(e, lang)), err=True)


def _register_commands() -> None:
    """The extra commands, one module each in engine/shell/commands/ (each lists its click commands in
    COMMANDS). Such modules import heavy libraries inside their command functions, so start-up stays fast."""
    from engine.shell.commands import db, diff, explain, ledger, migrate, serve, testcmd

    for module in (db, diff, explain, ledger, migrate, serve, testcmd):
        for command in module.COMMANDS:
            cli.add_command(command)


_register_commands()


def main() -> None:
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # the last net: a message, never a traceback (CONTRACT.md)
        click.echo(f"loyalty: internal error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(2)
