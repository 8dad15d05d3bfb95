"""`loyalty diff OLD.yaml NEW.yaml EVENTS [--html OUT.html] [--format table|json|csv]`: what a
program change does.

Replays the same events under both program files (each on its own in-memory ledger, as a what-if:
a historical redemption request is decided again by the file's limits, clamped to what it allows
and counted as clamped, never refused) and compares, member by member and in total, as of the same
moment, everything the program decides (engine/run/whatif.py): points by state and their yen
value, tiers and ladder stages with the dates they change, effects with their dates, what the
customers paid, redemptions clamped, events refused; each change names its rule and the line it
is written on. Output: a terminal table, JSON, CSV, and a self-contained HTML report with inline
SVG charts (no scripts, fonts or files from elsewhere).
"""
from __future__ import annotations

import csv
import html
import io
import json
import math
import sys
from datetime import datetime
from pathlib import Path
from typing import Optional

import click

from engine.run.whatif import LABELS, METRICS, POINT_METRICS, compare, default_as_of, measure, what_if

# the columns of the members table (the point figures, then what the customers paid)
MEMBER_METRICS = ("granted", "used", "expired", "void", "outstanding", "cost_yen", "to_pay_yen", "clamped")
SHORT = {"granted": "Δ granted", "used": "Δ used", "expired": "Δ expired", "void": "Δ void", "outstanding": "Δ outst.",
         "cost_yen": "Δ cost ¥", "to_pay_yen": "Δ paid ¥", "clamped": "clamped"}


def replay(program, lines, progress=None):
    """Apply the event lines to an in-memory ledger under ``program`` as a what-if: (engine, run result)."""
    from engine.shell.api import Engine

    engine = Engine(what_if(program), ":memory:")
    result = engine.runner.run(lines, progress=progress)
    return engine, result


# --- terminal -----------------------------------------------------------------------------------

def _signed(n: int) -> str:
    return f"{n:+,}" if n else "0"


def _rule_ref(rule: Optional[str], line: Optional[str]) -> str:
    if not rule:
        return ""
    return f"{rule} ({line})" if line else rule


def _delta_text(delta: dict) -> str:
    return ", ".join(f"{LABELS.get(k, k.replace('_', ' '))} {_signed(v)}" for k, v in delta.items())


