"""`loyalty test [PATH ...]`: run the example cases written beside the programs, like `opa test`.

A program ``programs/<id>.yaml`` keeps its cases in ``programs/<id>.tests.yaml``
(``schema/tests.schema.json``). Each case replays its events on an empty in-memory ledger, reads
its members as of ``as_of`` (and prices its ``quote:`` cart, if any), and compares the figures it
names with what the engine reports. A failure names the case, the line of the expected figure,
the expected and the actual figure and the rule ids the case checks. Exit 1 on any failure.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import click

from engine.shell.commands import lang_option, language

SUFFIX = ".tests.yaml"
_SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "tests.schema.json"   # package data


@dataclass(frozen=True)
class Said:
    """A word of the command's own (not a value from the case): said in the reader's language."""
    code: str
    args: tuple = ()

    def text(self, lang: str = "en") -> str:
        from engine.format.messages import word

        return word(self.code, lang, **dict(self.args))


@dataclass
class Failure:
    what: Any                 # "m1.points.valid", "quote.totals.grand_total", or a Said ("rejected events")
    expected: Any
    actual: Any
    line: Optional[int] = None
    note: Any = ""            # text, or a function of the language that gives it

    def describe(self, lang: str = "en") -> str:
        from engine.format.messages import word

        what = self.what.text(lang) if isinstance(self.what, Said) else self.what
        text = word("test.failure", lang, what=what, expected=_show(self.expected, lang), actual=_show(self.actual, lang))
        if self.line:
            text = word("test.at_line", lang, line=self.line, text=text)
        note = self.note(lang) if callable(self.note) else self.note
        return f"{text} ({note})" if note else text


@dataclass
class CaseResult:
    name: str
    rules: list
    line: int
    failures: list = field(default_factory=list)
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return not self.failures and self.error is None


@dataclass
class FileResult:
    path: str
    program: Optional[str] = None
    cases: list = field(default_factory=list)
    problems: list = field(default_factory=list)  # file-level problems: FILE:LINE:COL: message

    @property
    def ok(self) -> bool:
        return not self.problems and all(c.ok for c in self.cases)


def _show(value: Any, lang: str = "en") -> str:
    if isinstance(value, Said):
        return value.text(lang) if lang == "ja" else repr(value.text(lang))
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if value is None:
        return "null"
    return repr(value) if isinstance(value, str) else str(value)


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual or expected == actual and type(expected) is type(actual)
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return expected == actual
    if isinstance(expected, str) and isinstance(actual, (int, float)):
        return expected == str(actual)
    return expected == actual


def compare(expected: Any, actual: Any, what: str, path: tuple, positions, out: list) -> None:
    """Compare only what ``expected`` names: dict keys it lists, lists element by element."""
    line = positions.at(path).line if positions is not None else None
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            out.append(Failure(what, expected, actual, line))
            return
        for key, value in expected.items():
            sub = f"{what}.{key}" if what else str(key)
            if key not in actual:
                out.append(Failure(sub, value, Said("test.missing"), positions.at(path + (key,)).line if positions else None))
                continue
            compare(value, actual[key], sub, path + (key,), positions, out)
    elif isinstance(expected, list):
        if not isinstance(actual, list):
            out.append(Failure(what, expected, actual, line))
            return
        if len(expected) != len(actual):
            out.append(Failure(Said("test.count", (("what", what),)), len(expected), len(actual), line,
                               note=lambda lang: _unmatched(expected, actual, lang)))
            return
        for i, (e, a) in enumerate(zip(expected, actual)):
            before = len(out)
            compare(e, a, f"{what}[{i}]", path + (i,), positions, out)
            if isinstance(a, dict) and len(out) > before:   # an item (a lot, an effect) that differs: show it whole
                for failure in out[before:]:
                    failure.note = failure.note or (lambda lang, item=a: _the_item(item, lang))
    elif not _same(expected, actual):
        out.append(Failure(what, expected, actual, line))


def _the_item(item: Any, lang: str = "en") -> str:
    from engine.format.messages import word

    return word("test.the_item", lang, item=_show(item, lang))


def _unmatched(expected: list, actual: list, lang: str = "en") -> str:
    """Which items differ when a list has the wrong length: each expected item is paired with the
    first actual item that has every value it names; what is left on either side is the difference."""
    left = list(actual)
    missing = []
    for item in expected:
        for i, candidate in enumerate(left):
            found: list = []
            compare(item, candidate, "", (), None, found)
            if not found:
                del left[i]
                break
        else:
            missing.append(item)
    from engine.format.messages import word

    parts = [word("test.not_found", lang, item=_show(m, lang)) for m in missing]
    parts += [word("test.not_expected", lang, item=_show(a, lang)) for a in left]
    text = "; ".join(parts)
    return text if len(text) < 2000 else text[:2000] + " ..."


def _schema_problems(data, positions, filename: str, lang: str = "en") -> list[str]:
    import jsonschema

    from engine.format.i18n import format_problem
    from engine.format.loader import _schema_problem

    schema = json.loads(_SCHEMA.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    problems = []
    for error in sorted(cls(schema).iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        path = tuple(error.absolute_path)
        where = ".".join(str(p) for p in path) or "(top)"
        if lang == "ja":   # the catalogue's words for a schema error, as validate gives them
            problems.append(format_problem(_schema_problem(error, positions.at(path), where), lang))
        else:
            problems.append(f"{positions.at(path)}: {where}: {error.message}")
    return problems


def _load(path: Path, lang: str = "en"):
    from engine.format import yamlpos
    from engine.format.i18n import format_problem
    from engine.format.messages import word
    from engine.model.errors import ProgramError

    try:
        return yamlpos.load(path.read_bytes(), str(path)), []
    except OSError as exc:
        return (None, None), [word("test.unreadable", lang, path=path, detail=exc.strerror)]
    except ProgramError as exc:
        return (None, None), [format_problem(p, lang) for p in exc.problems]


def program_for(tests_path: Path) -> Path:
    return tests_path.with_name(tests_path.name[: -len(SUFFIX)] + ".yaml")


def run_case(program, case: dict, path: tuple, positions, lang: str = "en") -> CaseResult:
    """Replay one case on a fresh in-memory ledger and compare what it expects."""
    import msgspec

    from engine.shell.words import refusal_words

    from engine.shell.api import Engine
    from engine.model.events import BadEvent
    from engine.run.report import as_of as view_as_of
    from engine.model.timeutil import parse_instant

    result = CaseResult(case.get("name", "?"), list(case.get("rules", [])), positions.at(path).line)
    expect = case.get("expect", {})
    engine = Engine(program, ":memory:")
    run = engine.apply_many(case.get("events", []))
    rejected = [r.get("event") for r in run.rejected]
    if "rejected" in expect:
        want = sorted(expect["rejected"])
        if sorted(x or "?" for x in rejected) != want:
            reasons = "; ".join(refusal_words(r, lang) for r in run.rejected)
            result.failures.append(Failure(Said("test.rejected_events"), want, sorted(x or "?" for x in rejected),
                                           positions.at(path + ("expect", "rejected")).line, note=reasons))
    else:
        for r in run.rejected:
            result.failures.append(Failure(Said("test.event", (("event", r.get("event") or "?"),)), Said("test.applied"),
                                           Said("test.rejected"), positions.at(path + ("events",)).line,
                                           note=refusal_words(r, lang)))
    if case.get("as_of"):
        when = parse_instant(str(case["as_of"]), program.tz)
    elif last := engine.store.last_time():
        when = datetime.fromisoformat(last)
    else:
        when = datetime.now(program.tz)
    for member, want in (expect.get("members") or {}).items():
        mpath = path + ("expect", "members", member)
        got = engine.member(member, when)
        if got is None:
            result.failures.append(Failure(Said("test.member", (("member", member),)), Said("test.registered"),
                                           Said("test.unknown_member"), positions.at(mpath).line))
            continue
        compare(want, got, member, mpath, positions, result.failures)
    if "effects" in expect:
        effects = [e for e in engine.store.effects() if str(e["at"]) <= when.astimezone(program.tz).isoformat()]
        for member in engine.store.members():
            state = engine.store.load(member)
            if state is not None and state.registered:
                effects.extend(msgspec.to_builtins(e) for e in view_as_of(program, state, when)[2])
        effects.sort(key=lambda e: (str(e["at"]), e["member"], e["type"]))
        compare(expect["effects"], effects, "effects", path + ("expect", "effects"), positions, result.failures)
    if "quote" in case or "quote" in expect:
        if "quote" not in case:
            result.failures.append(Failure(Said("test.quote"), Said("test.cart_under_quote"), Said("test.none"),
                                           positions.at(path).line))
        else:
            cart = {"id": "quote", "type": "order.placed", **case["quote"]}
            try:
                quote = engine.quote(cart)
            except Exception as exc:  # a cart the decoder refuses: a failure of the case, not a crash
                quote = {"errors": [msgspec.to_builtins(exc.refusal()) if isinstance(exc, BadEvent) else
                                    {"field": None, "reason": str(exc)}]}
            if "quote" in expect:
                compare(expect["quote"], quote, "quote", path + ("expect", "quote"), positions, result.failures)
            elif quote.get("errors"):
                result.failures.append(Failure(Said("test.quote_errors"), [], quote["errors"],
                                               positions.at(path + ("quote",)).line))
    return result


def run_file(tests_path: Path, name_filter: Optional[str] = None, lang: str = "en") -> FileResult:
    from engine.format.i18n import format_problem
    from engine.format.loader import load_program
    from engine.format.messages import word
    from engine.model.errors import ProgramError

    out = FileResult(str(tests_path))
    (data, positions), problems = _load(tests_path, lang)
    if problems:
        out.problems = problems
        return out
    problems = _schema_problems(data, positions, str(tests_path), lang)
    if problems:
        out.problems = problems
        return out
    program_path = program_for(tests_path)
    if not program_path.is_file():
        out.problems = [word("test.no_program", lang, path=tests_path, program=program_path.name)]
        return out
    try:
        program = load_program(program_path)
    except ProgramError as exc:
        out.problems = [format_problem(p, lang) for p in exc.problems]
        return out
    out.program = program.id
    if data.get("program") and data["program"] != program.id:
        out.problems = [word("test.other_program", lang, pos=positions.at(("program",)), want=data["program"],
                             path=program_path, got=program.id)]
        return out
    for i, case in enumerate(data["cases"]):
        if name_filter and name_filter.lower() not in case["name"].lower():
            continue
        try:
            out.cases.append(run_case(program, case, ("cases", i), positions, lang))
        except Exception as exc:  # one broken case must not hide the others
            out.cases.append(CaseResult(case["name"], list(case["rules"]), positions.at(("cases", i)).line,
                                        error=f"{type(exc).__name__}: {exc}"))
    return out


def discover(paths: tuple[str, ...], lang: str = "en") -> tuple[list[Path], list[str]]:
    """Tests files named by PATHs (directories, tests files, or program files). Returns (files, notes)."""
    from engine.format.messages import word

    files: list[Path] = []
    notes: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found = sorted(path.glob("*" + SUFFIX))
            files.extend(found)
            have = {program_for(f) for f in found}
            for program in sorted(path.glob("*.yaml")):
                if not program.name.endswith(SUFFIX) and program not in have:
                    notes.append(word("test.no_cases", lang, path=program, tests=program.name[:-5] + SUFFIX))
        elif path.name.endswith(SUFFIX):
            files.append(path)
        elif path.suffix == ".yaml":
            tests = path.with_name(path.name[:-5] + SUFFIX)
            if tests.is_file():
                files.append(tests)
            else:
                notes.append(word("test.no_cases", lang, path=path, tests=tests.name))
        else:
            notes.append(word("test.not_a_path", lang, path=path))
    first: dict[Path, Path] = {}   # each file once, where it first came
    for f in files:
        first.setdefault(f.resolve(), f)
    unique = list(first.values())
    return unique, notes


@click.command("test")
@click.argument("paths", nargs=-1)
@click.option("-k", "name_filter", default=None, help="Run only cases whose name contains this text")
@click.option("-q", "--quiet", is_flag=True, help="Print only failures and the summary")
@lang_option
def test(paths: tuple[str, ...], name_filter: Optional[str], quiet: bool, lang: Optional[str]) -> None:
    """Run the example cases beside the programs (default: programs/*.tests.yaml)."""
    from engine.format.messages import word

    lang = language(lang)
    files, notes = discover(paths or ("programs",), lang)
    for note in notes:
        click.echo(word("test.note", lang, text=note), err=True)
    passed = failed = 0
    broken = False
    for f in files:
        result = run_file(f, name_filter, lang)
        if result.problems:
            broken = True
            for problem in result.problems:
                click.echo(problem)
            continue
        if not quiet:
            click.echo(word("test.file_head", lang, path=result.path, program=result.program, n=len(result.cases)))
        for case in result.cases:
            rules = ", ".join(case.rules)
            if case.ok:
                passed += 1
                if not quiet:
                    click.echo(word("test.ok", lang, name=case.name, rules=rules))
                continue
            failed += 1
            click.echo(word("test.fail", lang, name=case.name, rules=rules, where=f"{result.path}:{case.line}"))
            if case.error:
                click.echo(word("test.error", lang, error=case.error))
            for failure in case.failures:
                click.echo(f"        {failure.describe(lang)}")
            click.echo(word("test.rules", lang, rules=rules))
    if not files:
        click.echo(word("test.no_files", lang), err=True)
    click.echo(word("test.summary", lang, passed=passed, failed=failed))
    sys.exit(1 if failed or broken or not files else 0)


COMMANDS = [test]
