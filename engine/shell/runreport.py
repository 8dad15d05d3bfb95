"""The `run` report for people, at a real shop's size: a summary first (members, points by state and
their yen value), members on request (--member ID, --top N), effects in words; text (rich tables with
right-aligned figures on a terminal, plain text when piped), JSON or CSV."""
from __future__ import annotations

import csv
import io
import json
from typing import Iterable, Optional

from engine.format.program import Program
from engine.shell.words import effect_words, label, refusal_words, state_name, yen

STATES = ("valid", "pending", "held", "used", "expired", "void")
LIST_AT_MOST = 50      # members listed without asking; above, the summary says how to ask
EFFECTS_AT_MOST = 50   # effects in words in the text report; --format json lists every one


def unit_value_yen(program: Program, report: dict) -> Optional[int]:
    """Yen a point is worth when redeemed, in the version the report stands in (None: no redemption)."""
    version = next((v for v in program.versions if v.number == report["program"]["version"]), None)
    redemption = version.redemption if version is not None else None
    return redemption.unit_value_yen if redemption is not None else None


def totals(report: dict) -> dict[str, int]:
    out = dict.fromkeys(STATES, 0)
    for m in report["members"].values():
        for state, points in m["points"].items():
            out[state] = out.get(state, 0) + points
    return out


def chosen_members(report: dict, members: Iterable[str] = (), top: Optional[int] = None) -> tuple[list[str], list[str]]:
    """(the members to list, the ids asked for that the ledger does not hold)."""
    members = list(members)
    if members:
        return [m for m in members if m in report["members"]], [m for m in members if m not in report["members"]]
    ids = list(report["members"])
    if top is not None:
        ids.sort(key=lambda m: (-report["members"][m]["points"].get("valid", 0), m))
        return ids[:top], []
    return ids, []


def filtered(report: dict, members: Iterable[str] = (), top: Optional[int] = None) -> dict:
    """The report with only the members asked for (all when neither --member nor --top)."""
    if not members and top is None:
        return report
    ids, _ = chosen_members(report, members, top)
    keep = set(ids)
    return dict(report, members={m: report["members"][m] for m in ids},
                effects=[e for e in report["effects"] if e.get("member") in keep])


def as_csv(report: dict, members: Iterable[str] = (), top: Optional[int] = None) -> str:
    ids, _ = chosen_members(report, members, top)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    owed = any("owed" in m["points"] for m in report["members"].values())
    writer.writerow(["member", "tier", *STATES, *(["owed"] if owed else [])])
    for member in ids:
        m = report["members"][member]
        writer.writerow([member, m["tier"] or "", *(m["points"].get(s, 0) for s in STATES),
                         *([m["points"].get("owed", 0)] if owed else [])])
    return out.getvalue()


def as_json(report: dict, members: Iterable[str] = (), top: Optional[int] = None) -> str:
    return json.dumps(filtered(report, members, top), ensure_ascii=False, indent=2, default=str)


def text_parts(program: Program, report: dict, lang: str, members: Iterable[str] = (),
               top: Optional[int] = None) -> dict:
    """The pieces of the text report (tables as header + rows of strings), for plain text or rich."""
    members = list(members)
    sums = totals(report)
    value = unit_value_yen(program, report)
    states = [s for s in (*STATES, "owed") if s in sums]
    summary = [[state_name(s, lang), f"{sums[s]:,}", *( [yen(sums[s] * value, lang)] if value is not None else [])]
               for s in states]
    summary_head = [label("run.state", lang), label("run.points", lang),
                    *([label("run.yen", lang)] if value is not None else [])]
    count = len(report["members"])
    listed = bool(members) or top is not None or count <= LIST_AT_MOST
    ids, missing = chosen_members(report, members, top) if listed else ([], [])
    rows = [[m, str(report["members"][m]["tier"] or "-"),
             *(f"{report['members'][m]['points'].get(s, 0):,}" for s in STATES)] for m in ids]
    member_head = [label("run.member", lang), label("run.tier", lang), *(state_name(s, lang) for s in STATES)]
    if listed and not members and top is None and rows:
        col = [sum(report["members"][m]["points"].get(s, 0) for m in ids) for s in STATES]
        total_row = [label("run.total", lang), "", *(f"{c:,}" for c in col)]
    else:
        total_row = None
    keep = set(ids) if (members or top is not None) else None
    effects = [e for e in report["effects"] if keep is None or e.get("member") in keep]
    return {
        "head": label("run.head", lang, program=report["program"]["id"], version=report["program"]["version"],
                      as_of=report["as_of"], applied=f"{report['applied']:,}", skipped=f"{report['skipped']:,}",
                      rejected=f"{len(report['rejected']):,}"),
        "members_line": label("run.members", lang, n=f"{count:,}"),
        "summary": (summary_head, summary),
        "listed": listed, "more": None if listed else label("run.more_members", lang, n=f"{count:,}"),
        "top": label("run.top", lang, n=top) if top is not None and not members else None,
        "members": (member_head, rows, total_row),
        "missing": [label("run.unknown_member", lang, member=m) for m in missing],
        "effects": [effect_words(e, lang) for e in effects[:EFFECTS_AT_MOST]],
        "effects_count": len(effects),
        "more_effects": (label("run.more_effects", lang, n=f"{len(effects) - EFFECTS_AT_MOST:,}")
                         if len(effects) > EFFECTS_AT_MOST else None),
        "rejected": [label("rejected", lang, reason=refusal_words(r, lang)) for r in report["rejected"]],
        "lang": lang,
    }


