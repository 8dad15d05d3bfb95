"""The points liability (issue 22): a month-by-month roll-forward of the units a program owes, in
units and in yen, for the auditor closing a month under ASBJ Statement No. 29 / IFRS 15.

For each month: opening, issued (by kind of rule: earn, bonus, grant, migration), used, restored
(used units given back by a cancellation or return), expired, voided, converted, and the closing
balance; the roll-forward identity

    opening + issued − used + restored − expired − voided − converted = closing

is checked against a closing balance found independently of the flows: the open lots (pending,
valid, held) at the month's end, as the close through that moment recorded them (engine/run/close.py)
or, for a month no close ended, as the members' views at its end show them. A month whose
happenings were not booked (no close) shows the difference.

Which month an entry belongs to: its business time's (``Entry.at``), unless that month had been
closed when the entry was booked (``Entry.booked_at`` after a close through a later moment): a late
entry is an adjustment of the first month still open when it was booked, so the report of a closed
month never changes.

Yen: every unit at the value of the version its lot came from (``redemption.unit_value_yen``, else
``accounting.unit_value_yen``): a conversion (RC-6) moves units out at the old value and in at the
new. Contract liability = outstanding yen × (1 − expected breakage); observed breakage = expired ÷
(expired + used net of restores) over the trailing ``breakage_window_months``.
"""
from __future__ import annotations

import csv
import html
import io
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Optional

from engine.format import messages
from engine.format.messages import COMMAND_WORDS, unit_word, word
from engine.format.program import Program
from engine.model.state import OPEN
from engine.model.timeutil import start_of
from engine.run.report import PastViewUnavailable, as_of, state_at

ISSUED = ("earn", "bonus", "grant", "migration")
OUT = {"used": "used", "expired": "expired", "void": "voided", "converted": "converted"}
FLOWS = ("issued", "used", "restored", "expired", "voided", "converted", "other")


class LiabilityError(ValueError):
    """A report that cannot be made: ``code`` and ``values`` name its catalogue entry
    (engine/format/messages.py); the message is the entry's English text, the other language is
    looked up by the same code."""

    def __init__(self, code: str, **values):
        super().__init__(messages.render(code, values))
        self.code, self.values = code, values


def _month(text: str, what: str) -> tuple[int, int]:
    try:
        day = date.fromisoformat(text if len(text) == 10 else f"{text}-01")
    except (ValueError, TypeError):
        raise LiabilityError("liability.not_a_month", what=what, text=repr(text)) from None
    return day.year, day.month


def month_range(start: str, end: str) -> tuple[tuple[int, int], tuple[int, int]]:
    first, last = _month(start, "--from"), _month(end, "--to")
    if last < first:
        raise LiabilityError("liability.to_before_from", start=start, end=end)
    return first, last


def _next(ym: tuple[int, int]) -> tuple[int, int]:
    return (ym[0] + 1, 1) if ym[1] == 12 else (ym[0], ym[1] + 1)


def _key(ym: tuple[int, int]) -> str:
    return f"{ym[0]:04d}-{ym[1]:02d}"


def month_end(ym: tuple[int, int], program: Program) -> datetime:
    """The last instant of the month in the program's zone (a close through it closes the month)."""
    nxt = _next(ym)
    return start_of(date(nxt[0], nxt[1], 1), program.tz) - timedelta(microseconds=1)


def _num(value: Fraction):
    return int(value) if value.denominator == 1 else float(value)


def issued_kind(program: Program, entry) -> str:
    """earn | bonus | grant | migration: the kind of rule that issued a new lot."""
    if entry.source.startswith("version@"):
        return "migration"
    if entry.action == "earn":
        return "earn"
    if entry.rule in _bonus_rules(program):
        return "bonus"
    return "grant"


def _bonus_rules(program: Program) -> frozenset:
    return frozenset(b.rule for v in program.versions for b in v.bonuses)