def print_table(report: dict, show_all: bool, out=None) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    stream = out or sys.stdout
    console = Console(file=stream, width=None if _isatty(stream) else 140, highlight=False)
    o, n = report["old"], report["new"]
    for warning in report["warnings"]:
        console.print(f"[bold yellow]warning:[/] {warning}")
    console.print(f"[bold]OLD[/] {o['path']} ({o['program']} v{o['version']})  ->  "
                  f"[bold]NEW[/] {n['path']} ({n['program']} v{n['version']}), as of {report['as_of']}")
    h = report["headline"]

    def money(v: int, good_when_down: bool = True) -> str:
        style = "red" if (v > 0) == good_when_down and v else "green" if v else ""
        text = f"{'+' if v > 0 else '-' if v < 0 else ''}¥{abs(v):,}" if v else "no change"
        return f"[{style}]{text}[/]" if style else text

    card = Table(box=box.ROUNDED, show_header=False, title="Headline", title_justify="left")
    card.add_column("")
    card.add_column("", justify="right")
    card.add_row("cost to the shop", money(h["cost_yen"]))
    card.add_row("change in outstanding liability", money(h["liability_yen"]))
    card.add_row("customers paid", money(h["to_pay_yen"], good_when_down=False))
    refused = h["refused_by_new"]
    card.add_row("refusals the new file causes", f"[bold red]{refused}[/]" if refused else "0")
    if h["refused_only_by_old"]:
        card.add_row("refusals the new file removes", str(h["refused_only_by_old"]))
    card.add_row("redemptions clamped (new - old)",
                 f"[yellow]{_signed(h['clamped'])}[/] ({_signed(h['clamped_units'])} units)" if h["clamped"] else "0")
    card.add_row("members changed", f"{report['changed_members']} of {len(report['members'])}")
    console.print(card)
    summary = Table(box=box.SIMPLE_HEAD, title="Totals", title_justify="left")
    summary.add_column("")
    for col in ("OLD", "NEW", "change"):
        summary.add_column(col, justify="right")
    t = report["totals"]
    for k in METRICS:
        if k not in POINT_METRICS and not (t["old"][k] or t["new"][k]):
            continue
        d = t["delta"][k]
        style = "green" if d < 0 and k == "cost_yen" else "red" if d > 0 and k == "cost_yen" else ""
        summary.add_row(LABELS[k], f"{t['old'][k]:,}", f"{t['new'][k]:,}", f"[{style}]{_signed(d)}[/]" if style else _signed(d))
    for tier, c in sorted(report["tiers"].items()):
        summary.add_row(f"members in {tier}", str(c["old"]), str(c["new"]), _signed(c["new"] - c["old"]))
    summary.add_row("events rejected", str(o["rejected"]), str(n["rejected"]), _signed(n["rejected"] - o["rejected"]))
    console.print(summary)
    if report["by_rule"]:
        rules = Table(box=box.SIMPLE_HEAD, title="What changes, by the rule that produced it", title_justify="left")
        rules.add_column("rule")
        rules.add_column("written at")
        rules.add_column("change (NEW - OLD)")
        for r in report["by_rule"]:
            rules.add_row(r["rule"], r["line"] or "", _delta_text(r["delta"]))
        console.print(rules)
    rows = [r for r in report["members"] if show_all or r["changed"]]
    if rows:
        table = Table(box=box.SIMPLE_HEAD, title="Members" + ("" if show_all else " whose figures change"),
                      title_justify="left")
        table.add_column("member", no_wrap=True)
        table.add_column("tier", no_wrap=True)
        table.add_column("granted OLD", justify="right")
        table.add_column("granted NEW", justify="right")
        for k in MEMBER_METRICS:
            table.add_column(SHORT[k], justify="right")
        table.add_column("dates", justify="right")
        for r in rows:
            tier = (f"{r['old']['tier']} -> {r['new']['tier']}" if r["tier_changed"] else str(r["old"]["tier"] or "-"))
            table.add_row(r["member"], tier, f"{r['old']['granted']:,}", f"{r['new']['granted']:,}",
                          *(_signed(r["delta"][k]) for k in MEMBER_METRICS),
                          str(r["effects_changed"] + r["stage_dates_changed"]))
        console.print(table)
    else:
        console.print("No member's figures change.")
    limit = None if show_all else 20
    for key, title, fmt in (
            ("stage_changes", "Stage changes that move",
             lambda c: f"{c['member']}: {c['old_stage'] or '-'} {c['old'] or '-'} -> {c['new_stage'] or '-'} {c['new'] or '-'}"),
            ("effect_changes", "Effects that move, appear or go",
             lambda c: f"{c['member']}: {c['effect']} {c['detail']} {c['change']}: {c['old'] or '-'} -> {c['new'] or '-'}"),
            ("order_tier_changes", "Orders placed at another tier",
             lambda c: f"{c['member']} {c['order']}: {c['old']} -> {c['new']}")):
        items = report[key]
        if not items:
            continue
        console.print(f"[bold]{title}[/] ({len(items)})")
        for c in items[:limit]:
            console.print(f"  {fmt(c)}  [{_rule_ref(c['rule'], c.get('line'))}]")
        if limit is not None and len(items) > limit:
            console.print(f"  ... and {len(items) - limit} more (--all lists them)")
    clamps = report["clamped"]["new"]
    if clamps:
        console.print(f"[bold]Redemptions clamped under NEW[/] ({len(clamps)}): asked -> allowed")
        for c in clamps[:limit]:
            console.print(f"  {c['member']} {c['order']}: {c['asked']:,} -> {c['allowed']:,}  [{c['rule']}]")
        if limit is not None and len(clamps) > limit:
            console.print(f"  ... and {len(clamps) - limit} more (--all lists them)")
    for key, title in (("rejected_only_new", "Rejected under NEW only"), ("rejected_only_old", "Rejected under OLD only")):
        for r in report[key]:
            console.print(f"{title}: {r['event']}: {r['reason']}")


