"""`loyalty diff OLD.yaml NEW.yaml EVENTS [--html OUT.html]`: what a program change does.

Replays the same events under both program files (each on its own in-memory ledger) and compares,
member by member and in total, as of the same moment: points granted, used, expired, voided and
still outstanding, the tier, and the cost in yen (points not voided or expired, times the yen
value of a point in the version that granted them: what the shop pays or still owes). Events one
program rejects and the other applies are listed too. Output: a terminal table, ``--json``, and a
self-contained HTML report with inline SVG charts (no scripts, fonts or files from elsewhere).
"""
from __future__ import annotations

import html
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Optional

import click

METRICS = ("granted", "used", "expired", "void", "outstanding", "cost_yen")
LABELS = {"granted": "granted", "used": "used", "expired": "expired", "void": "voided",
          "outstanding": "outstanding", "cost_yen": "cost (yen)"}


@dataclass
class Figures:
    granted: int = 0        # every unit the member received (= valid + pending + held + used + expired + void)
    used: int = 0
    expired: int = 0
    void: int = 0
    outstanding: int = 0    # valid + pending + held: still to be used
    cost_yen: int = 0       # (granted - void - expired) x yen per unit of the granting version
    tier: Optional[str] = None


@dataclass
class Side:
    path: str
    program: str
    version: int
    figures: dict = field(default_factory=dict)       # member -> Figures
    cost_by_month: dict = field(default_factory=dict)  # "YYYY-MM" -> yen (by the month points were granted)
    rejected: dict = field(default_factory=dict)       # event id -> reason
    applied: int = 0


def _unit_values(program) -> dict[int, int]:
    return {v.number: (v.redemption.unit_value_yen if v.redemption else 1) for v in program.versions}


def replay(program, lines, progress=None):
    """Apply the event lines to an in-memory ledger under ``program``: (engine, run result)."""
    from engine.shell.api import Engine

    engine = Engine(program, ":memory:")
    result = engine.runner.run(lines, progress=progress)
    return engine, result


def measure(path: str, program, engine, result, when: datetime) -> Side:
    from engine.run.report import as_of

    values = _unit_values(program)
    side = Side(path, program.id, program.version_at(when).number, applied=len(result.applied),
                rejected={(r.get("event") or f"line {r.get('line')}"): r["reason"] for r in result.rejected})
    for member in engine.store.members():
        state = engine.store.load(member)
        if state is None or not state.registered:
            continue
        got = engine.member(member, when)
        view, _, _ = as_of(program, state, when)
        f = Figures(tier=got["tier"])
        p = got["points"]
        f.granted = sum(p[s] for s in ("valid", "pending", "held", "used", "expired", "void"))
        f.used, f.expired, f.void = p["used"], p["expired"], p["void"]
        f.outstanding = p["valid"] + p["pending"] + p["held"]
        for lot in view.all_lots():
            if lot.state not in ("valid", "pending", "held", "used"):   # void, expired, converted
                continue
            yen = lot.amount * values.get(lot.version, 1)
            f.cost_yen += yen
            month = lot.granted_at.astimezone(program.tz).strftime("%Y-%m")
            side.cost_by_month[month] = side.cost_by_month.get(month, 0) + yen
        side.figures[member] = f
    return side


