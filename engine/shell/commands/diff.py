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

from engine.format.messages import COMMAND_WORDS as _WORDS
from engine.format.messages import word
from engine.shell.commands import lang_option, language
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


def _say(code: str, lang: str = "en", **args) -> str:
    from engine.format import messages

    return messages.render(code, args, lang)


# --- terminal -----------------------------------------------------------------------------------

def _signed(n: int) -> str:
    return f"{n:+,}" if n else "0"


def _rule_ref(rule: Optional[str], line: Optional[str]) -> str:
    if not rule:
        return ""
    return f"{rule} ({line})" if line else rule


def _metric(key: str, lang: str = "en") -> str:
    """A figure's label: the what-if's English one, or its Japanese word."""
    if lang == "ja" and f"diff.metric.{key}" in _WORDS:
        return word(f"diff.metric.{key}", lang)
    return LABELS.get(key, key.replace("_", " "))


def _short(key: str, lang: str = "en") -> str:
    return word(f"diff.short.{key}", lang) if lang == "ja" else SHORT[key]


def _yen_signed(v: int, lang: str = "en", minus: str = "-") -> str:
    """+¥1,234 / -¥1,234 in English, +1,234円 / -1,234円 in Japanese."""
    sign = "+" if v > 0 else minus if v < 0 else ""
    return f"{sign}{abs(v):,}円" if lang == "ja" else f"{sign}¥{abs(v):,}"


def _count(n: int, lang: str = "en") -> str:
    """A section's count after its title: ' (3)', or '（3 件）' in Japanese."""
    return f"（{n:,} 件）" if lang == "ja" else f" ({n})"


def _change_word(change: str, lang: str = "en") -> str:
    return word(f"diff.change.{change}", lang) if lang == "ja" and f"diff.change.{change}" in _WORDS else change


def _delta_text(delta: dict, lang: str = "en") -> str:
    return ("、" if lang == "ja" else ", ").join(f"{_metric(k, lang)} {_signed(v)}" for k, v in delta.items())


