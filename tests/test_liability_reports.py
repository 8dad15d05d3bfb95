"""Issue 22: the liability report's figures in every form (JSON, CSV, HTML, text), and the prepaid
(資金決済法) figures, on the small andest history of tests/test_liability.py:

  January: bonus 500 (AND-4) + earn 95 (AND-1) issued, 300 used (AND-3): 295 open.
  February: the order cancelled (AND-2): 95 voided, 300 restored: 500.
  August: grant 200 (AND-6) + earn 47 issued, 150 used: 597.
  September: the grant's last 50 expire at 2025-09-01 00:00: 547.
"""
from __future__ import annotations

import csv
import io

from engine.format.loader import parse_program
from engine.run.liability import _html_more, as_csv, as_html, as_text
from tests.test_liability import HISTORY, MONTHS, ROOT, _engine, closed_history


def prepaid_engine(extra: str = ""):
    text = (ROOT / "programs" / "andest.yaml").read_text(encoding="utf-8")
    text = text.replace("  points: free\n",
                        "  points: prepaid\n  prepaid: {deposit_threshold_yen: 400" + extra + "}\n", 1)
    e = _engine(":memory:", parse_program(text, "andest-prepaid.yaml"))
    for event in HISTORY:
        e.apply(event)
    for month in MONTHS:
        e.close(month)
    return e


def sections(text: str) -> list[list[dict]]:
    """The CSV's tables (a blank line between), each as rows by its own header."""
    return [list(csv.DictReader(io.StringIO(part))) for part in text.split("\n\n")]


def test_prepaid_base_periods_issued_used_unused_and_due():
    periods = prepaid_engine().liability("2025-01", "2025-09")["prepaid"]["periods"]
    # to 31 March (October to March): issued 500 (AND-4) + 95 (AND-1) = 595; used 300 - restored
    # 300 = 0 (回収額); voided 95; unused 500 = 0 + 595 - 0 - 95. Deposit 500 x 0.5 = 250, due by
    # 31 May (two months from 1 April).
    # to 30 September (April to September): issued 200 (AND-6) + 47 = 247; used 150; expired 50;
    # unused 500 + 247 - 150 - 50 = 547; deposit 273.5 -> 274, due by 30 November.
    assert [(p["base_date"], p["from"], p["to"], p["issued_yen"], p["used_yen"], p["expired_yen"], p["voided_yen"],
             p["unused_yen"], p["deposit_yen"], p["due"]) for p in periods] == [
        ("2025-03-31", "2024-10", "2025-03", 595, 0, 0, 95, 500, 250, "2025-05-31"),
        ("2025-09-30", "2025-04", "2025-09", 247, 150, 50, 0, 547, 274, "2025-11-30")]


def test_prepaid_due_within_months_is_the_programs():
    # accounting.prepaid.due_within_months: 1 -> a month from the day after the base date:
    # 1 April -> 30 April; 1 October -> 31 October
    periods = prepaid_engine(", due_within_months: 1").liability("2025-01", "2025-09")["prepaid"]["periods"]
    assert [p["due"] for p in periods] == ["2025-04-30", "2025-10-31"]


def test_free_points_have_no_prepaid_figures():
    report = closed_history(":memory:").liability("2025-01", "2025-09")
    # andest declares free points (AND-12: not bought, not cashed): no 資金決済法 figures
    assert report["points_kind"] == "free" and report["prepaid"] is None
    assert "base_date" not in as_csv(report) and "資金決済法" not in as_html(report)


def test_csv_carries_breakage_late_outstanding_and_prepaid():
    report = prepaid_engine().liability("2025-01", "2025-09")
    months, breakage, outstanding, prepaid = sections(as_csv(report))
    assert months[-1]["month"] == "2025-09" and months[-1]["closing"] == "547"
    sep = next(r for r in breakage if r["month"] == "2025-09")
    # observed breakage to September: expired 50 / (50 + used 300 - restored 300 + 150) = 0.25;
    # contract liability 547 x (1 - 0.20) = 437.6 -> 438
    assert (sep["observed_breakage"], sep["window_expired"], sep["window_used"], sep["contract_liability_yen"]) == \
        ("0.25", "50", "150", "438")
    assert (sep["closed"], sep["closing_from"], sep["late_entries"]) == ("True", "close", "0")
    # outstanding at the end of September: 500 to 2026-01 (AND-5), 47 pending with no date yet
    assert [(r["expires"], r["units"], r["yen"]) for r in outstanding] == [("2026-01", "500", "500"),
                                                                           ("none", "47", "47")]
    assert [(r["base_date"], r["issued_yen"], r["used_yen"], r["unused_yen"], r["above_threshold"], r["deposit_yen"])
            for r in prepaid] == [("2025-03-31", "595", "0", "500", "True", "250"),
                                  ("2025-09-30", "247", "150", "547", "True", "274")]


def test_html_and_text_carry_the_same_figures():
    report = prepaid_engine().liability("2025-01", "2025-09")
    page = as_html(report)
    # September's observed breakage 25.0% and liability 438 (see the CSV test); the base periods
    assert "<td>25.0%</td>" in page and "<td>438</td>" in page
    assert "<td>2025-09-30</td><td>2025-04 – 2025-09</td><td>247</td><td>150</td>" in page
    assert "<td>2025-11-30</td>" in page
    ja = _html_more(report, "ja")
    assert "基準日未使用残高" in ja and "実績失効率" in ja
    text = as_text(report)
    assert "2025-09-30  base period 2025-04 to 2025-09: issued ¥247, used ¥150, expired ¥50; unused ¥547, " \
           "deposit ¥274, due by 2025-11-30" in text
