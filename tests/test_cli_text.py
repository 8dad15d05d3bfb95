"""What the commands print for people (the --json answers are tested with the rules): the words
must say what the figures say."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from engine.shell.cli import cli

ROOT = Path(__file__).resolve().parent.parent
ANSAGE = str(ROOT / "programs" / "ansage.yaml")


def _quote(tmp_path: Path, at: str) -> tuple[str, dict]:
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps({"id": "r", "type": "member.registered", "at": "2025-10-01T10:00:00+09:00",
                                  "member": "m1"}) + "\n", encoding="utf-8")
    db = str(tmp_path / "ledger.db")
    assert CliRunner().invoke(cli, ["run", ANSAGE, str(events), "--db", db]).exit_code == 0
    cart = tmp_path / "cart.json"
    cart.write_text(json.dumps({"id": "c1", "type": "order.placed", "at": at, "member": "m1", "order": "q1",
                                "course": "subscription", "payment": {"method": "credit_card"},
                                "delivery_date": "2025-11-05",
                                "lines": [{"sku": "SUB", "qty": 1, "unit_price": 3000, "tax_rate": 0.08}]}),
                    encoding="utf-8")
    text = CliRunner().invoke(cli, ["quote", ANSAGE, str(cart), "--db", db])
    answer = CliRunner().invoke(cli, ["quote", ANSAGE, str(cart), "--db", db, "--json"])
    assert text.exit_code == 0 and answer.exit_code == 0, (text.output, answer.output)
    return text.output, json.loads(answer.output)


def test_ANS_15_quote_text_says_late_when_the_answer_is_late(tmp_path):
    """Delivery Wed 2025-11-05: the last day is Fri 10-31 (2 business days before, Mon 11-03 is
    Culture Day). A cart of Sat 11-01 with no request of its own is late: the text must not say
    "on time" (it did, because only a deferred request carried a note)."""
    text, answer = _quote(tmp_path, "2025-11-01T09:00:00+09:00")
    assert answer["deadline"]["late"] is True and answer["deadline"]["last_day"] == "2025-10-31"
    assert "past the deadline for this delivery (2025-10-31, ANS-15)" in text
    assert "on time" not in text


def test_ANS_15_quote_text_says_on_time_before_the_deadline(tmp_path):
    text, answer = _quote(tmp_path, "2025-10-31T18:00:00+09:00")
    assert answer["deadline"]["late"] is False
    assert "requests on time for this delivery (deadline 2025-10-31, ANS-15)" in text


ANDEST = str(ROOT / "programs" / "andest.yaml")


def _explain(tmp_path: Path, lines: list[dict]) -> str:
    events = [{"id": "r", "type": "member.registered", "at": "2025-01-05T10:00:00+09:00", "member": "m1"},
              {"id": "o", "type": "order.placed", "at": "2025-01-06T10:00:00+09:00", "member": "m1", "order": "o1",
               "course": "one_off", "payment": {"method": "credit_card"}, "lines": lines}]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    db = str(tmp_path / "ledger.db")
    assert CliRunner().invoke(cli, ["run", ANDEST, str(path), "--db", db]).exit_code == 0
    out = CliRunner().invoke(cli, ["explain", ANDEST, "--db", db, "--member", "m1", "--as-of", "2025-01-07"])
    assert out.exit_code == 0, out.output
    return out.output


def test_AND_1_explain_cites_only_the_rate_row_that_applied(tmp_path):
    """A dress without the points_5pct tag earns the base 1% (AND-1's last row): 10,000 at the
    member price 9,500 → 95 pending. The story cites that row, not the 5% row of the same rule id
    that no line matched (it cited both)."""
    text = _explain(tmp_path, [{"sku": "D", "product": "DRESS", "qty": 1, "unit_price": 10000, "tax_rate": 0.1}])
    assert "95 points earned on order o1" in text
    assert "earn rate row 3: 1%" in text
    assert "earn rate row 1" not in text


def test_AND_1_explain_cites_each_row_that_chose_a_line(tmp_path):
    """One line tagged points_5pct (5%: 9,500 → 475) and one plain (1%: 9,500 → 95): 570 in all,
    floored once; both rows are cited."""
    text = _explain(tmp_path, [
        {"sku": "D", "product": "DRESS", "qty": 1, "unit_price": 10000, "tax_rate": 0.1, "tags": ["points_5pct"]},
        {"sku": "K", "product": "KNIT", "qty": 1, "unit_price": 10000, "tax_rate": 0.1}])
    assert "570 points earned on order o1" in text
    assert "earn rate row 1: 5% when 'points_5pct' in tags" in text and "earn rate row 3: 1%" in text


def test_loyalty_version_names_the_installed_package():
    from importlib.metadata import version

    out = CliRunner().invoke(cli, ["--version"])
    assert out.exit_code == 0
    assert out.output.strip() == f"loyalty {version('loyalty-engine')}"


def test_a_failing_lot_count_names_the_lot_that_differs(tmp_path):
    """andest: sign-up gives 500 (AND-4), the shop grants 100: two lots. A case that expects only
    the 500 lot fails on the count, and the failure names the 100 lot as the one not expected."""
    program = tmp_path / "andest.yaml"
    program.write_text(Path(ANDEST).read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "andest.tests.yaml").write_text("""program: andest
cases:
  - name: two lots, one expected
    rules: [AND-4]
    events:
      - {id: e1, type: member.registered, at: "2025-01-05T10:00:00+09:00", member: m1}
      - {id: e2, type: points.granted, at: "2025-01-06T10:00:00+09:00", member: m1, amount: 100, reason: goodwill}
    as_of: "2025-01-07"
    expect:
      members:
        m1:
          lots: [{amount: 500, rule: AND-4}]
""", encoding="utf-8")
    out = CliRunner().invoke(cli, ["test", str(program)])
    assert out.exit_code == 1
    assert "m1.lots (count)" in out.output
    assert "not expected:" in out.output and '"amount": 100' in out.output
    assert "expected but not found" not in out.output