def print_table(report: dict, show_all: bool, out=None, lang: str = "en") -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    def w(code: str, **args) -> str:
        return word(code, lang, **args)

    stream = out or sys.stdout
    console = Console(file=stream, width=None if _isatty(stream) else 140, highlight=False)
    o, n = report["old"], report["new"]
    for warning in report["warnings"]:
        console.print(f"[bold yellow]{w('cmd.warning', text='')}[/]{warning}")
    console.print(w("diff.sides", old_path=o["path"], old_program=o["program"], old_version=o["version"],
                    new_path=n["path"], new_program=n["program"], new_version=n["version"], as_of=report["as_of"]))
    if report.get("as_of_note"):
        console.print(f"  ({report['as_of_note']})" if lang != "ja" else f"  （{report['as_of_note']}）")
    h = report["headline"]

    def money(v: int, good_when_down: bool = True) -> str:
        style = "red" if (v > 0) == good_when_down and v else "green" if v else ""
        text = _yen_signed(v, lang) if v else w("diff.no_change")
        return f"[{style}]{text}[/]" if style else text

    card = Table(box=box.ROUNDED, show_header=False, title=w("diff.headline"), title_justify="left")
    card.add_column("")
    card.add_column("", justify="right")
    card.add_row(w("diff.cost"), money(h["cost_yen"]))
    card.add_row(w("diff.liability_change"), money(h["liability_yen"]))
    card.add_row(w("diff.paid"), money(h["to_pay_yen"], good_when_down=False))
    refused = h["refused_by_new"]
    card.add_row(w("diff.refused_new"), f"[bold red]{refused}[/]" if refused else "0")
    if h["refused_only_by_old"]:
        card.add_row(_say("diff.card.refusals_removed", lang), str(h["refused_only_by_old"]))
    card.add_row(w("diff.clamped_delta"),
                 f"[yellow]{_signed(h['clamped'])}[/] {w('diff.clamped_units', n=_signed(h['clamped_units']))}"
                 if h["clamped"] else "0")
    if h.get("max_lowered"):
        lowered_units = w("diff.clamped_units", n=f"{h['max_lowered_units']:,}")
        card.add_row(_say("diff.card.max_lowered", lang), f"[yellow]{h['max_lowered']}[/] {lowered_units}")
    card.add_row(w("diff.members_changed"), w("diff.of", n=report["changed_members"], total=len(report["members"])))
    console.print(card)
    summary = Table(box=box.SIMPLE_HEAD, title=w("diff.totals"), title_justify="left")
    summary.add_column("")
    for col in ("diff.old", "diff.new", "diff.change"):
        summary.add_column(w(col), justify="right")
    t = report["totals"]
    for k in METRICS:
        if k not in POINT_METRICS and not (t["old"][k] or t["new"][k]):
            continue
        d = t["delta"][k]
        style = "green" if d < 0 and k == "cost_yen" else "red" if d > 0 and k == "cost_yen" else ""
        summary.add_row(_metric(k, lang), f"{t['old'][k]:,}", f"{t['new'][k]:,}",
                        f"[{style}]{_signed(d)}[/]" if style else _signed(d))
    for tier, c in sorted(report["tiers"].items()):
        summary.add_row(w("diff.members_in", tier=tier), str(c["old"]), str(c["new"]), _signed(c["new"] - c["old"]))
    summary.add_row(w("diff.events_rejected"), str(o["rejected"]), str(n["rejected"]), _signed(n["rejected"] - o["rejected"]))
    console.print(summary)
    if report.get("settings_changed"):
        settings = Table(box=box.SIMPLE_HEAD, title=_say("diff.settings_title", lang), title_justify="left")
        for col in _say("diff.settings_cols", lang).split("|"):
            settings.add_column(col)
        for c in report["settings_changed"]:
            settings.add_row(c["rule"], _say(f"diff.setting.{c['change']}", lang), c["line"] or "")
        console.print(settings)
    if report["by_rule"]:
        rules = Table(box=box.SIMPLE_HEAD, title=w("diff.by_rule"), title_justify="left")
        rules.add_column(w("diff.rule"))
        rules.add_column(w("diff.written_at"))
        rules.add_column(w("diff.change_new_old").replace("−", "-") if lang != "ja" else w("diff.change_new_old"))
        for r in report["by_rule"]:
            rules.add_row(r["rule"], r["line"] or "", _delta_text(r["delta"], lang))
        console.print(rules)
    rows = [r for r in report["members"] if show_all or r["changed"]]
    if rows:
        table = Table(box=box.SIMPLE_HEAD, title=w("diff.members" if show_all else "diff.members_changing"),
                      title_justify="left")
        table.add_column(w("diff.member"), no_wrap=True)
        table.add_column(w("diff.tier"), no_wrap=True)
        table.add_column(w("diff.granted_old"), justify="right")
        table.add_column(w("diff.granted_new"), justify="right")
        for k in MEMBER_METRICS:
            table.add_column(_short(k, lang), justify="right")
        table.add_column(w("diff.dates"), justify="right")
        for r in rows:
            tier = (f"{r['old']['tier']} -> {r['new']['tier']}" if r["tier_changed"] else str(r["old"]["tier"] or "-"))
            table.add_row(r["member"], tier, f"{r['old']['granted']:,}", f"{r['new']['granted']:,}",
                          *(_signed(r["delta"][k]) for k in MEMBER_METRICS),
                          str(r["effects_changed"] + r["stage_dates_changed"]))
        console.print(table)
    else:
        console.print(w("diff.no_member_changes"))
    limit = None if show_all else 20
    arrow = "→" if lang == "ja" else "->"
    for key, title, fmt in (
            ("stage_changes", w("diff.stage_changes"),
             lambda c: f"{c['member']}: {c['old_stage'] or '-'} {c['old'] or '-'} {arrow} {c['new_stage'] or '-'} {c['new'] or '-'}"),
            ("effect_changes", w("diff.effect_changes"),
             lambda c: f"{c['member']}: {c['effect']} {c['detail']} {_change_word(c['change'], lang)}: "
                       f"{c['old'] or '-'} {arrow} {c['new'] or '-'}"),
            ("order_tier_changes", w("diff.order_tier_changes"),
             lambda c: f"{c['member']} {c['order']} ({c.get('date', '')}): {c['old']} {arrow} {c['new']}")):
        items = report[key]
        if not items:
            continue
        console.print(f"[bold]{title}[/]{_count(len(items), lang)}")
        for c in items[:limit]:
            console.print(f"  {fmt(c)}  [{_rule_ref(c['rule'], c.get('line'))}]")
        if limit is not None and len(items) > limit:
            console.print(w("diff.more", n=len(items) - limit))
    clamps = report["clamped"]["new"]
    if clamps:
        console.print(f"[bold]{w('diff.clamped_new')}[/]{_count(len(clamps), lang)}: {w('diff.asked_allowed')}")
        for c in clamps[:limit]:
            console.print(f"  {c['member']} {c['order']}: {c['asked']:,} {arrow} {c['allowed']:,}  [{c['rule']}]")
        if limit is not None and len(clamps) > limit:
            console.print(w("diff.more", n=len(clamps) - limit))
    maxes = report.get("max_requests", [])
    if maxes:
        console.print(f"[bold]{_say('diff.max_title', lang, n=len(maxes))}[/]")
        for c in maxes[:limit]:
            console.print(f"  {c['member']} {c['order']}: {c['old']:,} {arrow} {c['new']:,}  "
                          f"[{_rule_ref(c['rule'], c.get('line'))}]")
        if limit is not None and len(maxes) > limit:
            console.print(w("diff.more", n=len(maxes) - limit))
    for key, title in (("rejected_only_new", w("diff.rejected_only_new")), ("rejected_only_old", w("diff.rejected_only_old"))):
        for r in report[key]:
            console.print(f"{title}: {r['event']}: {r['reason']}")