def _flow(entry) -> Optional[tuple[str, int]]:
    """(flow, sign on the open balance) of an entry that crosses the open balance's edge; None: a
    move inside it (pending → valid, valid → held, a shortened expiry) or outside it."""
    into, out_of = entry.to_state in OPEN, entry.from_state in OPEN
    if into and not out_of:
        if entry.from_state is None:
            return "issued", 1
        return ("restored" if entry.from_state == "used" else "other"), 1
    if out_of and not into:
        return OUT.get(entry.to_state, "other"), -1
    return None


def _zero() -> dict:
    return {"issued": dict.fromkeys(ISSUED, Fraction(0)), **{f: Fraction(0) for f in FLOWS if f != "issued"}}


def _posted_month(entry, closes: list[dict], program: Program) -> tuple[tuple[int, int], bool]:
    """The month the entry is booked in and whether it is late (its own month closed then)."""
    local = entry.at.astimezone(program.tz)
    own = (local.year, local.month)
    if entry.booked_at is None:
        return own, False
    closed_through = None
    for row in closes:
        if row["booked_at"] < entry.booked_at and (closed_through is None or row["through"] > closed_through):
            closed_through = row["through"]
    if closed_through is None or entry.at > closed_through:
        return own, False
    first_open = (closed_through + timedelta(microseconds=1)).astimezone(program.tz)
    posted = max(own, (first_open.year, first_open.month))
    return posted, posted != own


def _outstanding_at(program: Program, store, at: datetime, closes: list[dict]) -> tuple[dict, str]:
    """The open units at ``at`` by expiry month {month: (units, yen)}, and where they come from: the
    snapshot of the close through exactly ``at`` ("close"), else the members' views then ("views")."""
    snap = [row for row in closes if row["through"] == at]
    if snap:
        rows = snap[0]["snapshot"]["by_expiry"]
        return {k: (Fraction(v["units"]), Fraction(str(v["yen"]))) for k, v in rows.items()}, "close"
    out: dict[str, tuple[Fraction, Fraction]] = {}
    for member in store.members():
        try:
            past, _ = state_at(program, store, store.load(member), at)
        except PastViewUnavailable as exc:
            raise LiabilityError("liability.cannot_rebuild", at=at.isoformat(), detail=str(exc)) from None
        if past is None or not past.registered:
            continue
        view, _, _ = as_of(program, past, at)
        for lot in view.lots:
            last = view.lot_expires_on(lot)
            key = last.isoformat()[:7] if last is not None else "none"
            units, yen = out.get(key, (Fraction(0), Fraction(0)))
            out[key] = (units + lot.amount, yen + lot.amount * Fraction(str(program.unit_value_yen(lot.version))))
    return dict(sorted(out.items())), "views"