def csv_rows(report: dict) -> list[list]:
    """The report's figures as rows: section, member, figure, OLD, NEW, change, rule, written at."""
    rows: list[list] = [["section", "member", "figure", "old", "new", "change", "rule", "written_at"]]
    t = report["totals"]
    for k in METRICS:
        rows.append(["total", "", k, t["old"][k], t["new"][k], t["delta"][k], "", ""])
    for k, v in report["headline"].items():
        rows.append(["headline", "", k, "", "", v, "", ""])
    for r in report["by_rule"]:
        for k, v in r["delta"].items():
            rows.append(["rule", "", k, r["old"].get(k, ""), r["new"].get(k, ""), v, r["rule"], r["line"] or ""])
    for r in report["members"]:
        if r["tier_changed"]:
            rows.append(["member", r["member"], "tier", r["old"]["tier"], r["new"]["tier"], "", "", ""])
        for k in METRICS:
            if r["delta"][k]:
                rows.append(["member", r["member"], k, r["old"][k], r["new"][k], r["delta"][k], "", ""])
    for c in report["stage_changes"]:
        rows.append(["stage", c["member"], c["stage"], c["old"] or "", c["new"] or "", "", c["rule"], c["line"] or ""])
    for c in report["effect_changes"]:
        rows.append(["effect", c["member"], f"{c['effect']} {c['detail']}", c["old"] or "", c["new"] or "",
                     c["change"], c["rule"], c["line"] or ""])
    for c in report["order_tier_changes"]:
        rows.append(["order_tier", c["member"], c["order"], c["old"], c["new"], "", c["rule"], c["line"] or ""])
    for c in report["clamped"]["new"]:
        rows.append(["clamped", c["member"], c["order"], c["asked"], c["allowed"], c["allowed"] - c["asked"], c["rule"], ""])
    for key, side in (("rejected_only_new", "new"), ("rejected_only_old", "old")):
        for r in report[key]:
            rows.append([f"refused_{side}", "", r["event"], "", "", r["reason"], r.get("rule") or "", r.get("line") or ""])
    return rows


def to_csv(report: dict) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(csv_rows(report))
    return buf.getvalue()


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# --- HTML ---------------------------------------------------------------------------------------

def _nice(x: float) -> float:
    """A round step (1, 2 or 5 times a power of ten) at least ``x``."""
    if x <= 0:
        return 1
    exp = math.floor(math.log10(x))
    for m in (1, 2, 5, 10):
        if m * 10 ** exp >= x:
            return m * 10 ** exp
    return 10 ** (exp + 1)


def _fmt(v: float) -> str:
    return f"{int(v):,}" if float(v).is_integer() else f"{v:,.1f}"