def csv_rows(report: dict, lang: str = "en") -> list[list]:
    """The report's figures as rows: section, member, figure, OLD, NEW, change, rule, written at (the
    header in ``lang``; sections and figures by their keys, for a spreadsheet's filters)."""
    rows: list[list] = [word("diff.csv_head", lang).split(",")]
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
        rows.append(["order_tier", c["member"], c["order"], c["old"], c["new"], c.get("date", ""), c["rule"], c["line"] or ""])
    for c in report["clamped"]["new"]:
        rows.append(["clamped", c["member"], c["order"], c["asked"], c["allowed"], c["allowed"] - c["asked"], c["rule"], ""])
    for c in report["clamped"]["old"]:
        rows.append(["clamped_old", c["member"], c["order"], c["asked"], c["allowed"], c["allowed"] - c["asked"], c["rule"], ""])
    for c in report.get("max_requests", []):
        rows.append(["max_request", c["member"], c["order"], c["old"], c["new"], c["new"] - c["old"], c["rule"],
                     c.get("line") or ""])
    for key, side in (("rejected_only_new", "new"), ("rejected_only_old", "old")):
        for r in report[key]:
            rows.append([f"refused_{side}", "", r["event"], "", "", r["reason"], r.get("rule") or "", r.get("line") or ""])
    for c in report.get("settings_changed", []):
        rows.append(["setting", "", c["rule"], "", "", c["change"], c["rule"], c["line"] or ""])
    for tier, c in sorted(report["tiers"].items()):
        rows.append(["tier_members", "", tier, c["old"], c["new"], c["new"] - c["old"], "", ""])
    for move, n in sorted(report["tier_changes"].items()):
        rows.append(["tier_change", "", move, "", "", n, "", ""])
    for m in report["cost_by_month"]:
        rows.append(["cost_month", "", m["month"], m["old"], m["new"], m["new"] - m["old"], "", ""])
    return rows


def to_csv(report: dict, lang: str = "en") -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(csv_rows(report, lang))
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


def histogram_bins(values: list[int], target: int = 12, lang: str = "en") -> list[tuple[str, int, str]]:
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
            label = f"{b_lo:+,}" if b_lo == b_hi else f"{b_lo:+,}〜{b_hi:+,}" if lang == "ja" else f"{b_lo:+,} to {b_hi:+,}"
            bars.append((label, c, "neg" if b_hi < 0 else "pos"))
    if zeros or not values:
        at = sum(1 for _, _, kind in bars if kind == "neg")
        bars.insert(at, (word("diff.no_change", lang), zeros, "zero"))
    return bars