def liability_report(program: Program, store, first: tuple[int, int], last: tuple[int, int]) -> dict:
    acc = program.accounting
    expected = Fraction(str(acc.expected_breakage)) if acc is not None else Fraction(0)
    window = acc.breakage_window_months if acc is not None else 12
    closes = sorted(store.closes(), key=lambda row: row["booked_at"])
    # flows by posted month, units and yen; late entries counted apart too
    units: dict[tuple[int, int], dict] = {}
    yen: dict[tuple[int, int], dict] = {}
    late: dict[tuple[int, int], list] = {}
    for member in store.members():
        state = store.load(member)
        versions = {lot.id: lot.version for lot in (state.lots + state.closed)} if state is not None else {}
        for entry in store.entries(member):
            flow = _flow(entry)
            if flow is None:
                continue
            name, sign = flow
            month, is_late = _posted_month(entry, closes, program)
            value = Fraction(str(program.unit_value_yen(versions.get(entry.lot, entry.version))))
            u, y = units.setdefault(month, _zero()), yen.setdefault(month, _zero())
            if name == "issued":
                kind = issued_kind(program, entry)
                u["issued"][kind] += entry.amount
                y["issued"][kind] += entry.amount * value
            else:
                u[name] += entry.amount
                y[name] += entry.amount * value
            if is_late:
                row = late.setdefault(month, [0, Fraction(0), Fraction(0)])
                row[0] += 1
                row[1] += sign * entry.amount
                row[2] += sign * entry.amount * value

    def net(f: dict) -> Fraction:
        return (sum(f["issued"].values()) - f["used"] + f["restored"] - f["expired"] - f["voided"] - f["converted"]
                + f["other"])

    opening_u = sum((net(f) for m, f in units.items() if m < first), Fraction(0))
    opening_y = sum((net(f) for m, f in yen.items() if m < first), Fraction(0))
    months = []
    ym = first
    last_through = max((row["through"] for row in closes), default=None)
    history: list[tuple[tuple[int, int], Fraction, Fraction]] = []   # (month, expired, used net) for breakage
    for m in sorted(units):
        if m < first:
            f = units[m]
            history.append((m, f["expired"], f["used"] - f["restored"]))
    by_expiry: dict = {}
    while True:
        end = month_end(ym, program)
        fu, fy = units.get(ym, _zero()), yen.get(ym, _zero())
        roll_u, roll_y = opening_u + net(fu), opening_y + net(fy)
        by_expiry, source = _outstanding_at(program, store, end, closes)
        closing_u = sum((v[0] for v in by_expiry.values()), Fraction(0))
        closing_y = sum((v[1] for v in by_expiry.values()), Fraction(0))
        history.append((ym, fu["expired"], fu["used"] - fu["restored"]))
        recent = [h for h in history if _months_between(h[0], ym) < window]
        expired_w = sum((h[1] for h in recent), Fraction(0))
        used_w = sum((h[2] for h in recent), Fraction(0))
        observed = expired_w / (expired_w + used_w) if expired_w + used_w > 0 else None
        lr = late.get(ym, [0, Fraction(0), Fraction(0)])
        months.append({
            "month": _key(ym),
            "closed": last_through is not None and last_through >= end,
            "closing_from": source,
            "units": _figures(opening_u, fu, roll_u, closing_u),
            "yen": _figures(opening_y, fy, roll_y, closing_y),
            "identity": roll_u == closing_u and roll_y == closing_y,
            "late": {"entries": lr[0], "units": _num(lr[1]), "yen": _num(lr[2])},
            "observed_breakage": float(round(observed, 6)) if observed is not None else None,
            "breakage_window": {"from": _key(_back(ym, window - 1)), "to": _key(ym),
                                "expired": _num(expired_w), "used": _num(used_w)},
            "contract_liability_yen": _yen(closing_y * (1 - expected)),
        })
        opening_u, opening_y = roll_u, roll_y
        if ym == last:
            break
        ym = _next(ym)
    out = {
        "program": program.id,
        "unit": program.unit,
        "points_kind": acc.points if acc is not None else "free",
        "from": _key(first), "to": _key(last),
        "expected_breakage": float(expected),
        "breakage_window_months": window,
        "closes": [{"through": row["through"].astimezone(program.tz).isoformat(),
                    "booked_at": row["booked_at"].isoformat()} for row in closes],
        "months": months,
        "identity": all(m["identity"] for m in months),
        "outstanding_by_expiry": {
            "as_of": month_end(last, program).isoformat(),
            "rows": [{"expires": k, "units": _num(v[0]), "yen": _num(v[1])} for k, v in by_expiry.items()],
        },
        "prepaid": (_prepaid(program, store, first, last, closes, units, yen)
                    if acc is not None and acc.points == "prepaid" else None),
    }
    return out


def _months_between(a: tuple[int, int], b: tuple[int, int]) -> int:
    return (b[0] * 12 + b[1]) - (a[0] * 12 + a[1])


def _back(ym: tuple[int, int], n: int) -> tuple[int, int]:
    k = ym[0] * 12 + ym[1] - 1 - n
    return k // 12, k % 12 + 1