def histogram_bins(values: list[int], target: int = 12) -> list[tuple[str, int, str]]:
    """(label, count, kind) bars: members with no change on their own bar, the others in bins of
    a round width (boundaries at multiples of it, so no bin mixes gains and losses)."""
    zeros = sum(1 for v in values if v == 0)
    moved = [v for v in values if v != 0]
    bars: list[tuple[str, int, str]] = []
    if moved:
        lo, hi = min(moved), max(moved)
        width = max(1, int(_nice((hi - lo + 1) / target)))
        start = math.floor(lo / width) * width
        nbins = (hi - start) // width + 1
        counts = [0] * nbins
        for v in moved:
            counts[(v - start) // width] += 1
        for i, c in enumerate(counts):
            b_lo, b_hi = start + i * width, start + (i + 1) * width - 1
            if b_lo == 0:
                b_lo = 1
            label = f"{b_lo:+,}" if b_lo == b_hi else f"{b_lo:+,} to {b_hi:+,}"
            bars.append((label, c, "neg" if b_hi < 0 else "pos"))
    if zeros or not values:
        at = sum(1 for _, _, kind in bars if kind == "neg")
        bars.insert(at, ("no change", zeros, "zero"))
    return bars


def svg_histogram(values: list[int], title: str, unit: str) -> str:
    W, H, L, R, T, B = 760, 296, 60, 20, 36, 74
    bins = histogram_bins(values)
    top = max((c for _, c, _ in bins), default=1) or 1
    ystep = max(1, _nice(top / 5))
    ymax = math.ceil(top / ystep) * ystep
    pw, ph = W - L - R, H - T - B
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
             f'aria-label="{html.escape(title)}">',
             f'<text x="{L}" y="22" class="ttl">{html.escape(title)}</text>']
    for i in range(int(ymax / ystep) + 1):
        y = T + ph - ph * (i * ystep) / ymax
        parts.append(f'<line x1="{L}" x2="{W - R}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{L - 6}" y="{y + 4:.1f}" class="ax" text-anchor="end">{_fmt(i * ystep)}</text>')
    n = len(bins)
    bw = pw / max(n, 1)
    for i, (label, c, cls) in enumerate(bins):
        x = L + i * bw
        h = ph * c / ymax
        parts.append(f'<rect x="{x + 2:.1f}" y="{T + ph - h:.1f}" width="{max(bw - 4, 1):.1f}" height="{h:.1f}" '
                     f'class="{cls}"><title>{html.escape(label)} {unit}: {c} member(s)</title></rect>')
        if c:
            parts.append(f'<text x="{x + bw / 2:.1f}" y="{T + ph - h - 4:.1f}" class="val" text-anchor="middle">{c}</text>')
        lx = x + bw / 2
        parts.append(f'<text x="{lx:.1f}" y="{T + ph + 14}" class="ax" text-anchor="end" '
                     f'transform="rotate(-35 {lx:.1f} {T + ph + 14})">{html.escape(label)}</text>')
    parts.append(f'<line x1="{L}" x2="{W - R}" y1="{T + ph}" y2="{T + ph}" class="axis"/>')
    parts.append(f'<text x="14" y="{T + ph / 2:.1f}" class="ax" transform="rotate(-90 14 {T + ph / 2:.1f})" '
                 f'text-anchor="middle">members</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_months(months: list[dict], title: str) -> str:
    W, H, L, R, T, B = 760, 320, 80, 20, 50, 60
    pw, ph = W - L - R, H - T - B
    top = max([max(m["old"], m["new"]) for m in months] + [1])
    ystep = _nice(top / 5)
    ymax = math.ceil(top / ystep) * ystep
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
             f'aria-label="{html.escape(title)}">',
             f'<text x="{L}" y="22" class="ttl">{html.escape(title)}</text>',
             f'<rect x="{W - R - 170}" y="30" width="12" height="12" class="old"/>'
             f'<text x="{W - R - 152}" y="41" class="ax">OLD</text>'
             f'<rect x="{W - R - 100}" y="30" width="12" height="12" class="new"/>'
             f'<text x="{W - R - 82}" y="41" class="ax">NEW</text>']
    for i in range(int(ymax / ystep) + 1):
        y = T + ph - ph * (i * ystep) / ymax
        parts.append(f'<line x1="{L}" x2="{W - R}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{L - 6}" y="{y + 4:.1f}" class="ax" text-anchor="end">¥{_fmt(i * ystep)}</text>')
    n = max(len(months), 1)
    gw = pw / n
    bw = max(min(gw * 0.38, 28), 1)
    for i, m in enumerate(months):
        x0 = L + i * gw + gw / 2
        for j, key in enumerate(("old", "new")):
            h = ph * m[key] / ymax
            x = x0 - bw + j * bw
            parts.append(f'<rect x="{x:.1f}" y="{T + ph - h:.1f}" width="{bw - 1:.1f}" height="{h:.1f}" class="{key}">'
                         f'<title>{m["month"]} {key.upper()}: ¥{m[key]:,}</title></rect>')
        if n <= 24 or i % math.ceil(n / 24) == 0:
            parts.append(f'<text x="{x0:.1f}" y="{T + ph + 14}" class="ax" text-anchor="end" '
                         f'transform="rotate(-45 {x0:.1f} {T + ph + 14})">{m["month"]}</text>')
    parts.append(f'<line x1="{L}" x2="{W - R}" y1="{T + ph}" y2="{T + ph}" class="axis"/>')
    parts.append("</svg>")
    return "".join(parts)


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI","Hiragino Sans","Noto Sans CJK JP",sans-serif;margin:24px auto;
max-width:1100px;color:#1f2933;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#52606d;margin:0 0 16px;font-size:14px}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid #d9e2ec;border-radius:8px;padding:10px 14px;min-width:150px}
.card .k{font-size:12px;color:#52606d}.card .v{font-size:20px;font-weight:600}.up{color:#c62828}.down{color:#2e7d32}
table{border-collapse:collapse;font-size:13px;margin:6px 0}th,td{padding:4px 10px;border-bottom:1px solid #e4e7eb;text-align:right}
th{background:#f5f7fa;position:sticky;top:0}td:first-child,th:first-child,td.l{text-align:left}
tr.changed td{background:#fffbea}.muted{color:#9aa5b1}
svg{max-width:100%;height:auto;display:block;margin:6px 0}
svg .ttl{font-size:14px;font-weight:600;fill:#1f2933}svg .ax{font-size:11px;fill:#52606d}svg .val{font-size:11px;fill:#1f2933}
svg .grid{stroke:#e4e7eb}svg .axis{stroke:#9aa5b1}svg .pos{fill:#e07a3f}svg .neg{fill:#3e7cb1}svg .zero{fill:#9aa5b1}
svg .old{fill:#7b8794}svg .new{fill:#e07a3f}
.note{font-size:12px;color:#52606d}.warn{color:#b45309;font-weight:600}
"""


def _count_card(label: str, n: int) -> str:
    cls = "up" if n > 0 else "down" if n < 0 else ""
    return (f'<div class="card"><div class="k">{html.escape(label)}</div><div class="v {cls}">{_signed(n) if n else "none"}'
            f'</div></div>')


def render_html(report: dict) -> str:
    e = html.escape
    o, n, t = report["old"], report["new"], report["totals"]

    def card(label: str, key: str, money: bool = False) -> str:
        d = t["delta"][key]
        cls = "up" if d > 0 else "down" if d < 0 else ""
        val = (f"{'+' if d > 0 else '−'}{'¥' if money else ''}{abs(d):,}") if d else "no change"
        return (f'<div class="card"><div class="k">{e(label)}</div><div class="v {cls}">{val}</div>'
                f'<div class="k">{"¥" if money else ""}{t["old"][key]:,} → {"¥" if money else ""}{t["new"][key]:,}</div></div>')

    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>loyalty diff: {e(o['program'])} v{o['version']} → v{n['version']}</title>",
           f"<style>{_CSS}</style></head><body>",
           f"<h1>What the change does: {e(o['program'])}</h1>",
           f'<p class="sub">OLD <code>{e(o["path"])}</code> (v{o["version"]}) → NEW <code>{e(n["path"])}</code> '
           f'(v{n["version"]}); the same {o["applied"] + o["rejected"]:,} events replayed under both, as of {e(report["as_of"])}. '
           f'{report["changed_members"]} of {len(report["members"])} members change.</p>',
           '<div class="cards">', card("cost to the shop", "cost_yen", True),
           card("outstanding liability", "liability_yen", True), card("customers paid", "to_pay_yen", True),
           _count_card("refusals the new file causes", report["headline"]["refused_by_new"]),
           _count_card("redemptions clamped", report["headline"]["clamped"]), "</div>",
           '<div class="cards">', card("points granted", "granted"),
           card("points used", "used"), card("points expired", "expired"), card("points voided", "void"),
           card("points outstanding", "outstanding"), "</div>"]
    for w in report["warnings"]:
        out.insert(6, f'<p class="warn">warning: {e(w)}</p>')
    if report["by_rule"]:
        out.append("<h2>What changes, by the rule that produced it</h2>"
                   "<table><tr><th>rule</th><th>written at</th><th>change (NEW − OLD)</th></tr>")
        for r in report["by_rule"]:
            out.append(f'<tr><td>{e(r["rule"])}</td><td class="l"><code>{e(r["line"] or "")}</code></td>'
                       f'<td class="l">{e(_delta_text(r["delta"]))}</td></tr>')
        out.append("</table>")
    for key, title, cols, row in (
            ("stage_changes", "Stage changes that move", ("member", "stage OLD", "date OLD", "stage NEW", "date NEW", "rule"),
             lambda c: (c["member"], c["old_stage"], c["old"], c["new_stage"], c["new"], _rule_ref(c["rule"], c["line"]))),
            ("effect_changes", "Effects that move, appear or go", ("member", "effect", "detail", "change", "OLD", "NEW", "rule"),
             lambda c: (c["member"], c["effect"], c["detail"], c["change"], c["old"], c["new"], _rule_ref(c["rule"], c["line"]))),
            ("order_tier_changes", "Orders placed at another tier", ("member", "order", "OLD", "NEW", "rule"),
             lambda c: (c["member"], c["order"], c["old"], c["new"], _rule_ref(c["rule"], c["line"])))):
        if report[key]:
            out.append(f"<h2>{title} ({len(report[key])})</h2><table><tr>"
                       + "".join(f"<th>{col}</th>" for col in cols) + "</tr>")
            for c in report[key]:
                out.append("<tr>" + "".join(f'<td class="l">{e(str(v) if v is not None else "–")}</td>' for v in row(c))
                           + "</tr>")
            out.append("</table>")
    if report["clamped"]["new"]:
        out.append(f'<h2>Redemptions clamped under NEW ({len(report["clamped"]["new"])})</h2>'
                   "<table><tr><th>member</th><th>order</th><th>asked</th><th>allowed</th><th>rule</th></tr>")
        for c in report["clamped"]["new"]:
            out.append(f'<tr><td>{e(c["member"])}</td><td class="l">{e(c["order"])}</td><td>{c["asked"]:,}</td>'
                       f'<td>{c["allowed"]:,}</td><td class="l">{e(c["rule"])}</td></tr>')
        out.append("</table>")
    deltas = [r["delta"]["granted"] for r in report["members"]]
    out.append("<h2>Distribution of the change per member</h2>")
    out.append(svg_histogram(deltas, "Change in points granted per member (NEW − OLD)", "points"))
    cost_deltas = [r["delta"]["cost_yen"] for r in report["members"]]
    if cost_deltas != deltas:
        out.append(svg_histogram(cost_deltas, "Change in cost per member, yen (NEW − OLD)", "yen"))
    out.append("<h2>Cost by month</h2>")
    out.append(svg_months(report["cost_by_month"], "Cost in yen of the points granted each month (not voided or expired)"))
    out.append('<p class="note">Cost = points granted, less voided and expired points, × the yen value of a point in '
               'the program version that granted them: what the shop has paid out as discounts or still owes.</p>')
    out.append("<h2>Totals</h2><table><tr><th></th><th>OLD</th><th>NEW</th><th>change</th></tr>")
    for k in METRICS:
        if k not in POINT_METRICS and not (t["old"][k] or t["new"][k]):
            continue
        out.append(f"<tr><td>{e(LABELS[k])}</td><td>{t['old'][k]:,}</td><td>{t['new'][k]:,}</td><td>{_signed(t['delta'][k])}</td></tr>")
    for tier, c in sorted(report["tiers"].items()):
        out.append(f"<tr><td>members in {e(tier)}</td><td>{c['old']}</td><td>{c['new']}</td><td>{_signed(c['new'] - c['old'])}</td></tr>")
    out.append(f"<tr><td>events rejected</td><td>{o['rejected']}</td><td>{n['rejected']}</td><td>{_signed(n['rejected'] - o['rejected'])}</td></tr></table>")
    if report["tier_changes"]:
        out.append("<h2>Tier changes</h2><table><tr><th>from → to</th><th>members</th></tr>")
        for k, v in sorted(report["tier_changes"].items()):
            out.append(f"<tr><td>{e(k.replace('->', '→'))}</td><td>{v}</td></tr>")
        out.append("</table>")
    for key, title in (("rejected_only_new", "Events rejected under NEW only"), ("rejected_only_old", "Events rejected under OLD only")):
        if report[key]:
            out.append(f"<h2>{title}</h2><table><tr><th>event</th><th>reason</th></tr>")
            for r in report[key]:
                out.append(f'<tr><td>{e(r["event"])}</td><td style="text-align:left">{e(r["reason"])}</td></tr>')
            out.append("</table>")
    out.append("<h2>Members</h2><table><tr><th>member</th><th>tier</th>"
               + "".join(f"<th>{e(LABELS[k])}<br>OLD → NEW</th><th>Δ</th>" for k in MEMBER_METRICS) + "</tr>")
    for r in report["members"]:
        tier = (f"{e(str(r['old']['tier']))} → {e(str(r['new']['tier']))}" if r["tier_changed"]
                else e(str(r["old"]["tier"] or "–")))
        cells = "".join(
            f"<td>{r['old'][k]:,} → {r['new'][k]:,}</td><td>{_signed(r['delta'][k])}</td>" if r["delta"][k]
            else f'<td class="muted">{r["old"][k]:,}</td><td class="muted">0</td>' for k in MEMBER_METRICS)
        out.append(f'<tr class="{"changed" if r["changed"] else ""}"><td>{e(r["member"])}</td><td class="l">{tier}</td>{cells}</tr>')
    out.append("</table>")
    out.append(f'<p class="note">Made by <code>loyalty diff</code> on {datetime.now().astimezone():%Y-%m-%d %H:%M}.</p>')
    out.append("</body></html>")
    return "\n".join(out)


# --- the command ----------------------------------------------------------------------------------

def replay_on_cluster(client, path: str, program, events: str, progress=None):
    """Apply the events file (or folder of files) under ``program`` on a Dask cluster, streamed in
    chunks and sharded by member (engine/run/cluster.py), into an in-memory ledger."""
    from engine.run.cluster import read_events, replay_cluster
    from engine.shell.api import Engine

    engine = Engine(program, ":memory:")
    result = replay_cluster(path, read_events(events), engine.store, ":memory:", client=client, progress=progress)
    return engine, result


def build_report(old_path: str, new_path: str, events: str, as_of: Optional[str] = None,
                 show_progress: bool = True, cluster: Optional[str] = None) -> dict:
    from engine.format.loader import load_program
    from engine.shell.progress import count_lines, replay_progress

    old_program, new_program = load_program(old_path), load_program(new_path)
    if cluster:
        from engine.run.cluster import cluster_client, event_files

        total: Optional[int] = sum(count_lines(str(f)) or 0 for f in event_files(events))
        sides = []
        with cluster_client(cluster) as client:
            for path, program in ((old_path, old_program), (new_path, new_program)):
                with replay_progress(total if show_progress else None, f"replaying under {Path(path).name}",
                                     force=False) as progress:
                    sides.append(replay_on_cluster(client, path, program, events, progress if show_progress else None))
        # the requests of the history, for what the new limits clamp (engine/run/whatif.py)
        lines = [line for f in event_files(events) for line in Path(f).read_bytes().splitlines()]
        return _report(old_path, new_path, old_program, new_program, sides, as_of, lines)
    raw = sys.stdin.buffer.read() if events == "-" else Path(events).read_bytes()
    lines = raw.splitlines()
    total = len(lines) if events == "-" else count_lines(events)
    sides = []
    for path, program in ((old_path, old_program), (new_path, new_program)):
        if show_progress:
            with replay_progress(total, f"replaying under {Path(path).name}") as progress:
                sides.append(replay(program, lines, progress))
        else:
            sides.append(replay(program, lines))
    return _report(old_path, new_path, old_program, new_program, sides, as_of, lines)


def _report(old_path, new_path, old_program, new_program, sides, as_of, lines) -> dict:
    from engine.model.timeutil import parse_instant

    if as_of:
        when = parse_instant(as_of, old_program.tz)
    else:
        lasts = [datetime.fromisoformat(x) for x in (s[0].store.last_time() for s in sides) if x]
        # a version that comes into force after the history: up to its first day, its effects included
        when = default_as_of([old_program, new_program], max(lasts) if lasts else None) or datetime.now(old_program.tz)
    old = measure(old_path, sides[0][0].program, sides[0][0].store, sides[0][1], when, lines)
    new = measure(new_path, sides[1][0].program, sides[1][0].store, sides[1][1], when, lines)
    report = compare(old, new)
    report["as_of"] = when.astimezone(old_program.tz).isoformat()
    return report


@click.command("diff")
@click.argument("old_path", metavar="OLD.yaml")
@click.argument("new_path", metavar="NEW.yaml")
@click.argument("events", metavar="EVENTS")
@click.option("--html", "html_out", default=None, metavar="OUT.html", help="Also write a self-contained HTML report")
@click.option("--as-of", "as_of", default=None,
              help="Compare as of this time (default: the last event's time, or the end of the first day of a "
                   "version that starts after it)")
@click.option("--all", "show_all", is_flag=True, help="List every member, not only those whose figures change")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              help="table (default), json or csv: the same figures")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON (--format json)")
@click.option("--exit-code", is_flag=True, help="Exit 1 when any member's figures change (for CI)")
@click.option("--cluster", default=None, metavar="tcp://HOST:PORT",
              help="Replay on the Dask scheduler at this address, sharded by member (engine/run/cluster.py); "
                   "EVENTS may then be a folder of .jsonl files")
def diff(old_path: str, new_path: str, events: str, html_out: Optional[str], as_of: Optional[str],
         show_all: bool, fmt: str, as_json: bool, exit_code: bool, cluster: Optional[str]) -> None:
    """Replay EVENTS under OLD.yaml and NEW.yaml and show what changes: per member, in total, in yen."""
    from engine.model.errors import ProgramError
    from engine.run.cluster import ClusterError

    from engine.format.i18n import lang_from_env, translate

    if cluster and events == "-":
        click.echo("loyalty diff: --cluster reads EVENTS twice: give a file or a folder, not standard input", err=True)
        sys.exit(1)
    if not (cluster and Path(events).is_dir()) and events != "-" and not Path(events).is_file():
        click.echo(translate("file.no_events", lang_from_env(), path=events), err=True)
        sys.exit(1)
    try:
        report = build_report(old_path, new_path, events, as_of, cluster=cluster)
    except ClusterError as exc:
        click.echo(f"loyalty diff: {exc}", err=True)
        sys.exit(exc.exit_code)
    except ProgramError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(1)
    except ValueError as exc:
        click.echo(f"--as-of: {exc}", err=True)
        sys.exit(1)
    if as_json:
        fmt = "json"
    from engine.format.i18n import lang_from_env, translate

    lang = lang_from_env()
    report["warnings"] = [translate(w["code"], lang, **w["args"]) for w in report.get("warning_codes", ())]
    if fmt != "table":
        for warning in report["warnings"]:
            click.echo(f"warning: {warning}", err=True)
    if fmt == "json":
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
    elif fmt == "csv":
        click.echo(to_csv(report), nl=False)
    else:
        print_table(report, show_all)
    if html_out:
        Path(html_out).write_text(render_html(report), encoding="utf-8")
        click.echo(f"HTML report: {html_out}", err=True)
    sys.exit(1 if exit_code and report["changed_members"] else 0)


COMMANDS = [diff]