def compare(old: Side, new: Side) -> dict:
    members = sorted(set(old.figures) | set(new.figures))
    rows = []
    totals = {"old": dict.fromkeys(METRICS, 0), "new": dict.fromkeys(METRICS, 0)}
    tiers: dict[str, dict[str, int]] = {}
    tier_moves: dict[str, int] = {}
    for m in members:
        a, b = old.figures.get(m, Figures()), new.figures.get(m, Figures())
        delta = {k: getattr(b, k) - getattr(a, k) for k in METRICS}
        rows.append({"member": m, "old": asdict(a), "new": asdict(b), "delta": delta,
                     "tier_changed": a.tier != b.tier, "changed": a.tier != b.tier or any(delta.values())})
        for k in METRICS:
            totals["old"][k] += getattr(a, k)
            totals["new"][k] += getattr(b, k)
        for side, fig in (("old", a), ("new", b)):
            tiers.setdefault(str(fig.tier), {"old": 0, "new": 0})[side] += 1
        if a.tier != b.tier:
            key = f"{a.tier} -> {b.tier}"
            tier_moves[key] = tier_moves.get(key, 0) + 1
    months = sorted(set(old.cost_by_month) | set(new.cost_by_month))
    only_old = sorted(set(old.rejected) - set(new.rejected))
    only_new = sorted(set(new.rejected) - set(old.rejected))
    return {
        "old": {"path": old.path, "program": old.program, "version": old.version, "applied": old.applied,
                "rejected": len(old.rejected)},
        "new": {"path": new.path, "program": new.program, "version": new.version, "applied": new.applied,
                "rejected": len(new.rejected)},
        "members": rows,
        "changed_members": sum(1 for r in rows if r["changed"]),
        "totals": {**totals, "delta": {k: totals["new"][k] - totals["old"][k] for k in METRICS}},
        "tiers": tiers,
        "tier_changes": tier_moves,
        "cost_by_month": [{"month": mo, "old": old.cost_by_month.get(mo, 0), "new": new.cost_by_month.get(mo, 0)}
                          for mo in months],
        "rejected_only_old": [{"event": e, "reason": old.rejected[e]} for e in only_old],
        "rejected_only_new": [{"event": e, "reason": new.rejected[e]} for e in only_new],
    }


# --- terminal -----------------------------------------------------------------------------------

def _signed(n: int) -> str:
    return f"{n:+,}" if n else "0"