def svg_histogram(values: list[int], title: str, unit: str, lang: str = "en") -> str:
    W, H, L, R, T, B = 760, 296, 60, 20, 36, 74
    bins = histogram_bins(values, lang=lang)
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
                     f'class="{cls}"><title>{html.escape(word("diff.bar_title", lang, label=label, unit=unit, n=c))}'
                     '</title></rect>')
        if c:
            parts.append(f'<text x="{x + bw / 2:.1f}" y="{T + ph - h - 4:.1f}" class="val" text-anchor="middle">{c}</text>')
        lx = x + bw / 2
        parts.append(f'<text x="{lx:.1f}" y="{T + ph + 14}" class="ax" text-anchor="end" '
                     f'transform="rotate(-35 {lx:.1f} {T + ph + 14})">{html.escape(label)}</text>')
    parts.append(f'<line x1="{L}" x2="{W - R}" y1="{T + ph}" y2="{T + ph}" class="axis"/>')
    parts.append(f'<text x="14" y="{T + ph / 2:.1f}" class="ax" transform="rotate(-90 14 {T + ph / 2:.1f})" '
                 f'text-anchor="middle">{html.escape(word("diff.axis_members", lang))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_months(months: list[dict], title: str, lang: str = "en") -> str:
    W, H, L, R, T, B = 760, 320, 80, 20, 50, 60
    pw, ph = W - L - R, H - T - B
    top = max([max(m["old"], m["new"]) for m in months] + [1])
    ystep = _nice(top / 5)
    ymax = math.ceil(top / ystep) * ystep
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
             f'aria-label="{html.escape(title)}">',
             f'<text x="{L}" y="22" class="ttl">{html.escape(title)}</text>',
             f'<rect x="{W - R - 170}" y="30" width="12" height="12" class="old"/>'
             f'<text x="{W - R - 152}" y="41" class="ax">{word("diff.old", lang)}</text>'
             f'<rect x="{W - R - 100}" y="30" width="12" height="12" class="new"/>'
             f'<text x="{W - R - 82}" y="41" class="ax">{word("diff.new", lang)}</text>']
    for i in range(int(ymax / ystep) + 1):
        y = T + ph - ph * (i * ystep) / ymax
        parts.append(f'<line x1="{L}" x2="{W - R}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{L - 6}" y="{y + 4:.1f}" class="ax" text-anchor="end">{_fmt(i * ystep) + "円" if lang == "ja" else "¥" + _fmt(i * ystep)}</text>')
    n = max(len(months), 1)
    gw = pw / n
    bw = max(min(gw * 0.38, 28), 1)
    for i, m in enumerate(months):
        x0 = L + i * gw + gw / 2
        for j, key in enumerate(("old", "new")):
            h = ph * m[key] / ymax
            x = x0 - bw + j * bw
            parts.append(f'<rect x="{x:.1f}" y="{T + ph - h:.1f}" width="{bw - 1:.1f}" height="{h:.1f}" class="{key}">'
                         f'<title>{m["month"]} {word("diff." + key, lang)}: {_yen_signed(m[key], lang).lstrip("+")}</title></rect>')
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
th{background:#f5f7fa;position:sticky;top:0}td:first-child,th:first-child,td.l,th.l{text-align:left}
tr.changed td{background:#fffbea}.muted{color:#9aa5b1}
svg{max-width:100%;height:auto;display:block;margin:6px 0}
svg .ttl{font-size:14px;font-weight:600;fill:#1f2933}svg .ax{font-size:11px;fill:#52606d}svg .val{font-size:11px;fill:#1f2933}
svg .grid{stroke:#e4e7eb}svg .axis{stroke:#9aa5b1}svg .pos{fill:#e07a3f}svg .neg{fill:#3e7cb1}svg .zero{fill:#9aa5b1}
svg .old{fill:#7b8794}svg .new{fill:#e07a3f}
.note{font-size:12px;color:#52606d}.warn{color:#b45309;font-weight:600}
th{word-break:keep-all}th .u,table.nw td{white-space:nowrap}.scroll{overflow-x:auto}
"""


def _count_card(label: str, n: int, lang: str = "en") -> str:
    cls = "up" if n > 0 else "down" if n < 0 else ""
    return (f'<div class="card"><div class="k">{html.escape(label)}</div><div class="v {cls}">'
            f'{_signed(n) if n else word("diff.none", lang)}</div></div>')


def render_html(report: dict, lang: str = "en") -> str:
    e = html.escape
    o, n, t = report["old"], report["new"], report["totals"]

    def w(code: str, **args) -> str:
        return word(code, lang, **args)

    def card(label: str, key: str, money: bool = False) -> str:
        d = t["delta"][key]
        cls = "up" if d > 0 else "down" if d < 0 else ""
        if not d:
            val = w("diff.no_change")
        elif money:
            val = _yen_signed(d, lang, minus="−")
        else:
            val = f"{'+' if d > 0 else '−'}{abs(d):,}"
        old, new = ((_yen_signed(t[side][key], lang).lstrip("+") for side in ("old", "new")) if money
                    else (f"{t[side][key]:,}" for side in ("old", "new")))
        return (f'<div class="card"><div class="k">{e(label)}</div><div class="v {cls}">{val}</div>'
                f'<div class="k">{old} → {new}</div></div>')

    sub = e(w("diff.sub", old_path="\0", old_version=o["version"], new_path="\1", new_version=n["version"],
              events=f'{o["applied"] + o["rejected"]:,}', as_of=report["as_of"], changed=report["changed_members"],
              members=len(report["members"])))
    sub = sub.replace("\0", f"<code>{e(o['path'])}</code>").replace("\1", f"<code>{e(n['path'])}</code>")
    out = ["<!DOCTYPE html>", f'<html lang="{lang}"><head><meta charset="utf-8">',
           f"<title>{e(w('diff.title', program=o['program'], old=o['version'], new=n['version']))}</title>",
           f"<style>{_CSS}</style></head><body>",
           f"<h1>{e(w('diff.h1', program=o['program']))}</h1>",
           f'<p class="sub">{sub}</p>',
           '<div class="cards">', card(w("diff.cost"), "cost_yen", True),
           card(w("diff.liability"), "liability_yen", True), card(w("diff.paid"), "to_pay_yen", True),
           _count_card(w("diff.refused_new"), report["headline"]["refused_by_new"], lang),
           _count_card(w("diff.clamped"), report["headline"]["clamped"], lang), "</div>",
           '<div class="cards">', card(w("diff.points_granted"), "granted"),
           card(w("diff.points_used"), "used"), card(w("diff.points_expired"), "expired"),
           card(w("diff.points_voided"), "void"), card(w("diff.points_outstanding"), "outstanding"), "</div>"]
    for warning in report["warnings"]:
        out.insert(6, f'<p class="warn">{e(w("cmd.warning", text=warning))}</p>')
    if report.get("as_of_note"):
        out.insert(6, f'<p class="note">{e(report["as_of_note"])}</p>')
    if report.get("settings_changed"):
        out.append(f'<h2>{e(_say("diff.settings_title", lang))}</h2><table><tr>'
                   + "".join(f"<th>{e(c)}</th>" for c in _say("diff.settings_cols", lang).split("|")) + "</tr>")
        for c in report["settings_changed"]:
            out.append(f'<tr><td>{e(c["rule"])}</td><td class="l">{e(_say("diff.setting." + c["change"], lang))}</td>'
                       f'<td class="l"><code>{e(c["line"] or "")}</code></td></tr>')
        out.append("</table>")
    if report["by_rule"]:
        out.append(f"<h2>{e(w('diff.by_rule'))}</h2>"
                   f"<table><tr><th>{e(w('diff.rule'))}</th><th class=\"l\">{e(w('diff.written_at'))}</th>"
                   f"<th class=\"l\">{e(w('diff.change_new_old'))}</th></tr>")
        for r in report["by_rule"]:
            out.append(f'<tr><td>{e(r["rule"])}</td><td class="l"><code>{e(r["line"] or "")}</code></td>'
                       f'<td class="l">{e(_delta_text(r["delta"], lang))}</td></tr>')
        out.append("</table>")
    for key, title, cols, row in (
            ("stage_changes", w("diff.stage_changes"),
             ("diff.member", "diff.stage_old", "diff.date_old", "diff.stage_new", "diff.date_new", "diff.rule"),
             lambda c: (c["member"], c["old_stage"], c["old"], c["new_stage"], c["new"], _rule_ref(c["rule"], c["line"]))),
            ("effect_changes", w("diff.effect_changes"),
             ("diff.member", "diff.effect", "diff.detail", "diff.change", "diff.old", "diff.new", "diff.rule"),
             lambda c: (c["member"], c["effect"], c["detail"], _change_word(c["change"], lang), c["old"], c["new"],
                        _rule_ref(c["rule"], c["line"]))),
            ("order_tier_changes", w("diff.order_tier_changes"),
             ("diff.member", "diff.order", "diff.placed", "diff.old", "diff.new", "diff.rule"),
             lambda c: (c["member"], c["order"], c.get("date"), c["old"], c["new"], _rule_ref(c["rule"], c["line"])))):
        if report[key]:
            out.append(f"<h2>{e(title)}{_count(len(report[key]), lang)}</h2><table><tr>"
                       + "".join(f"<th>{e(w(col))}</th>" for col in cols) + "</tr>")
            for c in report[key]:
                out.append("<tr>" + "".join(f'<td class="l">{e(str(v) if v is not None else "–")}</td>' for v in row(c))
                           + "</tr>")
            out.append("</table>")
    if report["clamped"]["new"]:
        out.append(f'<h2>{e(w("diff.clamped_new"))}{_count(len(report["clamped"]["new"]), lang)}</h2><table><tr>'
                   + "".join(f"<th>{e(w(col))}</th>" for col in ("diff.member", "diff.order", "diff.asked", "diff.allowed",
                                                                  "diff.rule")) + "</tr>")
        for c in report["clamped"]["new"]:
            out.append(f'<tr><td>{e(c["member"])}</td><td class="l">{e(c["order"])}</td><td>{c["asked"]:,}</td>'
                       f'<td>{c["allowed"]:,}</td><td class="l">{e(c["rule"])}</td></tr>')
        out.append("</table>")
    if report.get("max_requests"):
        out.append(f'<h2>{e(_say("diff.max_title", lang, n=len(report["max_requests"])))}</h2>'
                   f'<table><tr>{"".join(f"<th>{e(c)}</th>" for c in _say("diff.max_cols", lang).split("|"))}</tr>')
        for c in report["max_requests"]:
            out.append(f'<tr><td>{e(c["member"])}</td><td class="l">{e(c["order"])}</td><td>{c["old"]:,}</td>'
                       f'<td>{c["new"]:,}</td><td class="l">{e(_rule_ref(c["rule"], c.get("line")))}</td></tr>')
        out.append("</table>")
    if report["headline"].get("refused_only_by_old") or report["headline"].get("max_lowered"):
        out.append('<div class="cards">' + _count_card(_say("diff.card.max_lowered", lang), report["headline"]["max_lowered"], lang)
                   + _count_card(_say("diff.card.refusals_removed", lang), report["headline"]["refused_only_by_old"], lang)
                   + "</div>")
    deltas = [r["delta"]["granted"] for r in report["members"]]
    out.append(f"<h2>{e(w('diff.distribution'))}</h2>")
    out.append(svg_histogram(deltas, w("diff.hist_points"), w("diff.unit_points"), lang))
    cost_deltas = [r["delta"]["cost_yen"] for r in report["members"]]
    if cost_deltas != deltas:
        out.append(svg_histogram(cost_deltas, w("diff.hist_yen"), w("diff.unit_yen"), lang))
    out.append(f"<h2>{e(w('diff.cost_by_month'))}</h2>")
    out.append(svg_months(report["cost_by_month"], w("diff.months_title"), lang))
    out.append(f'<p class="note">{e(w("diff.cost_note"))}</p>')
    out.append(f"<h2>{e(w('diff.totals'))}</h2><table><tr><th></th>"
               + "".join(f"<th>{e(w(col))}</th>" for col in ("diff.old", "diff.new", "diff.change")) + "</tr>")
    for k in METRICS:
        if k not in POINT_METRICS and not (t["old"][k] or t["new"][k]):
            continue
        out.append(f"<tr><td>{e(_metric(k, lang))}</td><td>{t['old'][k]:,}</td><td>{t['new'][k]:,}</td><td>{_signed(t['delta'][k])}</td></tr>")
    for tier, c in sorted(report["tiers"].items()):
        out.append(f"<tr><td>{e(w('diff.members_in', tier=tier))}</td><td>{c['old']}</td><td>{c['new']}</td>"
                   f"<td>{_signed(c['new'] - c['old'])}</td></tr>")
    out.append(f"<tr><td>{e(w('diff.events_rejected'))}</td><td>{o['rejected']}</td><td>{n['rejected']}</td>"
               f"<td>{_signed(n['rejected'] - o['rejected'])}</td></tr></table>")
    if report["tier_changes"]:
        out.append(f"<h2>{e(w('diff.tier_changes'))}</h2><table><tr><th>{e(w('diff.from_to'))}</th>"
                   f"<th>{e(w('diff.members_count'))}</th></tr>")
        for k, v in sorted(report["tier_changes"].items()):
            out.append(f"<tr><td>{e(k.replace('->', '→'))}</td><td>{v}</td></tr>")
        out.append("</table>")
    for key, title in (("rejected_only_new", w("diff.events_only_new")), ("rejected_only_old", w("diff.events_only_old"))):
        if report[key]:
            out.append(f"<h2>{e(title)}</h2><table><tr><th>{e(w('diff.event'))}</th><th>{e(w('diff.reason'))}</th></tr>")
            for r in report[key]:
                out.append(f'<tr><td>{e(r["event"])}</td><td style="text-align:left">{e(r["reason"])}</td></tr>')
            out.append("</table>")
    out.append(f"<h2>{e(w('diff.members'))}</h2><div class=\"scroll\"><table class=\"nw\"><tr>"
               f"<th>{e(w('diff.member'))}</th><th>{e(w('diff.tier'))}</th>"
               + "".join(f"<th>{e(_metric(k, lang))}<br><span class=\"u\">{w('diff.old')} → {w('diff.new')}</span></th>"
                         "<th>Δ</th>" for k in MEMBER_METRICS) + "</tr>")
    for r in report["members"]:
        tier = (f"{e(str(r['old']['tier']))} → {e(str(r['new']['tier']))}" if r["tier_changed"]
                else e(str(r["old"]["tier"] or "–")))
        cells = "".join(
            f"<td>{r['old'][k]:,} → {r['new'][k]:,}</td><td>{_signed(r['delta'][k])}</td>" if r["delta"][k]
            else f'<td class="muted">{r["old"][k]:,}</td><td class="muted">0</td>' for k in MEMBER_METRICS)
        out.append(f'<tr class="{"changed" if r["changed"] else ""}"><td>{e(r["member"])}</td><td class="l">{tier}</td>{cells}</tr>')
    out.append("</table></div>")
    made = e(w("diff.made_by", command="\0", at=f"{datetime.now().astimezone():%Y-%m-%d %H:%M}"))
    out.append(f'<p class="note">{made.replace(chr(0), "<code>loyalty diff</code>")}</p>')
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
                 show_progress: bool = True, cluster: Optional[str] = None, lang: str = "en") -> dict:
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
        return _report(old_path, new_path, old_program, new_program, sides, as_of, lines, lang)
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
    return _report(old_path, new_path, old_program, new_program, sides, as_of, lines, lang)


def _report(old_path, new_path, old_program, new_program, sides, as_of, lines, lang) -> dict:
    from engine.model.timeutil import parse_instant

    note = None

    if as_of:
        when = parse_instant(as_of, old_program.tz)
    else:
        lasts = [datetime.fromisoformat(x) for x in (s[0].store.last_time() for s in sides) if x]
        # a version that comes into force after the history: up to its first day, its effects included
        when = default_as_of([old_program, new_program], max(lasts) if lasts else None) or datetime.now(old_program.tz)
        if lasts and when > max(lasts):
            starts = [v for p in (old_program, new_program) for v in p.versions if v.starts_at > max(lasts)]
            first = min(starts, key=lambda v: v.starts_at)
            note = {"version": first.number, "starts": first.starts_at.astimezone(old_program.tz).date().isoformat(),
                    "last": max(lasts).astimezone(old_program.tz).isoformat()}
    old = measure(old_path, sides[0][0].program, sides[0][0].store, sides[0][1], when, lines)
    new = measure(new_path, sides[1][0].program, sides[1][0].store, sides[1][1], when, lines)
    report = compare(old, new)
    report["as_of"] = when.astimezone(old_program.tz).isoformat()
    report["settings_changed"] = _settings_changed(old_path, new_path)
    report["as_of_note"] = _say("diff.as_of_after_history", lang, **note) if note else None
    return report


def _settings_changed(old_path: str, new_path: str) -> list[dict]:
    """The rules whose settings the edit changes, adds or removes (engine/run/whatif.py)."""
    from engine.run.whatif import rule_settings, setting_changes

    return setting_changes(rule_settings(Path(old_path).read_bytes(), old_path),
                           rule_settings(Path(new_path).read_bytes(), new_path))


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
@lang_option
def diff(old_path: str, new_path: str, events: str, html_out: Optional[str], as_of: Optional[str],
         show_all: bool, fmt: str, as_json: bool, exit_code: bool, cluster: Optional[str], lang: Optional[str]) -> None:
    """Replay EVENTS under OLD.yaml and NEW.yaml and show what changes: per member, in total, in yen."""
    from engine.format.i18n import format_problem, translate
    from engine.model.errors import ProgramError
    from engine.run.cluster import ClusterError

    lang = language(lang)
    if cluster and events == "-":
        click.echo(word("diff.cluster_stdin", lang), err=True)
        sys.exit(1)
    if not (cluster and Path(events).is_dir()) and events != "-" and not Path(events).is_file():
        click.echo(translate("file.no_events", lang, path=events), err=True)
        sys.exit(1)
    try:
        report = build_report(old_path, new_path, events, as_of, cluster=cluster, lang=lang)
    except ClusterError as exc:
        click.echo(f"loyalty diff: {exc}", err=True)
        sys.exit(exc.exit_code)
    except ProgramError as exc:
        from engine.run.whatif import rule_at

        for problem in exc.problems:
            rule = _rule_of(rule_at, problem)
            click.echo(format_problem(problem, lang) + (f" [{rule}]" if rule else ""), err=True)
        sys.exit(1)
    except ValueError as exc:
        click.echo(word("cmd.as_of", lang, detail=exc), err=True)
        sys.exit(1)
    if as_json:
        fmt = "json"
    report["warnings"] = [translate(w["code"], lang, **w["args"]) for w in report.get("warning_codes", ())]
    if fmt != "table":
        for warning in report["warnings"]:
            click.echo(word("cmd.warning", lang, text=warning), err=True)
    if fmt == "json":
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
    elif fmt == "csv":
        click.echo(to_csv(report, lang), nl=False)
    else:
        print_table(report, show_all, lang=lang)
    if html_out:
        try:
            Path(html_out).write_text(render_html(report, lang), encoding="utf-8")
        except OSError as exc:
            click.echo(word("cmd.cannot_write", lang, path=html_out, detail=exc.strerror), err=True)
            sys.exit(1)
        click.echo(word("cmd.html_written", lang, path=html_out), err=True)
    sys.exit(1 if exit_code and report["changed_members"] else 0)


def _rule_of(rule_at, problem) -> Optional[str]:
    """The rule a mistake sits in (the rule_id around its position), for the message."""
    try:
        text = Path(problem.pos.file).read_bytes()
    except OSError:
        return None
    return rule_at(text, problem.pos.file, problem.pos.line, problem.pos.col)


COMMANDS = [diff]