def _yen(value: Fraction) -> int:
    """Whole yen, half up (the books keep yen)."""
    return int((Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _figures(opening: Fraction, f: dict, roll: Fraction, closing: Fraction) -> dict:
    issued = {k: _num(v) for k, v in f["issued"].items()}
    issued["total"] = _num(sum(f["issued"].values()))
    out = {"opening": _num(opening), "issued": issued}
    for name in FLOWS[1:]:
        if name != "other" or f[name]:
            out[name] = _num(f[name])
    out.update(roll_forward=_num(roll), closing=_num(closing), difference=_num(closing - roll))
    return out


def _prepaid(program: Program, store, first, last, closes, units: dict, yen: dict) -> dict:
    """資金決済法: for each base date within the period, the base period's figures (the months after
    the previous base date's month through the base date's: 発行額 issued, 回収額 used net of
    restores, and what expired or was voided), the unused balance at the base date (基準日未使用
    残高), half of it (the program's deposit_share) to deposit when above the threshold, and the
    day the report and the deposit are due (``due_within_months`` after the base date)."""
    acc = program.accounting
    if acc is None:   # the caller asks only for a program that keeps prepaid accounts
        return {}
    rows, periods = [], []
    bases = sorted(acc.report_dates)
    for year in range(first[0], last[0] + 1):
        for k, (month, day) in enumerate(bases):
            if not (first <= (year, month) <= last):
                continue
            try:
                d = date(year, month, day)
            except ValueError:
                continue   # 02-29 in a common year
            at = start_of(d + timedelta(days=1), program.tz) - timedelta(microseconds=1)
            by_expiry, _ = _outstanding_at(program, store, at, closes)
            unused = sum((v[1] for v in by_expiry.values()), Fraction(0))
            unused_units = sum((v[0] for v in by_expiry.values()), Fraction(0))
            above = unused > acc.deposit_threshold_yen
            prev = bases[k - 1] if k else bases[-1]
            since = (year if k else year - 1, prev[0])    # the previous base date's month
            if len(bases) == 1:
                since = (year - 1, month)
            period = [m for m in set(units) | set(yen) if since < m <= (year, month)]
            y = _period(yen, period)
            u = _period(units, period)
            rows.append({"date": d.isoformat(), "unused_yen": _yen(unused), "above_threshold": above,
                         "deposit_yen": _yen(unused * Fraction(str(acc.deposit_share))) if above else 0})
            periods.append({"base_date": d.isoformat(), "from": _key(_next(since)), "to": _key((year, month)),
                            "issued_units": _num(u["issued"]), "issued_yen": _yen(y["issued"]),
                            "used_units": _num(u["used"]), "used_yen": _yen(y["used"]),
                            "expired_yen": _yen(y["expired"]), "voided_yen": _yen(y["voided"]),
                            "unused_units": _num(unused_units), "unused_yen": _yen(unused),
                            "deposit_yen": rows[-1]["deposit_yen"],
                            "due": _due(d, acc.due_within_months).isoformat()})
    return {"threshold_yen": acc.deposit_threshold_yen, "deposit_share": acc.deposit_share,
            "due_within_months": acc.due_within_months,
            "base_dates": sorted(rows, key=lambda r: r["date"]),
            "periods": sorted(periods, key=lambda r: r["base_date"])}


def _period(flows: dict, months: list) -> dict:
    """The flows of ``months`` added up: issued (every kind), used net of restores, expired, voided."""
    out = {"issued": Fraction(0), "used": Fraction(0), "expired": Fraction(0), "voided": Fraction(0)}
    for m in months:
        f = flows[m]
        out["issued"] += sum(f["issued"].values())
        out["used"] += f["used"] - f["restored"]
        out["expired"] += f["expired"]
        out["voided"] += f["voided"]
    return out


def _due(d: date, n: int) -> date:
    """The last day of ``n`` months counted from the day after ``d`` (資金決済法: 基準日の翌日から
    起算して2月以内): 31 March -> 31 May, 30 September -> 30 November."""
    start = d + timedelta(days=1)
    k = start.year * 12 + start.month - 1 + n
    y, m = k // 12, k % 12 + 1
    last = (date(y + (m == 12), m % 12 + 1, 1) - timedelta(days=1)).day
    return date(y, m, min(start.day, last)) - timedelta(days=1)


# -- output ---------------------------------------------------------------------------------------

COLUMNS = ("opening", "earn", "bonus", "grant", "migration", "used", "restored", "expired", "voided", "converted",
           "closing")


def _row(fig: dict) -> list:
    issued = fig["issued"]
    return [fig["opening"], issued["earn"], issued["bonus"], issued["grant"], issued["migration"], fig["used"],
            fig["restored"], fig["expired"], fig["voided"], fig["converted"], fig["closing"]]


def _fmt(v) -> str:
    return f"{v:,}" if isinstance(v, int) else f"{v:,.2f}"


def _w(lang: str):
    return lambda code, **values: word(code, lang, **values)


def _col(name: str, lang: str) -> str:
    """A column's name: as the CSV names it in English, its word in Japanese."""
    if lang != "ja":
        return name
    return word(f"liability.col.{name}" if f"liability.col.{name}" in COMMAND_WORDS else f"liability.{name}", lang)


def _head(report: dict, lang: str, code: str = "liability.head") -> str:
    w = _w(lang)
    kind = w(f"liability.kind.{report['points_kind']}") if lang == "ja" else report["points_kind"]
    return w(code, program=report["program"], start=report["from"], end=report["to"], kind=kind,
             unit=unit_word(report["unit"], lang), breakage=f"{report['expected_breakage']:.1%}")


def _money(amount, lang: str) -> str:
    return f"{amount:,}円" if lang == "ja" else f"¥{amount:,}"


def _cols(text: str) -> int:
    """Terminal columns of ``text`` (a Japanese character takes two)."""
    from unicodedata import east_asian_width

    return sum(2 if east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int, left: bool = False) -> str:
    """Padded to ``width`` terminal columns."""
    fill = " " * max(width - _cols(text), 0)
    return text + fill if left else fill + text


def as_text(report: dict, lang: str = "en") -> str:
    w = _w(lang)
    lines = [_head(report, lang)]
    for unit in ("units", "yen"):
        head = _pad(_col("month", lang), 9, left=True) + "".join(
            _pad(_col(c, lang), 12) for c in COLUMNS) + "  " + _col("identity", lang)
        name = w(f"liability.{unit}") if lang == "ja" else unit
        lines += ["", f"[{name}]", head, "-" * _cols(head)]
        for m in report["months"]:
            fig = m[unit]
            mark = w("liability.ok") if fig["difference"] == 0 else w("liability.diff", n=_fmt(fig["difference"]))
            lines.append(f"{m['month']:<9}" + "".join(f"{_fmt(v):>12}" for v in _row(fig)) + f"  {mark}")
    wide = (9, 8, 6, 10, 14) if lang != "ja" else (9, 10, 12, 14, 16)   # a Japanese heading is wider
    lines += ["", _pad(_col("month", lang), wide[0], left=True) + _pad(_col("closed", lang), wide[1])
              + _pad(_col("late_entries" if lang == "ja" else "late", lang), wide[2])
              + _pad(_col("observed", lang), wide[3])
              + _pad(_col("liability_yen", lang) if lang == "ja" else "liability ¥", wide[4])]
    for m in report["months"]:
        obs = f"{m['observed_breakage']:.1%}" if m["observed_breakage"] is not None else "-"
        closed = w("liability.yes") if m["closed"] else w("liability.no")
        lines.append(_pad(m["month"], wide[0], left=True) + _pad(closed, wide[1]) + _pad(str(m["late"]["entries"]), wide[2])
                     + _pad(obs, wide[3]) + _pad(f"{m['contract_liability_yen']:,}", wide[4]))
    exp = report["outstanding_by_expiry"]
    lines += ["", w("liability.by_expiry", at=exp["as_of"])]
    lines += [w("liability.by_expiry_row", month=r["expires"], units=_fmt(r["units"]), yen=_fmt(r["yen"]))
              for r in exp["rows"]]
    if report["prepaid"] is not None:
        p = report["prepaid"]
        lines += ["", w("liability.prepaid", share=f"{p['deposit_share']:.0%}", threshold=_money(p["threshold_yen"], lang))]
        lines += [w("liability.unused", date=r["date"], yen=_money(r["unused_yen"], lang))
                  + (w("liability.deposit", yen=_money(r["deposit_yen"], lang)) if r["above_threshold"] else "")
                  for r in p["base_dates"]]
        lines += [_say("liability.prepaid.period", lang, **_period_args(r)) for r in p.get("periods", ())]
    lines.append("")
    lines.append(w("liability.identity_holds") if report["identity"] else w("liability.identity_fails"))
    return "\n".join(lines)


def as_csv(report: dict, lang: str = "en") -> str:
    """One row per month and measure; the header (and the measure) in ``lang``, the figures as they are."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    names = ["month", "measure", *COLUMNS, "roll_forward", "difference", "closed", "late_entries",
             "observed_breakage", "contract_liability_yen"]
    w.writerow([_col(n, lang) for n in names])
    for m in report["months"]:
        for unit in ("units", "yen"):
            fig = m[unit]
            w.writerow([m["month"], word(f"liability.{unit}", lang) if lang == "ja" else unit, *_row(fig),
                        fig["roll_forward"], fig["difference"], m["closed"],
                        m["late"]["entries"], "" if m["observed_breakage"] is None else m["observed_breakage"],
                        m["contract_liability_yen"]])
    _csv_more(w, report, lang)
    return buf.getvalue()


def _csv_more(w, report: dict, lang: str = "en") -> None:
    """The report's other figures, each table after a blank line with its own header (in ``lang``):
    the breakage windows and late entries by month, outstanding by expiry month, the prepaid periods."""
    def header(names: list[str]) -> None:
        w.writerow([_col(n, lang) for n in names])

    w.writerow([])
    header(["month", "closed", "closing_from", "late_entries", "late_units", "late_yen", "observed_breakage",
            "window_from", "window_to", "window_expired", "window_used", "expected_breakage",
            "contract_liability_yen"])
    for m in report["months"]:
        win = m["breakage_window"]
        w.writerow([m["month"], m["closed"], m["closing_from"], m["late"]["entries"], m["late"]["units"],
                    m["late"]["yen"], "" if m["observed_breakage"] is None else m["observed_breakage"],
                    win["from"], win["to"], win["expired"], win["used"], report["expected_breakage"],
                    m["contract_liability_yen"]])
    exp = report["outstanding_by_expiry"]
    w.writerow([])
    header(["as_of", "expires", "units", "yen"])
    for r in exp["rows"]:
        w.writerow([exp["as_of"], r["expires"], r["units"], r["yen"]])
    if report.get("prepaid"):
        w.writerow([])
        header(["base_date", "period_from", "period_to", "issued_units", "issued_yen", "used_units", "used_yen",
                "expired_yen", "voided_yen", "unused_units", "unused_yen", "above_threshold", "deposit_yen", "due"])
        above = {r["date"]: r["above_threshold"] for r in report["prepaid"]["base_dates"]}
        for r in report["prepaid"].get("periods", ()):
            w.writerow([r["base_date"], r["from"], r["to"], r["issued_units"], r["issued_yen"], r["used_units"],
                        r["used_yen"], r["expired_yen"], r["voided_yen"], r["unused_units"], r["unused_yen"],
                        above.get(r["base_date"], False), r["deposit_yen"], r["due"]])


def as_html(report: dict, lang: str = "en") -> str:
    e = html.escape
    w = _w(lang)
    rows = []
    for m in report["months"]:
        for unit in ("units", "yen"):
            fig = m[unit]
            cells = "".join(f"<td>{e(_fmt(v))}</td>" for v in _row(fig))
            ok = w("liability.ok") if fig["difference"] == 0 else e(w("liability.diff", n=_fmt(fig["difference"])))
            name = w(f"liability.{unit}") if lang == "ja" else unit
            rows.append(f"<tr><td>{e(m['month'])}</td><td>{name}</td>{cells}<td>{ok}</td>"
                        f"<td>{m['contract_liability_yen']:,}</td></tr>")
    cols = ("month", "measure", *COLUMNS, "identity")
    head = "".join(f"<th>{e(_col(c, lang))}</th>" for c in cols)
    head += f"<th>{e(_col('contract_liability_yen', lang) if lang == 'ja' else 'contract liability ¥')}</th>"
    exp = report["outstanding_by_expiry"]
    exp_rows = "".join(f"<tr><td>{e(r['expires'])}</td><td>{e(_fmt(r['units']))}</td><td>{e(_fmt(r['yen']))}</td></tr>"
                       for r in exp["rows"])
    exp_head = "".join(f"<th>{e(c)}</th>" for c in ((_col("expires", lang), w("liability.units"), w("liability.yen"))
                                                    if lang == "ja" else ("expires", "units", "yen")))
    return (f"<!doctype html><html lang=\"{lang}\"><meta charset=\"utf-8\">"
            f"<title>{e(w('liability.title', program=report['program']))}</title>"
            "<style>td{text-align:right}td:first-child{text-align:left}</style>"
            f"<h1>{e(_head(report, lang, 'liability.html_head'))}</h1>"
            f"<p>{e(_head(report, lang, 'liability.html_sub'))}</p>"
            f"<table border=\"1\"><tr>{head}</tr>{''.join(rows)}</table>"
            f"<h2>{e(w('liability.by_expiry_title', at=exp['as_of']))}</h2>"
            f"<table border=\"1\"><tr>{exp_head}</tr>{exp_rows}</table>"
            f"{_html_more(report, lang)}</html>\n")


def _say(code: str, lang: str = "en", **args) -> str:
    from engine.format import messages

    return messages.render(code, args, lang)


def _period_args(r: dict) -> dict:
    return {"date": r["base_date"], "start": r["from"], "end": r["to"], "issued": f"{r['issued_yen']:,}",
            "used": f"{r['used_yen']:,}", "expired": f"{r['expired_yen']:,}", "unused": f"{r['unused_yen']:,}",
            "deposit": f"{r['deposit_yen']:,}", "due": r["due"]}


def _html_more(report: dict, lang: str = "en") -> str:
    """The figures the first tables leave out: closes, late entries and breakage by month; the
    prepaid base periods (資金決済法)."""
    e = html.escape

    def head(code: str) -> str:
        return "".join(f"<th>{e(c)}</th>" for c in _say(code, lang).split("|"))

    rows = []
    for m in report["months"]:
        win = m["breakage_window"]
        obs = f"{m['observed_breakage']:.1%}" if m["observed_breakage"] is not None else "–"
        cells = (m["month"], "✓" if m["closed"] else "–", m["closing_from"], m["late"]["entries"],
                 _fmt(m["late"]["units"]), _fmt(m["late"]["yen"]), obs, f"{win['from']} – {win['to']}",
                 _fmt(win["expired"]), _fmt(win["used"]), f"{m['contract_liability_yen']:,}")
        rows.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in cells) + "</tr>")
    title = _say("liability.html.breakage", lang, expected=f"{report['expected_breakage']:.1%}")
    out = [f"<h2>{e(title)}</h2>",
           f"<table border=\"1\"><tr>{head('liability.html.breakage_cols')}</tr>{''.join(rows)}</table>"]
    prepaid = report.get("prepaid")
    if prepaid:
        above = {r["date"]: r["above_threshold"] for r in prepaid["base_dates"]}
        rows = []
        for r in prepaid.get("periods", ()):
            period_cells = (r["base_date"], f"{r['from']} – {r['to']}", f"{r['issued_yen']:,}", f"{r['used_yen']:,}",
                     f"{r['expired_yen']:,}", f"{r['voided_yen']:,}", f"{r['unused_yen']:,}",
                     "✓" if above.get(r["base_date"]) else "–", f"{r['deposit_yen']:,}", r["due"])
            rows.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in period_cells) + "</tr>")
        title = _say("liability.html.prepaid", lang, threshold=f"{prepaid['threshold_yen']:,}",
                     share=f"{prepaid['deposit_share']:.0%}")
        out += [f"<h2>{e(title)}</h2>",
                f"<table border=\"1\"><tr>{head('liability.html.prepaid_cols')}</tr>{''.join(rows)}</table>"]
    return "".join(out)