def _width(text: str) -> int:
    """Columns a text takes on a terminal (a CJK character takes two)."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _plain_table(head: list[str], rows: list[list[str]], footer: Optional[list[str]] = None) -> list[str]:
    """Columns as wide as their widest cell (figures right-aligned, the first columns left): a figure
    never runs into the column before it."""
    every = [head, *rows, *([footer] if footer else [])]
    widths = [max(_width(r[i]) for r in every) for i in range(len(head))]
    numeric = [i > 0 and all(_is_figure(r[i]) for r in rows + ([footer] if footer else [])) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            pad = " " * (widths[i] - _width(cell))
            out.append(pad + cell if numeric[i] else cell + pad)
        return "  ".join(out).rstrip()

    rule = "-" * _width(line(head))
    lines = [line(head), rule, *(line(r) for r in rows)]
    if footer:
        lines += [rule, line(footer)]
    return lines


def _is_figure(cell: str) -> bool:
    stripped = cell.replace(",", "").replace("¥", "").replace("円", "").replace("-", "")
    return cell == "" or stripped.isdigit()


def plain_lines(parts: dict) -> list[str]:
    lines = [parts["head"], parts["members_line"], ""]
    lines += _plain_table(*parts["summary"])
    if parts["more"]:
        lines += ["", parts["more"]]
    if parts["listed"] and parts["members"][1]:
        lines.append("")
        if parts["top"]:
            lines.append(parts["top"])
        head, rows, total_row = parts["members"]
        lines += _plain_table(head, rows, total_row)
    lines += parts["missing"]
    if parts["effects"]:
        lines += ["", label("run.effects", parts["lang"], n=f"{parts['effects_count']:,}")]
        lines += [f"  {e}" for e in parts["effects"]]
        if parts["more_effects"]:
            lines.append(f"  {parts['more_effects']}")
    return lines


def print_rich(parts: dict, file=None) -> None:
    """The same report as rich tables (a terminal): figures right-aligned."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file, force_terminal=file is None or None, highlight=False)
    console.print(parts["head"])
    console.print(parts["members_line"])

    def table(head, rows, footer=None):
        t = Table(show_footer=footer is not None)
        for i, h in enumerate(head):
            t.add_column(h, justify="left" if i == 0 or (i == 1 and len(head) > 3) else "right",
                         footer=(footer[i] if footer else ""))
        for r in rows:
            t.add_row(*r)
        return t

    console.print(table(*parts["summary"]))
    if parts["more"]:
        console.print(parts["more"])
    if parts["listed"] and parts["members"][1]:
        if parts["top"]:
            console.print(parts["top"])
        head, rows, total_row = parts["members"]
        console.print(table(head, rows, total_row))
    for m in parts["missing"]:
        console.print(m)
    if parts["effects"]:
        console.print(label("run.effects", parts["lang"], n=f"{parts['effects_count']:,}"))
        for e in parts["effects"]:
            console.print(f"  {e}", markup=False)
        if parts["more_effects"]:
            console.print(f"  {parts['more_effects']}")