def print_table(report: dict, show_all: bool, out=None) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    stream = out or sys.stdout
    console = Console(file=stream, width=None if _isatty(stream) else 120, highlight=False)
    o, n = report["old"], report["new"]
    console.print(f"[bold]OLD[/] {o['path']} ({o['program']} v{o['version']})  ->  "
                  f"[bold]NEW[/] {n['path']} ({n['program']} v{n['version']}), as of {report['as_of']}")
    summary = Table(box=box.SIMPLE_HEAD, title="Totals", title_justify="left")
    summary.add_column("")
    for col in ("OLD", "NEW", "change"):
        summary.add_column(col, justify="right")
    t = report["totals"]
    for k in METRICS:
        d = t["delta"][k]
        style = "green" if d < 0 and k == "cost_yen" else "red" if d > 0 and k == "cost_yen" else ""
        summary.add_row(LABELS[k], f"{t['old'][k]:,}", f"{t['new'][k]:,}", f"[{style}]{_signed(d)}[/]" if style else _signed(d))
    summary.add_row("members changed", "", "", f"{report['changed_members']} of {len(report['members'])}")
    for tier, c in sorted(report["tiers"].items()):
        summary.add_row(f"members in {tier}", str(c["old"]), str(c["new"]), _signed(c["new"] - c["old"]))
    summary.add_row("events rejected", str(o["rejected"]), str(n["rejected"]), _signed(n["rejected"] - o["rejected"]))
    console.print(summary)
    rows = [r for r in report["members"] if show_all or r["changed"]]
    if rows:
        table = Table(box=box.SIMPLE_HEAD, title="Members" + ("" if show_all else " whose figures change"),
                      title_justify="left")
        table.add_column("member")
        table.add_column("tier")
        table.add_column("granted OLD", justify="right")
        table.add_column("granted NEW", justify="right")
        for k in METRICS:
            table.add_column(f"Δ {LABELS[k]}", justify="right")
        for r in rows:
            tier = (f"{r['old']['tier']} -> {r['new']['tier']}" if r["tier_changed"] else str(r["old"]["tier"]))
            table.add_row(r["member"], tier, f"{r['old']['granted']:,}", f"{r['new']['granted']:,}",
                          *(_signed(r["delta"][k]) for k in METRICS))
        console.print(table)
    else:
        console.print("No member's figures change.")
    for key, title in (("rejected_only_new", "Rejected under NEW only"), ("rejected_only_old", "Rejected under OLD only")):
        for r in report[key]:
            console.print(f"{title}: {r['reason']}")


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
.note{font-size:12px;color:#52606d}
"""


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
           '<div class="cards">', card("cost to the shop", "cost_yen", True), card("points granted", "granted"),
           card("points used", "used"), card("points expired", "expired"), card("points voided", "void"),
           card("points outstanding", "outstanding"), "</div>"]
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
               + "".join(f"<th>{e(LABELS[k])}<br>OLD → NEW</th><th>Δ</th>" for k in METRICS) + "</tr>")
    for r in report["members"]:
        tier = (f"{e(str(r['old']['tier']))} → {e(str(r['new']['tier']))}" if r["tier_changed"]
                else e(str(r["old"]["tier"])))
        cells = "".join(
            f"<td>{r['old'][k]:,} → {r['new'][k]:,}</td><td>{_signed(r['delta'][k])}</td>" if r["delta"][k]
            else f'<td class="muted">{r["old"][k]:,}</td><td class="muted">0</td>' for k in METRICS)
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

        total = sum(count_lines(str(f)) or 0 for f in event_files(events))
        sides = []
        with cluster_client(cluster) as client:
            for path, program in ((old_path, old_program), (new_path, new_program)):
                with replay_progress(total if show_progress else None, f"replaying under {Path(path).name}",
                                     force=False) as progress:
                    sides.append(replay_on_cluster(client, path, program, events, progress if show_progress else None))
        return _report(old_path, new_path, old_program, new_program, sides, as_of)
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
    return _report(old_path, new_path, old_program, new_program, sides, as_of)


def _report(old_path, new_path, old_program, new_program, sides, as_of) -> dict:
    from engine.model.timeutil import parse_instant

    if as_of:
        when = parse_instant(as_of, old_program.tz)
    else:
        lasts = [datetime.fromisoformat(x) for x in (s[0].store.last_time() for s in sides) if x]
        when = max(lasts) if lasts else datetime.now(old_program.tz)
    old = measure(old_path, old_program, *sides[0], when)
    new = measure(new_path, new_program, *sides[1], when)
    report = compare(old, new)
    report["as_of"] = when.astimezone(old_program.tz).isoformat()
    return report


@click.command("diff")
@click.argument("old_path", metavar="OLD.yaml")
@click.argument("new_path", metavar="NEW.yaml")
@click.argument("events", metavar="EVENTS")
@click.option("--html", "html_out", default=None, metavar="OUT.html", help="Also write a self-contained HTML report")
@click.option("--as-of", "as_of", default=None, help="Compare as of this time (default: the last event's time)")
@click.option("--all", "show_all", is_flag=True, help="List every member, not only those whose figures change")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON")
@click.option("--exit-code", is_flag=True, help="Exit 1 when any member's figures change (for CI)")
@click.option("--cluster", default=None, metavar="tcp://HOST:PORT",
              help="Replay on the Dask scheduler at this address, sharded by member (engine/run/cluster.py); "
                   "EVENTS may then be a folder of .jsonl files")
def diff(old_path: str, new_path: str, events: str, html_out: Optional[str], as_of: Optional[str],
         show_all: bool, as_json: bool, exit_code: bool, cluster: Optional[str]) -> None:
    """Replay EVENTS under OLD.yaml and NEW.yaml and show what changes: per member, in total, in yen."""
    from engine.model.errors import ProgramError
    from engine.run.cluster import ClusterError

    if cluster and events == "-":
        click.echo("loyalty diff: --cluster reads EVENTS twice: give a file or a folder, not standard input", err=True)
        sys.exit(1)
    if not (cluster and Path(events).is_dir()) and events != "-" and not Path(events).is_file():
        click.echo(f"{events}: no such events file", err=True)
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
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print_table(report, show_all)
    if html_out:
        Path(html_out).write_text(render_html(report), encoding="utf-8")
        click.echo(f"HTML report: {html_out}", err=True)
    sys.exit(1 if exit_code and report["changed_members"] else 0)


COMMANDS = [diff]
